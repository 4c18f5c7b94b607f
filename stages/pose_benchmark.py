"""Stage `pose_benchmark`: head-pose error of each solvePnP method on synthetic ground truth -> reports/pose.md
and reports/pose.json (DVC metrics). Generic face shapes jittered per face, a camera focal length the estimator
must guess, landmark noise at stated fractions of the inter-ocular distance.

On real faces (`mtfl`, when the folder exists): MTFL's 5-point annotations and coarse pose labels. The tool's
face finder runs on each image; its landmarks are scored against the annotation (normalised mean error), and the
yaw of the default method, from the annotated and from the detected landmarks, is binned against MTFL's five
labels. With `mtfl_masks`,
each face is measured again with a mask drawn where its annotated landmarks put nose and mouth
(faceocc/mtfl_eval.py): detection, each landmark's error and the pose, bare against masked. The benchmark:
faceocc/pose_report.py."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from faceocc.atomic import write_metrics, write_text
from faceocc.pose_report import PoseBenchmarkParams, benchmark
from stages._common import data_root, load_params, setup_logging

log = logging.getLogger("pose_benchmark")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--metrics", required=True, type=Path, help="reports/pose.json")
    parser.add_argument("--out", required=True, type=Path, help="reports/pose.md")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    setup_logging()
    p = load_params("pose_benchmark", PoseBenchmarkParams, args.params)
    figures, text = benchmark(p, data_root(p.mtfl))
    write_metrics(args.metrics, figures)
    write_text(args.out, text)
    log.info("best %s; wrote %s", figures["best_without_detected_chin"], args.out)


if __name__ == "__main__":
    main()
