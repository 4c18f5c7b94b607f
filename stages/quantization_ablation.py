"""Stage `quantization_ablation`: reports/quantization.md (+ .json), the benchmark behind the INT8 targets and the
ablation that reproduces and explains the source document's quantization failures.

Accuracy figures of the trials are on the val split (choosing settings on the test split would be tuning on it);
the targets table quotes the test-split accuracies evaluate wrote (reports/summary.json) and times the deployed
INT8 models against their FP32 origins in this one process. The trials: faceocc/quantization_trials.py; the
report: faceocc/quantization_report.py.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from faceocc import int8_cpu
from faceocc import quantization_trials as trials
from faceocc.atomic import write_metrics, write_text
from faceocc.benchmark import cpu_name
from faceocc.classifier import ModelCard
from faceocc.quantization_report import markdown
from faceocc.quantization_trials import QuantizationAblationParams
from faceocc.workspace import MODEL_VARIANTS
from stages._common import load_params, setup_logging

log = logging.getLogger("quantization_ablation")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", required=True, type=Path, help="models/ (fp32, fx_int8, onnx_fp32, onnx_int8)")
    parser.add_argument("--split", required=True, type=Path)
    parser.add_argument("--crops", required=True, type=Path)
    parser.add_argument("--summary", required=True, type=Path, help="reports/summary.json (test-split accuracy)")
    parser.add_argument("--out", required=True, type=Path, help="quantization.md; figures beside it as .json")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    setup_logging()
    p = load_params("quantization_ablation", QuantizationAblationParams, args.params)
    torch.set_flush_denormal(True)
    torch.set_num_threads(1)  # the trials: batch 1 on one thread (thread_scaling sets its own counts)
    models = {v: args.models / v for v in MODEL_VARIANTS}
    backbones = [trials.measure_backbone(b, p, models, args.split, args.crops) for b in p.backbones]
    architectures = []
    if p.backbones and p.architectures:
        first = ModelCard.read(models["fp32"] / p.backbones[0])
        architectures = trials.measure_architectures(p, first, args.split, args.crops)
    summary = json.loads(args.summary.read_text())
    figures = {"cpu": cpu_name(), "cpu_has_vnni": not int8_cpu.saturates(),
               "fx_engine": int8_cpu.fx_engine(p.baseline.engine), "torch_threads_for_trials": 1,
               "backbones": backbones, "architectures": architectures,
               "targets": trials.targets(backbones, summary, p.targets)}
    write_metrics(args.out.with_suffix(".json"), trials.keyed_by_name(figures))
    write_text(args.out, markdown(figures, p))
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
