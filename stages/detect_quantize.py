"""Stage `detect_quantize`: ONNX Runtime static INT8 (QDQ, per-channel weights) of the whole one-stage graph,
CenterFace and the class branch alike, calibrated on a seeded choice of the train photos as the detector sees
them (scaled to its long side, padded to a multiple of 32)."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from faceocc.atomic import stage_output
from faceocc.images import ImageDecodeError, load_rgb
from faceocc.one_stage_data import network_input, workspace_photos
from faceocc.one_stage_model import OneStageCard, quantize
from stages._common import load_params, refuse, setup_logging
from stages._task import task_of

log = logging.getLogger("detect_quantize")


@dataclass(frozen=True)
class DetectQuantizeParams:
    calibration_photos: int = 32
    per_channel: bool = True
    activations: Literal["QUInt8", "QInt8"] = "QUInt8"
    reduce_range: bool = True     # 7-bit weights: exact on CPUs without VNNI too (faceocc/int8_cpu.py)
    seed: int = 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, type=Path, help="the FP32 one-stage folder (detect_train)")
    parser.add_argument("--split", required=True, type=Path)
    parser.add_argument("--crops", required=True, type=Path)
    parser.add_argument("--raw", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path, help="the INT8 folder to write")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    setup_logging()
    params = load_params("detect_quantize", DetectQuantizeParams, args.params)
    card = OneStageCard.read(args.model)
    task = task_of(args.crops)
    photos, _ = workspace_photos(args.split, args.crops, args.raw, "train", task.classes, task.label_of)
    chosen = np.random.default_rng(params.seed).permutation(len(photos))[:params.calibration_photos]
    calibration = []
    for i in sorted(chosen):
        try:
            calibration.append(network_input(load_rgb(photos[i].path), card.side)[0])
        except ImageDecodeError as err:
            log.warning("%s: %s", photos[i].path, err)
    if not calibration:
        refuse(f"{args.split}: no train photo to calibrate on")
    with stage_output(args.out) as tmp:
        tmp.mkdir()
        quantize(args.model, tmp, calibration, per_channel=params.per_channel, activations=params.activations,
                 reduce_range=params.reduce_range)
    log.info("one-stage INT8 (%s activations) from %d calibration photos", params.activations, len(calibration))


if __name__ == "__main__":
    main()
