"""Stage `balance`: synthetic rare-class faces, then the chosen balancing strategy, on the train split only
(faceocc/train_set.py)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from faceocc import train_set
from faceocc.atomic import stage_output, write_bytes, write_metrics
from faceocc.config import ConfigError
from faceocc.images import encode_png
from faceocc.manifest import read_rows, write_rows
from faceocc.train_set import BalanceParams
from faceocc.workspace import CROPS_CSV, FACES, SPLIT_CSV
from stages._common import load_params, refuse, setup_logging
from stages._task import task_of

log = logging.getLogger("balance")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--split", required=True, type=Path, help="the split stage's output folder")
    parser.add_argument("--crops", required=True, type=Path, help="the crop stage's output (images, landmarks)")
    parser.add_argument("--out", required=True, type=Path, help="output: images/ + train.csv")
    parser.add_argument("--metrics", required=True, type=Path)
    parser.add_argument("--counts", required=True, type=Path, help="CSV of class counts before/after (DVC plot)")
    parser.add_argument("--chart", required=True, type=Path, help="PNG bar chart of the same")
    parser.add_argument("--samples", required=True, type=Path, help="PNG of synthetic and augmented examples")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    setup_logging()
    params = load_params("balance", BalanceParams, args.params)
    classes = task_of(args.crops).classes
    try:
        train_set.check_recipes(params, classes)
    except ConfigError as err:
        refuse(str(err))
    train = [r for r in read_rows(args.split / SPLIT_CSV) if r["split"] == "train"]
    faces = args.crops / FACES
    with stage_output(args.out) as tmp:
        (tmp / "images").mkdir(parents=True)
        made = train_set.build(params, classes, train, read_rows(args.crops / CROPS_CSV), faces, tmp)
        write_rows(tmp / "train.csv", made.final, train_set.TRAIN_COLUMNS)
        write_bytes(args.samples, encode_png(train_set.sample_sheet(made.final, faces, tmp)))
    write_rows(args.counts, train_set.count_rows(classes, train_set.step_counts(made)),
               train_set.COUNT_COLUMNS)
    write_bytes(args.chart, encode_png(train_set.count_chart(made, classes, params.strategy)))
    figures = train_set.metrics(made, classes)
    write_metrics(args.metrics, figures)
    log.info("train per class before %s, after %s (%s)", figures["before"], figures["after"], figures["kinds"])


if __name__ == "__main__":
    main()
