"""The scrape stage's sources: the demo set, labelled folders (or PascalVOC ones), ROF manifests and HTML
galleries, each stored item by item into a RawStore with its outcome (faceocc/acquire.py, faceocc/sources.py and
faceocc/downloads.py do the reading and fetching)."""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tqdm import tqdm

from faceocc.acquire import RofLocation, SourceUnavailable, gallery_jobs, rof_jobs, store_jobs
from faceocc.config import ConfigError
from faceocc.demo import DemoConfig, build_demo
from faceocc.downloads import DownloadCache, download_images
from faceocc.gallery import CrawlLimits, GalleryStart
from faceocc.images import DEFAULT_MAX_PIXELS, encode_png
from faceocc.sources import (RawStore, folder_crops, is_voc_root, list_folder, photo_series, store_folder, store_voc,
                             voc_files)
from faceocc.tasks import TaskName, task_named
from faceocc.web import Fetcher, WebConfig
from faceocc.workspace import data_root

log = logging.getLogger("scrape")


@dataclass(frozen=True)
class FolderParams:
    roots: tuple[str, ...] = ()  # each holds <label>/ sub-folders, or is PascalVOC; several roots pool by label
    voc_context: float = 1.0     # a VOC face is kept with this much of its box's long side around it
    series_bits: int = 12        # VOC photos within this many phash bits are one series, kept in one split; 0: off


@dataclass(frozen=True)
class RofParams:
    manifests: str = "https://github.com/ekremerakin/RealWorldOccludedFaces"  # or a local clone
    ref: str = ""                       # branch / tag / commit; '' = the repository's default branch
    api_base: str = "https://api.github.com"
    raw_base: str = "https://raw.githubusercontent.com"
    categories: tuple[str, ...] = ("neutral", "sunglasses", "masked")
    max_per_category: int = 0           # 0 = every record
    annotation_tolerance: float = 0.05  # how far (fraction of the image) ROF boxes may overhang the image


@dataclass(frozen=True)
class GalleryParams:
    starts: tuple[GalleryStart, ...] = ()
    limits: CrawlLimits = field(default_factory=CrawlLimits)


@dataclass(frozen=True)
class ScrapeParams:
    source: Literal["demo", "folder", "rof", "gallery"] = "demo"
    task: TaskName = "occlusion4"   # faceocc/tasks.py: the class list (and its colours) this run is about
    demo: DemoConfig = field(default_factory=DemoConfig)
    folder: FolderParams = field(default_factory=FolderParams)
    rof: RofParams = field(default_factory=RofParams)
    gallery: GalleryParams = field(default_factory=GalleryParams)
    web: WebConfig = field(default_factory=WebConfig)
    retry_failed: bool = False          # also re-request URLs that failed for a lasting reason (404, ...)
    max_pixels: int = DEFAULT_MAX_PIXELS

    @property
    def classes(self) -> tuple[str, ...]:
        return task_named(self.task).classes


def scrape(params: ScrapeParams, store: RawStore, cache_dir: Path) -> tuple[list[dict], dict]:
    """Fill `store` from the configured source: (the rows of sources.csv, what grouped the items of each folder
    root). ConfigError names a setting that keeps the source from being read."""
    if params.source == "demo":
        scrape_demo(params.demo, store)
        return [], {}
    if params.source == "folder":
        if not params.folder.roots:
            raise ConfigError("scrape.folder.roots is empty: name at least one folder of <label>/ sub-folders")
        for root in params.folder.roots:
            if not data_root(root).is_dir():
                raise ConfigError(f"scrape.folder.roots: {root} is not a directory "
                                  f"(looked for {data_root(root).resolve()})")
        return [], scrape_folders(params, store)
    return scrape_web(params, store, cache_dir), {}


def metrics(store: RawStore, source_rows: list[dict], grouping: dict, classes: tuple[str, ...]) -> dict:
    outcomes = Counter(r["outcome"] for r in store.rows)
    stored = Counter(r["label"] for r in store.rows if r["outcome"] == "ok")
    return {"files": len(store.rows), "outcomes": dict(outcomes),
            "sources_read": dict(Counter(f"{r['kind']}:{r['outcome']}" for r in source_rows)),
            "stored_per_label": {c: stored.get(c, 0) for c in classes}, **({"grouping": grouping} if grouping else {})}


