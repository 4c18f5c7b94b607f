"""Stage `export_onnx@<backbone>`: the trained model as ONNX (dynamic batch), checked for parity with PyTorch
on the test split before anything downstream trusts it."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from faceocc.atomic import stage_output, write_json
from faceocc.classifier import CARD_FILE, Classifier
from faceocc.images import load_rgb
from faceocc.manifest import read_rows
from faceocc.onnx_models import ONNX_FILE, export, run_logits, session
from faceocc.workspace import FACES, SPLIT_CSV
from stages._common import load_params, setup_logging

log = logging.getLogger("export_onnx")


@dataclass(frozen=True)
class ExportOnnxParams:
    max_abs_logit_diff: float = 1e-3   # largest allowed |ONNX - PyTorch| logit on the test split
    min_top1_agreement: float = 1.0    # share of test crops whose top class must agree


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, type=Path, help="the PyTorch model directory (train)")
    parser.add_argument("--split", required=True, type=Path)
    parser.add_argument("--crops", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path, help="ONNX model directory to write")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    setup_logging()
    params = load_params("export_onnx", ExportOnnxParams, args.params)
    classifier = Classifier.load(args.model)
    card = classifier.card
    rows = [r for r in read_rows(args.split / SPLIT_CSV) if r["split"] == "test"]
    batch = classifier.tensor([load_rgb(args.crops / FACES / r["file"]) for r in rows]) if rows else \
        torch.zeros(1, 3, card.input_size, card.input_size)

    with stage_output(args.out) as tmp:
        tmp.mkdir()
        export(classifier.model, card.input_size, tmp / ONNX_FILE)
        with torch.inference_mode():
            reference = classifier.model(batch).numpy()
        exported = run_logits(session(tmp / ONNX_FILE, 2), batch.numpy())
        diff = float(np.abs(reference - exported).max())
        agreement = float(np.mean(reference.argmax(1) == exported.argmax(1)))
        parity = {"test_images": len(rows), "max_abs_logit_diff": round(diff, 7), "top1_agreement": agreement,
                  "thresholds": dataclasses.asdict(params)}
        if diff > params.max_abs_logit_diff or agreement < params.min_top1_agreement:
            raise SystemExit(f"export_onnx: parity failed for {card.backbone}: {parity}")
        info = {"exported_from": str(args.model), "parity": parity}
        (tmp / CARD_FILE).write_text(dataclasses.replace(card, variant="onnx_fp32", variant_info=info).to_json())
        write_json(tmp / "parity.json", parity)
    log.info("%s: ONNX parity on %d test crops: max |logit diff| %.2e, top-1 agreement %.3f", card.backbone,
             len(rows), diff, agreement)


if __name__ == "__main__":
    main()
