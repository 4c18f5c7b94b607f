"""Trials behind reports/quantization.md: one INT8 setting changed at a time, each scored against the FP32 model it
came from (accuracy, top-1 agreement) and timed beside it in the same process (batch 1, one thread).

The source document's failures each have a knob here: per-tensor weights (accuracy collapse of depthwise-heavy
nets), signed activations (ONNX Runtime INT8 slower than FP32 on x86), calibration size and method, and running
FX's converted GraphModule instead of a frozen trace (FX INT8 slower than eager). Where INT8 leaves the integer
kernels is counted from the graphs themselves: `dequantize` nodes in FX, leftover DequantizeLinear in the graph
ONNX Runtime runs after fusion.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from tqdm import tqdm

from faceocc import fx_quant, int8_cpu, onnx_models
from faceocc.backbones import IMAGENET_MEAN, IMAGENET_STD
from faceocc.benchmark import interleaved_latency
from faceocc.calibration import calibration_ids, split_batch
from faceocc.classifier import Classifier, ModelCard
from faceocc.onnx_models import ONNX_FILE, run_logits, session
from faceocc.workspace import SPLIT_CSV


@dataclass(frozen=True)
class Baseline:
    """The setting every trial departs from by one change (the quantize_onnx / quantize_fx defaults)."""

    per_channel: bool = True
    activations: Literal["QUInt8", "QInt8"] = "QUInt8"
    method: Literal["MinMax", "Entropy", "Percentile"] = "MinMax"
    reduce_range: bool = True
    engine: Literal["auto", "onednn", "x86", "qnnpack"] = "auto"


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
    engines: tuple[str, ...] = ("onednn", "x86", "qnnpack")   # FX engines besides the baseline's
    threads: tuple[int, ...] = (1, 2)
    architectures: tuple[str, ...] = ("efficientnet_b0", "efficientnet_lite0")
    targets: Targets = field(default_factory=Targets)
    latency_runs: int = 60
    rounds: int = 5
    seed: int = 0


@dataclass(frozen=True)
class Scoring:
    """What every trial is measured on: a held-out batch (the val split: the test split is not tuned on)."""

    batch: np.ndarray          # NCHW float32, preprocessed
    labels: np.ndarray         # class indices
    latency_runs: int = 100
    rounds: int = 5

    @property
    def one(self) -> np.ndarray:
        return self.batch[:1] if len(self.batch) else np.zeros((1, 3, 112, 112), np.float32)


def scores(logits: np.ndarray, labels: np.ndarray, reference: np.ndarray | None = None) -> dict:
    """Accuracy on the labels, and top-1 agreement with a reference model's logits when given."""
    top1 = logits.argmax(axis=1)
    out = {"accuracy": round(float((top1 == labels).mean()), 4) if len(labels) else None}
    if reference is not None:
        out["agreement"] = round(float((top1 == reference.argmax(axis=1)).mean()), 4) if len(labels) else None
    return out


def torch_logits(model, batch: np.ndarray, batch_size: int = 64) -> np.ndarray:
    with torch.inference_mode():
        outs = [model(torch.from_numpy(batch[i : i + batch_size])).numpy() for i in range(0, len(batch), batch_size)]
    return np.concatenate(outs) if outs else np.empty((0, 0), np.float32)


def onnx_trial(fp32_onnx: Path, calibration: np.ndarray, scoring: Scoring, reference: dict, **settings) -> dict:
    """Quantize the ONNX FP32 model with `settings` (quantize_int8's keywords) and measure the result.
    `reference` holds the FP32 model's logits, session and name of its timing call."""
    with tempfile.TemporaryDirectory(prefix="faceocc-ablation-") as tmp:
        path = Path(tmp) / "int8.onnx"
        onnx_models.quantize_int8(fp32_onnx, path, calibration, work_dir=tmp, **settings)
        session = onnx_models.session(path, 1)
        logits = onnx_models.run_logits(session, scoring.batch)
        timing = interleaved_latency(
            {"fp32": lambda: reference["session"].run(None, {"input": scoring.one}),
             "int8": lambda: session.run(None, {"input": scoring.one})}, scoring.latency_runs, 10, scoring.rounds)
        ops = onnx_models.op_summary(onnx_models.runtime_ops(path, tmp))
        size_mb = path.stat().st_size / 1e6
    return {**settings, **scores(logits, scoring.labels, reference["logits"]), "latency_ms": timing["int8"],
            "fp32_latency_ms": timing["fp32"], "latency_ratio": round(timing["int8"] / timing["fp32"], 3),
            "size_mb": round(size_mb, 3), **ops}


