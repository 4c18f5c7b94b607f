"""Web sources end to end: what to download (ROF manifests, gallery crawls) and storing what arrived.

Every URL a source names becomes an `ImageJob`; every manifest or page it read becomes a row of `sources.csv`.
Jobs keep their discovery order, so the raw manifest (and which of two identical images counts as the
duplicate) does not depend on which download thread finished first.
"""

from __future__ import annotations

import json
import logging
import pickle
from dataclasses import dataclass
from pathlib import Path

from faceocc.downloads import DownloadCache
from faceocc.gallery import CrawlLimits, GalleryStart, crawl
from faceocc.rof import (
    ROF_LABELS,
    ManifestRef,
    RofFace,
    RofFormatError,
    annotation_json,
    check_annotation,
    github_repository,
    identity_of,
    list_local,
    list_tree,
    parse_manifest,
)
from faceocc.sources import RawStore
from faceocc.web import Fetcher

log = logging.getLogger(__name__)

SOURCE_COLUMNS = ("kind", "url", "label", "depth", "outcome", "detail", "items")


class SourceUnavailable(RuntimeError):
    """The source as a whole cannot be read (no listing, no manifests); str(err) is a one-line reason."""


@dataclass(frozen=True)
class ImageJob:
    url: str
    label: str
    source: str                  # rof | gallery
    found_on: str                # manifest path#index or the page the image was linked from
    identity: str = ""           # the person, where the source says (ROF does)
    faces: tuple[RofFace, ...] = ()


@dataclass(frozen=True)
class RofLocation:
    manifests: str               # https://github.com/<owner>/<name> or a local clone
    ref: str = ""                # branch, tag or commit; '' asks the API for the default branch
    api_base: str = "https://api.github.com"
    raw_base: str = "https://raw.githubusercontent.com"


def rof_jobs(location: RofLocation, categories: tuple[str, ...], max_per_category: int,
             fetcher: Fetcher) -> tuple[list[ImageJob], list[dict]]:
    """One job per ROF record (first `max_per_category` per category when > 0) and a row per manifest."""
    unknown = sorted(set(categories) - set(ROF_LABELS))
    if unknown:
        raise ValueError(f"scrape.rof.categories: {unknown} are not ROF folders {sorted(ROF_LABELS)}")
    rows: list[dict] = []
    if location.manifests.startswith(("http://", "https://")):
        refs = _remote_refs(location, categories, fetcher, rows)
    else:
        refs = list_local(location.manifests, categories)
    jobs: list[ImageJob] = []
    taken = dict.fromkeys(categories, 0)
    for ref in refs:
        if max_per_category and taken[ref.category] >= max_per_category:
            continue
        row = {"kind": "rof_manifest", "url": ref.location, "label": ROF_LABELS[ref.category], "depth": 0,
               "outcome": "ok", "detail": "", "items": 0}
        rows.append(row)
        data = _manifest_bytes(ref, fetcher, row)
        if data is None:
            continue
        try:
            records, skipped = parse_manifest(data)
        except pickle.UnpicklingError as err:  # includes ForbiddenPickle
            row.update(outcome="unsafe_pickle" if "refused" in str(err) else "bad_manifest", detail=str(err))
            log.error("%s: %s (%s)", ref.path, row["outcome"], err)
            continue
        except (RofFormatError, EOFError, ValueError, TypeError, IndexError, AttributeError, MemoryError,
                RecursionError, OverflowError) as err:
            row.update(outcome="bad_manifest", detail=f"{type(err).__name__}: {err}")
            log.error("%s: bad_manifest (%s)", ref.path, err)
            continue
        if skipped:
            row["detail"] = f"{len(skipped)} malformed record(s) skipped: " + "; ".join(
                f"#{i}: {why}" for i, why in skipped[:3])
        for record in records:
            if max_per_category and taken[ref.category] >= max_per_category:
                break
            taken[ref.category] += 1
            row["items"] += 1
            jobs.append(ImageJob(record.url, ROF_LABELS[ref.category], "rof", f"{ref.path}#{record.index}",
                                 identity_of(ref.path), record.faces))
    return jobs, rows


