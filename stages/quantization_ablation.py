"""Stage `quantization_ablation`: reports/quantization.md (+ .json), the benchmark behind the INT8 targets and the
ablation that reproduces and explains the source document's quantization failures.

Accuracy figures of the trials are on the val split (choosing settings on the test split would be tuning on it);
the targets table quotes the test-split accuracies evaluate wrote (reports/summary.json) and times the deployed
INT8 models against their FP32 origins in this one process.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from tqdm import tqdm

from faceocc import quant_ablation as qa
from faceocc.atomic import write_metrics, write_text
from faceocc.backbones import IMAGENET_MEAN, IMAGENET_STD
from faceocc.benchmark import cpu_name
from faceocc.calibration import calibration_ids, split_batch
from faceocc.classifier import Classifier, ModelCard
from faceocc.onnx_models import ONNX_FILE, run_logits, session
from stages._common import load_params, setup_logging

log = logging.getLogger("quantization_ablation")


@dataclass(frozen=True)
class Baseline:
    """The setting every trial departs from by one change (the quantize_onnx / quantize_fx defaults)."""

    per_channel: bool = True
    activations: Literal["QUInt8", "QInt8"] = "QUInt8"
    method: Literal["MinMax", "Entropy", "Percentile"] = "MinMax"
    engine: Literal["onednn", "x86", "qnnpack"] = "onednn"


@dataclass(frozen=True)
class Targets:
    max_accuracy_drop_pt: float = 1.0
    max_onnx_int8_ratio: float = 0.7    # ONNX INT8 latency / ONNX FP32
    max_fx_int8_ratio: float = 0.8      # FX INT8 latency / eager FP32


@dataclass(frozen=True)
class QuantizationAblationParams:
    backbones: tuple[str, ...] = ("mobilenet_v2", "efficientnet_lite0", "resnet18")
    split: Literal["train", "val", "test"] = "val"
    baseline: Baseline = field(default_factory=Baseline)
    calibration_sizes: tuple[int, ...] = (1, 10, 50, 200)     # the largest is the baseline's
    methods: tuple[str, ...] = ("Entropy", "Percentile")      # ONNX calibration methods besides the baseline's
    engines: tuple[str, ...] = ("x86", "qnnpack")             # FX engines besides the baseline's
    threads: tuple[int, ...] = (1, 2)
    architectures: tuple[str, ...] = ("efficientnet_b0", "efficientnet_lite0")
    targets: Targets = field(default_factory=Targets)
    latency_runs: int = 60
    rounds: int = 5
    seed: int = 0


def onnx_trials(p: QuantizationAblationParams) -> list[tuple[str, dict]]:
    b = p.baseline
    base = {"per_channel": b.per_channel, "activations": b.activations, "method": b.method}
    other_acts = "QInt8" if b.activations == "QUInt8" else "QUInt8"
    trials = [("baseline", base),
              ("per-tensor weights", {**base, "per_channel": not b.per_channel}),
              (f"{other_acts} activations", {**base, "activations": other_acts}),
              ("ORT defaults (per-tensor, QInt8)", {**base, "per_channel": False, "activations": "QInt8"})]
    trials += [(f"{m} calibration", {**base, "method": m}) for m in p.methods]
    trials += [("dynamic (weights only)", {"mode": "dynamic", "per_channel": b.per_channel})]
    return trials


def run_backbone(name: str, p: QuantizationAblationParams, dirs: dict[str, Path], split: Path, crops: Path) -> dict:
    fp32 = Classifier.load(dirs["fp32"] / name)
    card = fp32.card
    batch, labels = split_batch(split, crops, card, split=p.split)
    scoring = qa.Scoring(batch, np.array([card.classes.index(x) for x in labels], int), p.latency_runs, p.rounds)
    largest = max(p.calibration_sizes)
    ids = calibration_ids(split / "split.csv", largest, p.seed)
    calibration, _ = split_batch(split, crops, card, ids=ids)
    sizes = sorted({min(n, len(ids)) for n in p.calibration_sizes})

    fp32_onnx = dirs["onnx_fp32"] / name / ONNX_FILE
    onnx_ref = {"session": session(fp32_onnx, 1)}
    onnx_ref["logits"] = run_logits(onnx_ref["session"], batch)
    eager_logits = qa.torch_logits(fp32.model, batch)
    result = {"backbone": name, "split": p.split, "images": len(labels),
              "fp32": qa.scores(eager_logits, scoring.labels), "onnx_fp32": qa.scores(onnx_ref["logits"], scoring.labels),
              "onnx": [], "fx": []}

    trials = onnx_trials(p) + [(f"calibration {n}", {"per_channel": p.baseline.per_channel, "activations":
                                                     p.baseline.activations, "method": p.baseline.method, "n": n})
                               for n in sizes if n != len(ids)]
    for label, settings in tqdm(trials, desc=f"{name} ONNX", unit="trial", leave=False):
        n = settings.pop("n", len(ids))
        row = qa.onnx_trial(fp32_onnx, calibration[:n], scoring, onnx_ref, **settings)
        result["onnx"].append({"trial": label, "calibration_images": n, **row})

    engines = [p.baseline.engine] + [e for e in p.engines if e != p.baseline.engine]
    fx_trials = [(f"{p.baseline.engine}", p.baseline.engine, p.baseline.per_channel, len(ids)),
                 (f"{p.baseline.engine}, per-tensor weights", p.baseline.engine, not p.baseline.per_channel, len(ids))]
    fx_trials += [(e, e, p.baseline.per_channel, len(ids)) for e in engines[1:]]
    fx_trials += [(f"calibration {n}", p.baseline.engine, p.baseline.per_channel, n) for n in sizes if n != len(ids)]
    for label, engine, per_channel, n in tqdm(fx_trials, desc=f"{name} FX", unit="trial", leave=False):
        row = qa.fx_trial(fp32.model, card.input_size, calibration[:n], scoring, eager_logits, engine, per_channel,
                          time_converted=not result["fx"])  # the baseline only: the point is made once
        result["fx"].append({"trial": label, **row})

    # the deployed models (quantize_fx / quantize_onnx outputs), timed against their FP32 origins; loaded only
    # now because the trials above switch the process-wide quantized engine
    fx_int8 = Classifier.load(dirs["fx_int8"] / name)
    result["threads"] = qa.thread_scaling(fp32.model, fx_int8.model, fp32_onnx, dirs["onnx_int8"] / name / ONNX_FILE,
                                          scoring.one, p.threads, p.latency_runs, p.rounds)
    return result


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
    dirs = {v: args.models / v for v in ("fp32", "fx_int8", "onnx_fp32", "onnx_int8")}
    backbones = [run_backbone(b, p, dirs, args.split, args.crops) for b in p.backbones]
    first = ModelCard.read(dirs["fp32"] / p.backbones[0]) if p.backbones else None
    architectures = []
    if first is not None and p.architectures:
        ids = calibration_ids(args.split / "split.csv", min(max(p.calibration_sizes), 50), p.seed)
        imagenet = dataclasses.replace(first, mean=IMAGENET_MEAN, std=IMAGENET_STD)  # timm's defaults
        calibration, _ = split_batch(args.split, args.crops, imagenet, ids=ids)
        for arch in tqdm(p.architectures, desc="architectures", unit="model", leave=False):
            architectures.append(qa.architecture_trial(arch, len(first.classes), first.input_size, calibration,
                                                       p.latency_runs, p.rounds))
    summary = json.loads(args.summary.read_text())
    figures = {"cpu": cpu_name(), "torch_threads_for_trials": 1, "backbones": backbones,
               "architectures": architectures, "targets": targets(backbones, summary, p.targets)}
    write_metrics(args.out.with_suffix(".json"), keyed_by_name(figures))
    write_text(args.out, markdown(figures, p))
    log.info("wrote %s", args.out)


def keyed_by_name(figures: dict) -> dict:
    """The figures with each list of trials turned into a map by the trial's name: a metrics file holds numbers
    only, and `dvc metrics diff` then names a row by its trial instead of by its place in a list."""
    return {**figures,
            "backbones": {b["backbone"]: {**b, "fx": {t["trial"]: t for t in b["fx"]},
                                          "onnx": {t["trial"]: t for t in b["onnx"]}} for b in figures["backbones"]},
            "architectures": {a["architecture"]: a for a in figures["architectures"]}}


def targets(backbones: list[dict], summary: dict, t: Targets) -> dict:
    """Per backbone: test-split accuracy change of each INT8 variant (evaluate's figures) and the one-process
    latency ratios of the deployed models at one thread, each checked against its target."""
    out = {}
    for b in backbones:
        name, one_thread = b["backbone"], b["threads"].get("1", {})
        cells = summary.get(name, {})
        row = {}
        for int8, base, limit in (("fx_int8", "fp32", t.max_fx_int8_ratio),
                                  ("onnx_int8", "onnx_fp32", t.max_onnx_int8_ratio)):
            drop = (None if int8 not in cells or base not in cells
                    else round((cells[base]["accuracy"] - cells[int8]["accuracy"]) * 100, 2))
            ratio = (round(one_thread[int8] / one_thread[base], 3) if one_thread.get(base) else None)
            row[int8] = {"test_accuracy_drop_pt": drop, "latency_ratio": ratio, "ratio_target": limit,
                         "accuracy_ok": drop is not None and drop <= t.max_accuracy_drop_pt,
                         "speed_ok": ratio is not None and ratio <= limit}
        out[name] = row
    return out


def _pct(x) -> str:
    return "—" if x is None else f"{x:.1%}"


def _delta(x, ref) -> str:
    return "—" if x is None or ref is None else f"{round((x - ref) * 100, 1) + 0.0:+.1f}"  # no "-0.0"


def markdown(f: dict, p: QuantizationAblationParams) -> str:
    b = p.baseline
    lines = [
        "# INT8 quantization: accuracy, speed, and why", "",
        f"CPU: {f['cpu']}. Latency: batch 1, one thread unless stated, medians of {p.latency_runs} runs taken in "
        f"{p.rounds} interleaved rounds, each INT8 model timed in the same process as the FP32 model it came from, "
        "so the **ratios** are the figures to trust; milliseconds move 10-30 % between runs on this machine.",
        f"Trials change one thing from the baseline (weights {'per-channel' if b.per_channel else 'per-tensor'}, "
        f"{b.activations} activations, {b.method} calibration, FX engine {b.engine}) and are scored on the "
        f"**{p.split}** split; the test split is only quoted from evaluate's figures.", "",
        "## Targets (deployed models)", "",
        f"Test-split accuracy change against FP32 (target: at most {p.targets.max_accuracy_drop_pt:g} point lost) "
        f"and latency ratio (targets: FX INT8 / eager FP32 <= {p.targets.max_fx_int8_ratio:g}, ONNX INT8 / ONNX "
        f"FP32 <= {p.targets.max_onnx_int8_ratio:g}).", "",
        "| backbone | FX INT8: accuracy change / latency ratio | ONNX INT8: accuracy change / latency ratio |",
        "|---|---|---|"]
    for name, row in f["targets"].items():
        cells = []
        for v in ("fx_int8", "onnx_int8"):
            c = row[v]
            drop = "—" if c["test_accuracy_drop_pt"] is None else f"{0.0 - c['test_accuracy_drop_pt']:+.1f} pt"
            ratio = "—" if c["latency_ratio"] is None else f"{c['latency_ratio']:.2f}x"
            ok = "meets both" if c["accuracy_ok"] and c["speed_ok"] else \
                "misses " + " and ".join(k for k, good in (("accuracy", c["accuracy_ok"]), ("speed", c["speed_ok"]))
                                          if not good)
            cells.append(f"{drop} / {ratio} ({ok})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")

    lines += ["", "## Threads (deployed models, batch 1, ms)", "",
              "| backbone | threads | eager FP32 | FX INT8 | ONNX FP32 | ONNX INT8 |", "|---|---|---|---|---|---|"]
    for bb in f["backbones"]:
        for n, t in bb["threads"].items():
            lines.append(f"| {bb['backbone']} | {n} | {t['fp32']:.2f} | {t['fx_int8']:.2f} | {t['onnx_fp32']:.2f} | "
                         f"{t['onnx_int8']:.2f} |")

    for bb in f["backbones"]:
        ref = bb["onnx_fp32"]["accuracy"]
        lines += ["", f"## {bb['backbone']}: {bb['images']} {bb['split']} crops; FP32 accuracy "
                      f"{_pct(bb['fp32']['accuracy'])} (eager), {_pct(ref)} (ONNX)", "",
                  "### ONNX Runtime INT8", "",
                  "| trial | accuracy | change (pt) | top-1 = FP32 | INT8 ms | FP32 ms | ratio | MB | runtime ops: "
                  "INT8 / float / dequantize |", "|---|---|---|---|---|---|---|---|---|"]
        for r in bb["onnx"]:
            lines.append(f"| {r['trial']} | {_pct(r['accuracy'])} | {_delta(r['accuracy'], ref)} | "
                         f"{_pct(r.get('agreement'))} | {r['latency_ms']:.2f} | {r['fp32_latency_ms']:.2f} | "
                         f"{r['latency_ratio']:.2f}x | {r['size_mb']:.1f} | {r['int8_ops']} / {r['float_ops']} / "
                         f"{r['dequantize']} |")
        eager = bb["fp32"]["accuracy"]
        lines += ["", "### PyTorch FX INT8", "",
                  "| trial | accuracy | change (pt) | top-1 = FP32 | eager FP32 ms | converted ms (ratio) | "
                  "frozen ms (ratio) | dequantize boundaries |", "|---|---|---|---|---|---|---|---|"]
        for r in bb["fx"]:
            if "error" in r:
                lines.append(f"| {r['trial']} | failed: {r['error']} | | | | | | |")
                continue
            converted = "—" if r["converted_ms"] is None else f"{r['converted_ms']:.2f} ({r['converted_ratio']:.2f}x)"
            lines.append(f"| {r['trial']} | {_pct(r['accuracy'])} | {_delta(r['accuracy'], eager)} | "
                         f"{_pct(r.get('agreement'))} | {r['eager_ms']:.2f} | {converted} | "
                         f"{r['frozen_ms']:.2f} ({r['frozen_ratio']:.2f}x) | "
                         f"{len(r['dequantize_boundaries'])}: {', '.join(r['dequantize_boundaries'])} |")

    if f["architectures"]:
        lines += ["", "## Where INT8 falls back to float: architectures (untrained, timing and graph only)", "",
                  "| architecture | FX dequantize boundaries (float ops) | ONNX runtime ops QUInt8: INT8 / float / "
                  "dequantize | ONNX FP32 ms | INT8 QUInt8 ms | INT8 QInt8 ms |", "|---|---|---|---|---|---|"]
        for a in f["architectures"]:
            o, t = a["onnx_ops"]["QUInt8"], a["latency_ms"]
            lines.append(f"| {a['architecture']} | {a['fx_dequantize_boundaries']} "
                         f"({', '.join(a['fx_float_ops']) or 'none'}) | {o['int8_ops']} / {o['float_ops']} / "
                         f"{o['dequantize']} | {t['onnx_fp32']:.2f} | {t['onnx_int8_QUInt8']:.2f} | "
                         f"{t['onnx_int8_QInt8']:.2f} |")
    lines += ["", "## What this says about the source document's failures", "", *explanations(f)]
    return "\n".join(lines) + "\n"


def explanations(f: dict) -> list[str]:
    """Sentences built from the figures above, so they stay true when the figures change."""
    out = []
    for bb in f["backbones"]:
        onnx = {r["trial"]: r for r in bb["onnx"]}
        fx = {r["trial"]: r for r in bb["fx"]}
        base, tensor = onnx.get("baseline"), next((r for k, r in onnx.items() if k == "per-tensor weights"), None)
        signed = next((r for k, r in onnx.items() if k.endswith("activations")), None)
        fx_base = next(iter(fx.values()), None)
        parts = [f"- **{bb['backbone']}**:"]
        if base and tensor:
            parts.append(f"per-tensor weights take ONNX INT8 from {_pct(base['accuracy'])} to "
                         f"{_pct(tensor['accuracy'])} (top-1 agreement with FP32 {_pct(base.get('agreement'))} -> "
                         f"{_pct(tensor.get('agreement'))});")
        if base and signed:
            parts.append(f"{signed['activations']} activations run at {signed['latency_ratio']:.2f}x FP32 against "
                         f"{base['latency_ratio']:.2f}x for {base['activations']};")
        dynamic = onnx.get("dynamic (weights only)")
        if dynamic:
            parts.append(f"dynamic quantization (convolutions as ConvInteger, activations quantized on the fly) runs at "
                         f"{dynamic['latency_ratio']:.2f}x FP32;")
        if fx_base and "error" not in fx_base:
            parts.append(f"FX INT8 called as the converted GraphModule runs at {fx_base['converted_ratio']:.2f}x eager "
                         f"FP32, traced and frozen at {fx_base['frozen_ratio']:.2f}x.")
        qnnpack = fx.get("qnnpack")
        if qnnpack and "error" not in qnnpack and qnnpack["accuracy"] is not None and bb["fp32"]["accuracy"]:
            lost = (bb["fp32"]["accuracy"] - qnnpack["accuracy"]) * 100
            verdict = (f"a collapse like the source's ({lost:.0f} points lost)" if lost > 10 else
                       f"{round(-lost, 1) + 0.0:+.1f} points against FP32: the damage depends on the model")
            parts.append(f"The `qnnpack` engine (built for ARM) scores {_pct(qnnpack['accuracy'])} here, at "
                         f"{qnnpack['frozen_ratio']:.2f}x eager FP32: {verdict}.")
        out.append(" ".join(parts))
    arch = {a["architecture"]: a for a in f["architectures"]}
    if "efficientnet_b0" in arch and "efficientnet_lite0" in arch:
        b0, lite = arch["efficientnet_b0"], arch["efficientnet_lite0"]
        out.append(f"- **EfficientNet-B0 vs Lite0**: B0's SiLU activations and squeeze-excitation gates leave INT8 "
                   f"{b0['fx_dequantize_boundaries']} times in FX (Lite0: {lite['fx_dequantize_boundaries']}) and keep "
                   f"{b0['onnx_ops']['QUInt8']['float_ops']} float ops in ONNX Runtime's fused graph (Lite0: "
                   f"{lite['onnx_ops']['QUInt8']['float_ops']}). Each round trip costs a dequantize, a float op and a "
                   "re-quantization with its own calibrated range, which adds rounding error (not measured here: these "
                   "weights are untrained) and time: B0 INT8 runs "
                   f"{b0['latency_ms']['onnx_int8_QUInt8'] / b0['latency_ms']['onnx_fp32']:.2f}x its FP32 time with "
                   f"unsigned activations and {b0['latency_ms']['onnx_int8_QInt8'] / b0['latency_ms']['onnx_fp32']:.2f}x "
                   "with signed ones. That is why this project trains Lite0 (ReLU6, no SE) as its EfficientNet.")
    return out


if __name__ == "__main__":
    main()
