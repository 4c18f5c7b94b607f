"""Stage `detectors`: every registered face detector measured on the same real data -> reports/detectors.md and
reports/detectors.json (DVC metrics), and the default chosen by the table (faceocc/detector_runs.py runs the
candidates, faceocc/detector_benchmark.py scores them and chooses).

Detections per candidate are kept in --work (persistent, keyed by the candidate's settings and data), so an
interrupted run resumes and `--candidates` lets two processes fill the work folder side by side. Skipped with a
note when the mask_detection folder is absent."""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np

from faceocc import detector_benchmark as bench
from faceocc.atomic import write_bytes, write_metrics, write_text
from faceocc.detector_runs import DetectorsParams, collect, measure, work_file
from faceocc.images import encode_png
from stages._common import data_root, load_params, setup_logging, write_skipped

log = logging.getLogger("detectors")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--metrics", required=True, type=Path, help="reports/detectors.json")
    parser.add_argument("--out", required=True, type=Path, help="reports/detectors.md")
    parser.add_argument("--chart", required=True, type=Path, help="reports/detectors.png")
    parser.add_argument("--work", required=True, type=Path, help="persistent folder of per-candidate detections")
    parser.add_argument("--candidates", default="", help="comma-separated labels: only collect these, no report")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    setup_logging()
    p = load_params("detectors", DetectorsParams, args.params)
    p = replace(p, mask_detection=str(data_root(p.mask_detection)), mtfl=str(data_root(p.mtfl)),
                occlusion4=tuple(str(data_root(r)) for r in p.occlusion4))
    args.work.mkdir(parents=True, exist_ok=True)
    if not (Path(p.mask_detection) / "annotations").is_dir():
        write_skipped(args.metrics, args.out, "Face detectors", Path(p.mask_detection) / "annotations")
        write_bytes(args.chart, encode_png(np.full((40, 320, 3), 255, np.uint8)))  # a declared output, blank
        return
    only = {s.strip() for s in args.candidates.split(",") if s.strip()}
    chosen = [c for c in p.candidates if not only or c.label in only]
    raws = {c.label: collect(c, p, args.work) for c in chosen}
    if only:
        return
    current = {work_file(c, p, args.work) for c in p.candidates}
    for stale in set(args.work.glob("*.json")) - current:  # detections of settings no longer measured
        stale.unlink()
    figures = measure(p, raws)
    write_metrics(args.metrics, figures)
    write_text(args.out, bench.markdown(figures))
    write_bytes(args.chart, encode_png(bench.chart(figures)))


if __name__ == "__main__":
    main()
