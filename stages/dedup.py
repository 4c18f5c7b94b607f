"""Stage `dedup`: exact and near-duplicate face crops clustered; one representative kept per cluster
(faceocc/crop_dedup.py, faceocc/dedup.py)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from faceocc import crop_dedup
from faceocc.atomic import stage_output, write_bytes, write_json, write_metrics
from faceocc.crop_dedup import DedupParams
from faceocc.dedup import CLUSTER_COLUMNS, ITEM_COLUMNS, resolve_clusters
from faceocc.images import encode_png
from faceocc.manifest import write_rows
from faceocc.workspace import FACES
from stages._common import load_params, setup_logging

log = logging.getLogger("dedup")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--crops", required=True, type=Path, help="the crop stage's output folder")
    parser.add_argument("--out", required=True, type=Path, help="output: items.csv, clusters.csv, settings.json")
    parser.add_argument("--metrics", required=True, type=Path)
    parser.add_argument("--sheet", required=True, type=Path, help="PNG of the largest clusters")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    setup_logging()
    params = load_params("dedup", DedupParams, args.params)
    items, unreadable = crop_dedup.hash_crops(args.crops, params)
    rows, clusters = resolve_clusters(items, params.max_distance)
    with stage_output(args.out) as tmp:
        tmp.mkdir()
        write_rows(tmp / "items.csv", rows, ITEM_COLUMNS)
        write_rows(tmp / "clusters.csv", clusters, CLUSTER_COLUMNS)
        # later stages check their own work against the same definition of "near duplicate"
        write_json(tmp / "settings.json", {"hash": params.hash, "align": params.align,
                                            "max_distance": params.max_distance})
    write_bytes(args.sheet, encode_png(crop_dedup.cluster_sheet(args.crops / FACES, rows, clusters,
                                                                params.sheet_clusters)))
    figures = crop_dedup.metrics(rows, clusters, unreadable, params.max_distance)
    write_metrics(args.metrics, figures)
    log.info("%d crops: %s; %d clusters with duplicates, %d with conflicting labels", len(rows), figures["outcomes"],
             len(clusters), figures["label_conflict_clusters"])


if __name__ == "__main__":
    main()
