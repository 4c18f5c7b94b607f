"""Stage `scrape`: collect raw labelled images (demo set or labelled folders) with a provenance manifest."""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tqdm import tqdm

from faceocc import CLASSES
from faceocc.atomic import atomic_path, write_json
from faceocc.demo import DemoConfig, build_demo
from faceocc.detection import DetectorConfig, FaceDetector
from faceocc.images import encode_png
from faceocc.manifest import write_rows
from faceocc.sources import RAW_COLUMNS, RawStore, list_folder, store_folder
from stages._common import load_params, setup_logging

log = logging.getLogger("scrape")


@dataclass(frozen=True)
class FolderParams:
    roots: tuple[str, ...] = ()  # each holds <label>/ sub-folders; several roots pool by label


@dataclass(frozen=True)
class ScrapeParams:
    source: Literal["demo", "folder"] = "demo"
    classes: tuple[str, ...] = CLASSES
    demo: DemoConfig = field(default_factory=DemoConfig)
    folder: FolderParams = field(default_factory=FolderParams)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True, type=Path, help="output folder: images/ + manifest.csv")
    parser.add_argument("--metrics", required=True, type=Path, help="DVC metrics JSON")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    setup_logging()
    params = load_params("scrape", ScrapeParams, args.params)

    with atomic_path(args.out) as tmp:
        store = RawStore(tmp, params.classes)
        if params.source == "demo":
            # landmarks of the portraits place the rendered occluders; MTCNN's defaults find them
            detector = FaceDetector(DetectorConfig(device="cpu"))

            def portrait_landmarks(image):
                faces = detector.detect(image)
                return faces[0].landmarks if faces else None

            for item in tqdm(build_demo(params.demo, portrait_landmarks), desc="scrape (demo)", unit="img"):
                store.add(encode_png(item.image), item.label, "demo", item.origin, ".png")
        else:
            if not params.folder.roots:
                raise SystemExit("scrape.folder.roots is empty: name at least one folder of <label>/ sub-folders")
            store_folder(store, tqdm(list(list_folder(params.folder.roots)), desc="scrape (folder)", unit="file"))
        write_rows(tmp / "manifest.csv", store.rows, RAW_COLUMNS)

    outcomes = Counter(r["outcome"] for r in store.rows)
    stored = Counter(r["label"] for r in store.rows if r["outcome"] == "ok")
    write_json(args.metrics, {"source": params.source, "files": len(store.rows), "outcomes": dict(outcomes),
                              "stored_per_label": {c: stored.get(c, 0) for c in params.classes}})
    log.info("%d files: %s; stored per label: %s", len(store.rows), dict(outcomes), dict(stored))


if __name__ == "__main__":
    main()