def _remote_refs(location: RofLocation, categories: tuple[str, ...], fetcher: Fetcher,
                 rows: list[dict]) -> list[ManifestRef]:
    owner, name = github_repository(location.manifests)
    api = f"{location.api_base.rstrip('/')}/repos/{owner}/{name}"
    ref = location.ref
    if not ref:
        info = _json(fetcher, api, rows)
        ref = info.get("default_branch", "") if isinstance(info, dict) else ""
        if not ref:
            raise SourceUnavailable(f"{api}: no default branch ({rows[-1]['outcome']}: {rows[-1]['detail']}); "
                                    "check the URL or your connection, or set scrape.rof.ref")
    tree = _json(fetcher, f"{api}/git/trees/{ref}?recursive=1", rows)
    if tree is None:
        raise SourceUnavailable(f"{api}: cannot list the repository ({rows[-1]['outcome']}: {rows[-1]['detail']})")
    refs = list_tree(tree, categories, f"{location.raw_base.rstrip('/')}/{owner}/{name}/{ref}")
    if not refs:
        raise SourceUnavailable(f"{location.manifests}@{ref}: no ROF/<category>/*.pkl files for {list(categories)}")
    return refs


def _json(fetcher: Fetcher, url: str, rows: list[dict]):
    # The user named this repository; the API's robots.txt (written for crawlers) does not apply to it.
    got = fetcher.get(url, accept="application/vnd.github+json, application/json", obey_robots=False)
    row = {"kind": "listing", "url": url, "label": "", "depth": 0, "outcome": got.outcome, "detail": got.detail,
           "items": 0}
    rows.append(row)
    if not got.ok:
        return None
    try:
        return json.loads(got.body)
    except ValueError as err:
        row.update(outcome="bad_listing", detail=f"not JSON: {err}")
        return None


def _manifest_bytes(ref: ManifestRef, fetcher: Fetcher, row: dict) -> bytes | None:
    if not ref.location.startswith(("http://", "https://")):
        try:
            return Path(ref.location).read_bytes()
        except OSError as err:
            row.update(outcome="unreadable", detail=str(err.strerror or err))
            return None
    got = fetcher.get(ref.location, accept="application/octet-stream, */*", obey_robots=False)
    if not got.ok:
        row.update(outcome=got.outcome, detail=got.detail)
        log.error("%s: %s (%s)", ref.location, got.outcome, got.detail)
        return None
    return got.body


def gallery_jobs(starts: tuple[GalleryStart, ...], limits: CrawlLimits,
                 fetcher: Fetcher) -> tuple[list[ImageJob], list[dict]]:
    jobs: list[ImageJob] = []
    rows: list[dict] = []
    for start in starts:
        found, pages = crawl(start, fetcher, limits)
        jobs.extend(ImageJob(f.url, f.label, "gallery", f.page) for f in found)
        rows.extend({"kind": "page", "url": p["url"], "label": p["label"], "depth": p["depth"],
                     "outcome": p["outcome"], "detail": p["detail"], "items": p["images"]} for p in pages)
    return jobs, rows


def store_jobs(store: RawStore, jobs: list[ImageJob], results: dict[str, dict], cache: DownloadCache,
               annotation_tolerance: float) -> None:
    """Add each job's download (or its failure) to the raw store, in job order."""
    for job in jobs:
        record = results[job.url]
        extra = {"identity": job.identity, "found_on": job.found_on}
        if record["outcome"] != "ok":
            store.skip(job.label, job.source, job.url, record["outcome"], record["detail"], quiet=True, **extra)
            continue
        detail = ""
        if job.faces:
            mismatch = check_annotation(job.faces, record["width"], record["height"], annotation_tolerance)
            if mismatch:
                detail = f"ROF annotation dropped: {mismatch}"
            else:
                extra["annotation"] = annotation_json(job.faces)
        suffix = "." + record["file"].rsplit(".", 1)[-1]
        row = store.add(cache.read(record), job.label, job.source, job.url, suffix, **extra)
        if detail:
            row["detail"] = (row["detail"] + "; " if row["detail"] else "") + detail