def fx_trial(model: torch.nn.Module, input_size: int, calibration: np.ndarray, scoring: Scoring,
             reference_logits: np.ndarray, engine: str, per_channel: bool, time_converted: bool = False) -> dict:
    """FX static INT8 with one engine / weight granularity: accuracy of the frozen trace, and the eager FP32
    model and the frozen trace timed in turns (with the converted GraphModule too when asked: it is slow to time)."""
    settings = {"engine": engine, "per_channel": per_channel, "calibration_images": len(calibration)}
    try:
        quantized = fx_quant.quantize(model, torch.from_numpy(calibration), engine, per_channel)
        runner = fx_quant.frozen(quantized, input_size)
        logits = torch_logits(runner, scoring.batch)
    except (RuntimeError, ValueError) as err:  # an engine this CPU or build cannot run: a finding, not a crash
        return {**settings, "error": f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"}
    one = torch.from_numpy(scoring.one)
    calls = {"eager": lambda: model(one), "frozen": lambda: runner(one)}
    if time_converted:
        calls["converted"] = lambda: quantized(one)
    with torch.inference_mode():
        timing = interleaved_latency(calls, scoring.latency_runs, 10, scoring.rounds)
    converted = timing.get("converted")
    return {**settings, **scores(logits, scoring.labels, reference_logits), "eager_ms": timing["eager"],
            "converted_ms": converted, "frozen_ms": timing["frozen"],
            "converted_ratio": None if converted is None else round(converted / timing["eager"], 3),
            "frozen_ratio": round(timing["frozen"] / timing["eager"], 3),
            "dequantize_boundaries": fx_quant.dequantize_boundaries(quantized)}


def thread_scaling(model: torch.nn.Module, fx_runner, fp32_onnx: Path, int8_onnx: Path, one: np.ndarray,
                   threads: list[int], runs: int, rounds: int) -> dict:
    """Batch-1 latency of the four deployable variants at each thread count, timed in turns."""
    tensor = torch.from_numpy(one)
    previous = torch.get_num_threads()
    table = {}
    try:
        for n in threads:
            torch.set_num_threads(n)
            fp32_s, int8_s = onnx_models.session(fp32_onnx, n), onnx_models.session(int8_onnx, n)
            with torch.inference_mode():
                table[str(n)] = interleaved_latency(
                    {"fp32": lambda: model(tensor), "fx_int8": lambda: fx_runner(tensor),
                     "onnx_fp32": lambda: fp32_s.run(None, {"input": one}),
                     "onnx_int8": lambda: int8_s.run(None, {"input": one})}, runs, 10, rounds)
    finally:
        torch.set_num_threads(previous)
    return table


def architecture_trial(name: str, num_classes: int, input_size: int, calibration: np.ndarray, runs: int,
                       rounds: int) -> dict:
    """An untrained timm architecture (no accuracy: where INT8 boundaries fall and what they cost in time):
    FX dequantize boundaries, ONNX runtime ops and latency for unsigned and signed activations."""
    import timm

    torch.manual_seed(0)  # random weights, but the same ones every run
    model = timm.create_model(name, pretrained=False, num_classes=num_classes).eval()
    tmp = Path(tempfile.mkdtemp(prefix="faceocc-arch-"))
    try:
        quantized = fx_quant.quantize(model, torch.from_numpy(calibration), "onednn", True)
        boundaries = fx_quant.dequantize_boundaries(quantized)
        fp32_path = tmp / "fp32.onnx"
        onnx_models.export(fx_quant.fx_ready(model), input_size, fp32_path)
        one = calibration[:1]
        sessions = {"onnx_fp32": onnx_models.session(fp32_path, 1)}
        ops = {}
        for activations in ("QUInt8", "QInt8"):
            path = tmp / f"int8_{activations}.onnx"
            onnx_models.quantize_int8(fp32_path, path, calibration, activations=activations, work_dir=tmp)
            sessions[f"onnx_int8_{activations}"] = onnx_models.session(path, 1)
            ops[activations] = onnx_models.op_summary(onnx_models.runtime_ops(path, tmp))
        timing = interleaved_latency({k: (lambda s=s: s.run(None, {"input": one})) for k, s in sessions.items()},
                                     runs, 10, rounds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"architecture": name, "fx_dequantize_boundaries": len(boundaries),
            "fx_float_ops": sorted(set(boundaries) - {"output"}), "onnx_ops": ops, "latency_ms": timing}


def onnx_trials(p: QuantizationAblationParams, sizes: list[int], largest: int) -> list[tuple[str, dict]]:
    """(name, quantize_int8 settings + calibration size `n`) for each ONNX trial: one change from the baseline."""
    b = p.baseline
    base = {"per_channel": b.per_channel, "activations": b.activations, "method": b.method,
            "reduce_range": b.reduce_range}
    other_acts = "QInt8" if b.activations == "QUInt8" else "QUInt8"
    trials = [("baseline", base),
              ("per-tensor weights", {**base, "per_channel": not b.per_channel}),
              (f"{other_acts} activations", {**base, "activations": other_acts}),
              (f"{'8' if b.reduce_range else '7'}-bit weights", {**base, "reduce_range": not b.reduce_range}),
              ("ORT defaults (per-tensor, QInt8, 8-bit weights)",
               {**base, "per_channel": False, "activations": "QInt8", "reduce_range": False})]
    trials += [(f"{m} calibration", {**base, "method": m}) for m in p.methods]
    trials += [("dynamic (weights only)", {"mode": "dynamic", "per_channel": b.per_channel,
                                           "reduce_range": b.reduce_range})]
    trials = [(name, {**settings, "n": largest}) for name, settings in trials]
    return trials + [(f"calibration {n}", {**base, "n": n}) for n in sizes if n != largest]


def fx_trials(p: QuantizationAblationParams, sizes: list[int], largest: int) -> list[tuple[str, str, bool, int]]:
    """(name, engine, per-channel weights, calibration size) for each FX trial."""
    b, engine = p.baseline, int8_cpu.fx_engine(p.baseline.engine)
    trials = [(f"{engine}", engine, b.per_channel, largest),
              (f"{engine}, per-tensor weights", engine, not b.per_channel, largest)]
    trials += [(e, e, b.per_channel, largest) for e in p.engines if e != engine]
    return trials + [(f"calibration {n}", engine, b.per_channel, n) for n in sizes if n != largest]


def measure_backbone(name: str, p: QuantizationAblationParams, models: dict[str, Path], split: Path,
                     crops: Path) -> dict:
    """Every trial of one backbone on `p.split`, then its deployed INT8 models timed against their FP32 origins.
    `models` maps each variant (fp32, fx_int8, onnx_fp32, onnx_int8) to the folder of its backbones."""
    fp32 = Classifier.load(models["fp32"] / name)
    card = fp32.card
    batch, labels = split_batch(split, crops, card, split=p.split)
    scoring = Scoring(batch, np.array([card.classes.index(x) for x in labels], int), p.latency_runs, p.rounds)
    ids = calibration_ids(split / SPLIT_CSV, max(p.calibration_sizes), p.seed)
    calibration, _ = split_batch(split, crops, card, ids=ids)
    sizes = sorted({min(n, len(ids)) for n in p.calibration_sizes})

    fp32_onnx = models["onnx_fp32"] / name / ONNX_FILE
    onnx_ref = {"session": session(fp32_onnx, 1)}
    onnx_ref["logits"] = run_logits(onnx_ref["session"], batch)
    eager_logits = torch_logits(fp32.model, batch)
    result = {"backbone": name, "split": p.split, "images": len(labels),
              "fp32": scores(eager_logits, scoring.labels), "onnx_fp32": scores(onnx_ref["logits"], scoring.labels),
              "onnx": [], "fx": []}
    for label, settings in tqdm(onnx_trials(p, sizes, len(ids)), desc=f"{name} ONNX", unit="trial", leave=False):
        n = settings.pop("n")
        row = onnx_trial(fp32_onnx, calibration[:n], scoring, onnx_ref, **settings)
        result["onnx"].append({"trial": label, "calibration_images": n, **row})
    for label, engine, per_channel, n in tqdm(fx_trials(p, sizes, len(ids)), desc=f"{name} FX", unit="trial",
                                              leave=False):
        row = fx_trial(fp32.model, card.input_size, calibration[:n], scoring, eager_logits, engine, per_channel,
                       time_converted=not result["fx"])  # the baseline only: the point is made once
        result["fx"].append({"trial": label, **row})

    # the deployed models (quantize_fx / quantize_onnx outputs), timed against their FP32 origins; loaded only
    # now because the trials above switch the process-wide quantized engine
    fx_int8 = Classifier.load(models["fx_int8"] / name)
    result["threads"] = thread_scaling(fp32.model, fx_int8.model, fp32_onnx, models["onnx_int8"] / name / ONNX_FILE,
                                       scoring.one, p.threads, p.latency_runs, p.rounds)
    return result


def measure_architectures(p: QuantizationAblationParams, first: ModelCard, split: Path, crops: Path) -> list[dict]:
    """The untrained architectures of `p.architectures`, with the first backbone's classes and input size,
    calibrated on up to 50 train crops normalised as timm's ImageNet weights expect."""
    ids = calibration_ids(split / SPLIT_CSV, min(max(p.calibration_sizes), 50), p.seed)
    imagenet = dataclasses.replace(first, mean=IMAGENET_MEAN, std=IMAGENET_STD)  # timm's defaults
    calibration, _ = split_batch(split, crops, imagenet, ids=ids)
    return [architecture_trial(arch, len(first.classes), first.input_size, calibration, p.latency_runs, p.rounds)
            for arch in tqdm(p.architectures, desc="architectures", unit="model", leave=False)]


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


def keyed_by_name(figures: dict) -> dict:
    """The figures with each list of trials turned into a map by the trial's name: a metrics file holds numbers
    only, and `dvc metrics diff` then names a row by its trial instead of by its place in a list."""
    return {**figures,
            "backbones": {b["backbone"]: {**b, "fx": {t["trial"]: t for t in b["fx"]},
                                          "onnx": {t["trial"]: t for t in b["onnx"]}} for b in figures["backbones"]},
            "architectures": {a["architecture"]: a for a in figures["architectures"]}}
