"""Trials behind reports/quantization.md: one INT8 setting changed at a time, each scored against the FP32 model it
came from (accuracy, top-1 agreement) and timed beside it in the same process (batch 1, one thread).

The source document's failures each have a knob here: per-tensor weights (accuracy collapse of depthwise-heavy
nets), signed activations (ONNX Runtime INT8 slower than FP32 on x86), calibration size and method, and running
FX's converted GraphModule instead of a frozen trace (FX INT8 slower than eager). Where INT8 leaves the integer
kernels is counted from the graphs themselves: `dequantize` nodes in FX, leftover DequantizeLinear in the graph
ONNX Runtime runs after fusion.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from faceocc import fx_quant, onnx_models
from faceocc.benchmark import interleaved_latency


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
