"""Stage `mask_detection_recall`: how many annotated faces the tool's face finder finds in the mask_detection set
(PascalVOC), per wearing class and face size, with and without its second pass -> reports/mask_detection.md/.json.

A face counts as found when a face `faceocc predict` would report (at the finder's threshold and size rule)
overlaps its box at IoU >= `iou`, each detection matched once.
The set is the second source document's (with_mask / without_mask / mask_weared_incorrect); skipped with a note
when `root` is absent. The measure: faceocc/voc_recall.py."""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace
from pathlib import Path

from faceocc.atomic import write_metrics, write_text
from faceocc.voc_recall import TITLE, MaskDetectionRecallParams, markdown, measure
from stages._common import data_root, load_params, setup_logging, write_skipped

log = logging.getLogger("mask_detection_recall")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--metrics", required=True, type=Path, help="reports/mask_detection.json")
    parser.add_argument("--out", required=True, type=Path, help="reports/mask_detection.md")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    setup_logging()
    p = load_params("mask_detection_recall", MaskDetectionRecallParams, args.params)
    p = replace(p, root=str(data_root(p.root)))
    if not (Path(p.root) / "annotations").is_dir():
        write_skipped(args.metrics, args.out, TITLE, Path(p.root) / "annotations")
        return
    figures = measure(p)
    write_metrics(args.metrics, figures)
    write_text(args.out, markdown(figures))
    log.info("recall with second pass: %s", {k: v["recall"] for k, v in figures["recall"]["with_second_pass"].items()
                                            if " " not in k})


if __name__ == "__main__":
    main()
