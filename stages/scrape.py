"""Stage `scrape`: collect raw labelled images (demo, labelled folders, ROF manifests, HTML galleries) into
images/ + manifest.csv, one row per item with its outcome (faceocc/scraping.py)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from faceocc import scraping
from faceocc.acquire import SOURCE_COLUMNS
from faceocc.atomic import atomic_path, remove_stale_temps, write_metrics
from faceocc.config import ConfigError
from faceocc.manifest import write_rows
from faceocc.scraping import ScrapeParams
from faceocc.sources import RAW_COLUMNS, RawStore
from faceocc.tasks import task_named, write_task_file
from faceocc.workspace import MANIFEST_CSV
from stages._common import load_params, refuse, setup_logging

log = logging.getLogger("scrape")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True, type=Path, help="output folder: images/ + manifest.csv")
    parser.add_argument("--cache", required=True, type=Path,
                        help="download cache kept between runs (blobs + URL journal); empty for offline sources")
    parser.add_argument("--metrics", required=True, type=Path, help="DVC metrics JSON")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    setup_logging()
    params = load_params("scrape", ScrapeParams, args.params)
    if remove_stale_temps(args.out):
        log.info("removed the half-written output of an interrupted run")
    args.cache.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(args.out) as tmp:
            store = RawStore(tmp, params.classes)
            source_rows, grouping = scraping.scrape(params, store, args.cache)
            write_rows(tmp / MANIFEST_CSV, store.rows, RAW_COLUMNS)
            write_rows(tmp / "sources.csv", source_rows, SOURCE_COLUMNS)
            write_task_file(tmp, task_named(params.task))  # what every later stage reads the task from
    except ConfigError as err:
        refuse(str(err))
    figures = scraping.metrics(store, source_rows, grouping, params.classes)
    write_metrics(args.metrics, figures)
    log.info("%d items: %s; stored per label: %s", figures["files"], figures["outcomes"], figures["stored_per_label"])


if __name__ == "__main__":
    main()
