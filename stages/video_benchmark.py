"""Stage `video_benchmark`: frames per second of `faceocc video`'s loop on a 640x480 clip with 1-3 faces, for
the detection intervals in params (1 = the detector on every frame, the naive loop), and of a one-stage model
(`--one-stage`), using both cores; writes reports/video_benchmark.json and an annotated frame
(reports/video_frame.png).

The clip is synthetic and reproducible: the demo portrait's face plain, masked and in sunglasses (the occlusion
renderer), drifting over a textured background (faceocc/video_benchmark.py).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from faceocc.atomic import write_bytes, write_metrics
from faceocc.benchmark import cpu_name
from faceocc.classifier import Classifier
from faceocc.images import encode_png
from faceocc.inference import FacePredictor
from faceocc.one_stage_model import OneStagePredictor
from faceocc.video_benchmark import VideoBenchmarkParams, benchmark
from stages._common import load_params, setup_logging

log = logging.getLogger("video_benchmark")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, type=Path, help="the model directory the video loop uses")
    parser.add_argument("--one-stage", type=Path, help="a one-stage model directory to time in the same loop")
    parser.add_argument("--metrics", required=True, type=Path)
    parser.add_argument("--frame", required=True, type=Path, help="annotated middle frame (PNG)")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    setup_logging()
    p = load_params("video_benchmark", VideoBenchmarkParams, args.params)
    torch.set_num_threads(p.threads)
    predictor = FacePredictor(Classifier.load(args.model), threads=p.threads)
    one_stage = OneStagePredictor(args.one_stage, threads=p.threads) if args.one_stage else None
    figures, picture = benchmark(p, predictor, one_stage)
    log.info("%s (%s) on %s", args.model, predictor.classifier.card.variant, cpu_name())
    write_metrics(args.metrics, figures)
    if picture is not None:
        write_bytes(args.frame, encode_png(picture))


if __name__ == "__main__":
    main()