def scrape_folders(params: ScrapeParams, store: RawStore) -> dict:
    """Each root is either <label>/ sub-folders (with a crops.csv: crops cut around one face each) or a PascalVOC
    folder (annotations/ + images/, one item per annotated face); labels pass through the task's aliases
    (mask_worn_incorrectly -> mask_weared_incorrect). Returns {root: what grouped its items} for the metrics."""
    task = task_named(params.task)
    grouping = {}
    for written in params.folder.roots:
        root, first_row = data_root(written), len(store.rows)
        name = root.name
        if is_voc_root(root):
            log.info("%s: PascalVOC annotations, one item per annotated face", root)
            series = {}
            if params.folder.series_bits > 0:
                photos = sorted(p for p in (Path(root) / "images").iterdir() if p.is_file())
                series = photo_series(tqdm(photos, desc=f"scrape (series {name})", unit="photo"),
                                      params.folder.series_bits, params.max_pixels)
                sizes = Counter(series.values())
                grouping[name] = {"photos": len(series), "series_bits": params.folder.series_bits,
                                  "series_of_two_or_more": sum(n > 1 for n in sizes.values()),
                                  "photos_in_them": sum(n for n in sizes.values() if n > 1)}
            store_voc(store, root, tqdm(voc_files(root), desc=f"scrape (voc {name})", unit="file"),
                      task.label_of, params.folder.voc_context, params.max_pixels, series)
        else:
            crops = folder_crops(root)
            if crops:
                log.info("%s: crops.csv names the face and the photo of %d files", root, len(crops))
                grouping[name] = {"crops_with_a_face_box": len(crops),
                                  "photos": len({c.photo for c in crops.values()})}
            files = [(task.label_of(label) if label else "", path, problem)
                     for label, path, problem in list_folder([root])]
            store_folder(store, tqdm(files, desc=f"scrape (folder {name})", unit="file"), crops, params.max_pixels)
        show_as_written(store.rows[first_row:], str(root), str(Path(written)))
    return grouping


def show_as_written(rows: list[dict], read_from: str, written: str) -> None:
    """Name the files of a data root read from elsewhere (a queued experiment's, data_root) under the root as
    params.yaml writes it, so that the manifest is the same wherever the stage ran."""
    if read_from == written:
        return
    for row in rows:
        if row["origin"].startswith(read_from):
            row["origin"] = written + row["origin"][len(read_from):]
        row["detail"] = row["detail"].replace(read_from + os.sep, written + os.sep)


def scrape_demo(config: DemoConfig, store: RawStore) -> None:
    from faceocc.finder import DetectorSettings, FaceFinder, FinderSettings  # torch: only here, not for the web

    # landmarks of the portraits place the rendered occluders: MTCNN's, fixed here rather than the tool's
    # default finder, so the demo images stay the same whichever detector the DAG crops with
    finder = FaceFinder(FinderSettings(detector=DetectorSettings(name="mtcnn", threshold=0.9, scales=(1.0,))))

    def portrait_landmarks(image):
        faces = finder.first_pass(image, floor=0.0)
        return faces[0].landmarks if faces else None

    for item in tqdm(build_demo(config, portrait_landmarks), desc="scrape (demo)", unit="img"):
        store.add(encode_png(item.image), item.label, "demo", item.origin, ".png")


def scrape_web(params: ScrapeParams, store: RawStore, cache_dir: Path) -> list[dict]:
    cache = DownloadCache(cache_dir)
    if cache.removed_partials:
        log.info("removed %d partial download(s) of an interrupted run", cache.removed_partials)
    fetcher = Fetcher(params.web)
    try:
        if params.source == "rof":
            rof = params.rof
            try:
                jobs, rows = rof_jobs(RofLocation(rof.manifests, rof.ref, rof.api_base, rof.raw_base),
                                      rof.categories, rof.max_per_category, fetcher)
            except (SourceUnavailable, FileNotFoundError, ValueError) as err:
                raise ConfigError(f"scrape.rof: {err}") from None
        else:
            if not params.gallery.starts:
                raise ConfigError("scrape.gallery.starts is empty: give at least one {url, label}")
            strays = sorted({s.label for s in params.gallery.starts} - set(params.classes))
            if strays:
                raise ConfigError(f"scrape.gallery.starts: labels {strays} are not classes of the task {params.task} "
                                  f"({', '.join(params.classes)})")
            jobs, rows = gallery_jobs(params.gallery.starts, params.gallery.limits, fetcher)
        log.info("%d image URLs from %d manifests/pages", len(jobs), len(rows))
        results = download_images([j.url for j in jobs], fetcher, cache, workers=params.web.workers,
                                  max_pixels=params.max_pixels, retry_failed=params.retry_failed,
                                  desc=f"scrape ({params.source})")
    finally:
        fetcher.close()
    store_jobs(store, jobs, results, cache, params.rof.annotation_tolerance)
    return rows
