"""Stage `quantize_fx@<backbone>`: PyTorch FX graph-mode static INT8 of the FP32 model (BN folded, per-channel
weights, calibrated on a seeded subset of the train split through the evaluation preprocessing)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from faceocc import fx_quant, int8_cpu
from faceocc.atomic import stage_output
from faceocc.calibration import calibration_ids, split_batch
from faceocc.classifier import CARD_FILE, Classifier
from faceocc.workspace import SPLIT_CSV
from stages._common import load_params, setup_logging

log = logging.getLogger("quantize_fx")


@dataclass(frozen=True)
class QuantizeFxParams:
    engine: Literal["auto", "onednn", "x86", "qnnpack"] = "auto"  # auto: onednn with VNNI, else x86 (int8_cpu.py)
    per_channel: bool = True
    calibration_images: int = 200     # real train crops, the same seeded order as quantize_onnx
    seed: int = 0
    threads: int = 2


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, type=Path, help="the FP32 model directory (train)")
    parser.add_argument("--split", required=True, type=Path)
    parser.add_argument("--crops", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path, help="INT8 model directory to write")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    setup_logging()
    params = load_params("quantize_fx", QuantizeFxParams, args.params)
    torch.set_num_threads(params.threads)
    fp32 = Classifier.load(args.model)
    card = fp32.card
    chosen = calibration_ids(args.split / SPLIT_CSV, params.calibration_images, params.seed)
    calibration, _ = split_batch(args.split, args.crops, card, ids=chosen)
    engine = int8_cpu.fx_engine(params.engine)
    quantized = fx_quant.quantize(fp32.model, torch.from_numpy(calibration), engine, params.per_channel)
    boundaries = fx_quant.dequantize_boundaries(quantized)

    with stage_output(args.out) as tmp:
        tmp.mkdir()
        fx_quant.save(quantized, tmp / fx_quant.FX_FILE)
        info = {"quantized_from": str(args.model), "calibration_images": len(chosen),
                "dequantize_boundaries": boundaries, **dataclasses.asdict(params), "engine": engine,
                "engine_requested": params.engine}
        (tmp / CARD_FILE).write_text(dataclasses.replace(card, variant="fx_int8", variant_info=info).to_json())
    log.info("%s: FX INT8 (%s engine, %s weights) from %d calibration crops; %d dequantize boundaries: %s",
             card.backbone, engine, "per-channel" if params.per_channel else "per-tensor", len(chosen),
             len(boundaries), ", ".join(boundaries))


if __name__ == "__main__":
    main()
