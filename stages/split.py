"""Stage `split`: stratified train/val/test whose groups (source image, identity, near-duplicate cluster)
never straddle two splits; the cross-split near-duplicate count is measured, not assumed (faceocc/splitting.py)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from faceocc.atomic import stage_output, write_metrics
from faceocc.manifest import read_rows, write_rows
from faceocc.splitting import SPLIT_COLUMNS, SplitLeak, SplitParams, split_rows
from faceocc.workspace import MANIFEST_CSV, SPLIT_CSV
from stages._common import load_params, setup_logging
from stages._task import task_of

log = logging.getLogger("split")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--curated", required=True, type=Path, help="the curate stage's output folder")
    parser.add_argument("--dedup", required=True, type=Path, help="the dedup stage's output (its settings)")
    parser.add_argument("--raw", required=True, type=Path, help="the scrape stage's output (identities)")
    parser.add_argument("--out", required=True, type=Path, help="output: split.csv")
    parser.add_argument("--metrics", required=True, type=Path)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    setup_logging()
    params = load_params("split", SplitParams, args.params)
    near = json.loads((args.dedup / "settings.json").read_text())
    raw = {r["id"]: r for r in read_rows(args.raw / MANIFEST_CSV) if r["id"]}
    items = [{**r, "identity": raw[r["source_id"]].get("identity", "")}
             for r in read_rows(args.curated / "items.csv") if r["outcome"] == "kept"]
    items.sort(key=lambda r: r["crop_id"])
    origins = [raw[r["source_id"]]["origin"] for r in items]
    try:
        rows, figures = split_rows(params, task_of(args.raw).classes, items, origins, near["max_distance"])
    except SplitLeak as err:
        raise SystemExit(str(err)) from None
    with stage_output(args.out) as tmp:
        tmp.mkdir()
        write_rows(tmp / SPLIT_CSV, rows, SPLIT_COLUMNS)
    write_metrics(args.metrics, figures)
    log.info("%s; %d groups; cross-split near-duplicate pairs: %d", figures["counts"], figures["groups"],
             figures["cross_split_near_duplicates"])


if __name__ == "__main__":
    main()
