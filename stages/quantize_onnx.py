"""Stage `quantize_onnx@<backbone>`: ONNX Runtime INT8 (static QDQ with per-channel weights, calibrated on a
seeded subset of the train split through the evaluation preprocessing; or dynamic)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from faceocc.atomic import stage_output
from faceocc.calibration import calibration_ids, split_batch
from faceocc.classifier import CARD_FILE, ModelCard
from faceocc.onnx_models import ONNX_FILE, quantize_int8
from faceocc.workspace import SPLIT_CSV
from stages._common import load_params, setup_logging

log = logging.getLogger("quantize_onnx")


@dataclass(frozen=True)
class QuantizeOnnxParams:
    mode: Literal["static", "dynamic"] = "static"
    method: Literal["MinMax", "Entropy", "Percentile"] = "MinMax"   # calibration
    activations: Literal["QUInt8", "QInt8"] = "QUInt8"             # unsigned: the fast path on x86 (NOTES.md)
    per_channel: bool = True
    reduce_range: bool = True         # 7-bit weights: exact on CPUs without VNNI too (faceocc/int8_cpu.py)
    calibration_images: int = 200     # from the real (original) train crops, in a seeded order
    seed: int = 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, type=Path, help="the ONNX FP32 model directory (export_onnx)")
    parser.add_argument("--split", required=True, type=Path)
    parser.add_argument("--crops", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path, help="INT8 model directory to write")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    setup_logging()
    params = load_params("quantize_onnx", QuantizeOnnxParams, args.params)
    card = ModelCard.read(args.model)
    chosen = calibration_ids(args.split / SPLIT_CSV, params.calibration_images, params.seed)
    calibration, _ = split_batch(args.split, args.crops, card, ids=chosen)

    with stage_output(args.out) as tmp:
        tmp.mkdir()
        quantize_int8(args.model / ONNX_FILE, tmp / ONNX_FILE, calibration, mode=params.mode, method=params.method,
                      activations=params.activations, per_channel=params.per_channel,
                      reduce_range=params.reduce_range, work_dir=tmp)
        info = {"quantized_from": str(args.model), "calibration_images": len(chosen), **dataclasses.asdict(params)}
        (tmp / CARD_FILE).write_text(dataclasses.replace(card, variant="onnx_int8", variant_info=info).to_json())
    log.info("%s: INT8 (%s, %s, %s activations) from %d calibration crops", card.backbone, params.mode,
             params.method, params.activations, len(chosen))


if __name__ == "__main__":
    main()
