"""reports/quantization.md: the quantization trials' figures as tables, and the sentences they support about the
source document's failures, built from the figures so that they stay true when the figures change."""

from __future__ import annotations

from faceocc.markdown import table
from faceocc.quantization_trials import QuantizationAblationParams


def _pct(x) -> str:
    return "—" if x is None else f"{x:.1%}"


def _delta(x, ref) -> str:
    return "—" if x is None or ref is None else f"{round((x - ref) * 100, 1) + 0.0:+.1f}"  # no "-0.0"


def markdown(f: dict, p: QuantizationAblationParams) -> str:
    b = p.baseline
    lines = [
        "# INT8 quantization: accuracy, speed, and why", "",
        f"CPU: {f['cpu']} ({'with' if f.get('cpu_has_vnni', True) else 'without'} VNNI; faceocc/int8_cpu.py says "
        f"why it matters). Latency: batch 1, one thread unless stated, medians of {p.latency_runs} runs taken in "
        f"{p.rounds} interleaved rounds, each INT8 model timed in the same process as the FP32 model it came from, "
        "so the **ratios** are the figures to trust; milliseconds move 10-30 % between runs on this machine.",
        f"Trials change one thing from the baseline (weights {'per-channel' if b.per_channel else 'per-tensor'}, "
        f"{b.activations} activations, {'7' if b.reduce_range else '8'}-bit weights, {b.method} calibration, FX "
        f"engine {f.get('fx_engine', b.engine)}) and are scored on the "
        f"**{p.split}** split; the test split is only quoted from evaluate's figures.", "",
        "## Targets (deployed models)", "",
        f"Test-split accuracy change against FP32 (target: at most {p.targets.max_accuracy_drop_pt:g} point lost) "
        f"and latency ratio (targets: FX INT8 / eager FP32 <= {p.targets.max_fx_int8_ratio:g}, ONNX INT8 / ONNX "
        f"FP32 <= {p.targets.max_onnx_int8_ratio:g}).", ""]
    lines += table(["backbone", "FX INT8: accuracy change / latency ratio",
                    "ONNX INT8: accuracy change / latency ratio"],
                   [[name, target_cell(row["fx_int8"]), target_cell(row["onnx_int8"])]
                    for name, row in f["targets"].items()])
    lines += ["", "## Threads (deployed models, batch 1, ms)", ""]
    lines += table(["backbone", "threads", "eager FP32", "FX INT8", "ONNX FP32", "ONNX INT8"],
                   [[bb["backbone"], n, *(f"{t[v]:.2f}" for v in ("fp32", "fx_int8", "onnx_fp32", "onnx_int8"))]
                    for bb in f["backbones"] for n, t in bb["threads"].items()])
    for bb in f["backbones"]:
        ref, eager = bb["onnx_fp32"]["accuracy"], bb["fp32"]["accuracy"]
        lines += ["", f"## {bb['backbone']}: {bb['images']} {bb['split']} crops; FP32 accuracy "
                      f"{_pct(bb['fp32']['accuracy'])} (eager), {_pct(ref)} (ONNX)", "", "### ONNX Runtime INT8", ""]
        lines += table(["trial", "accuracy", "change (pt)", "top-1 = FP32", "INT8 ms", "FP32 ms", "ratio", "MB",
                        "runtime ops: INT8 / float / dequantize"],
                       [[r["trial"], _pct(r["accuracy"]), _delta(r["accuracy"], ref), _pct(r.get("agreement")),
                         f"{r['latency_ms']:.2f}", f"{r['fp32_latency_ms']:.2f}", f"{r['latency_ratio']:.2f}x",
                         f"{r['size_mb']:.1f}", f"{r['int8_ops']} / {r['float_ops']} / {r['dequantize']}"]
                        for r in bb["onnx"]])
        lines += ["", "### PyTorch FX INT8", ""]
        lines += table(["trial", "accuracy", "change (pt)", "top-1 = FP32", "eager FP32 ms", "converted ms (ratio)",
                        "frozen ms (ratio)", "dequantize boundaries"], [fx_cells(r, eager) for r in bb["fx"]])
    if f["architectures"]:
        lines += ["", "## Where INT8 falls back to float: architectures (untrained, timing and graph only)", ""]
        lines += table(["architecture", "FX dequantize boundaries (float ops)",
                        "ONNX runtime ops QUInt8: INT8 / float / dequantize", "ONNX FP32 ms", "INT8 QUInt8 ms",
                        "INT8 QInt8 ms"],
                       [[a["architecture"],
                         f"{a['fx_dequantize_boundaries']} ({', '.join(a['fx_float_ops']) or 'none'})",
                         "{int8_ops} / {float_ops} / {dequantize}".format(**a["onnx_ops"]["QUInt8"]),
                         *(f"{a['latency_ms'][k]:.2f}" for k in ("onnx_fp32", "onnx_int8_QUInt8", "onnx_int8_QInt8"))]
                        for a in f["architectures"]])
    lines += ["", "## What this says about the source document's failures", "", *explanations(f)]
    return "\n".join(lines) + "\n"


def target_cell(c: dict) -> str:
    drop = "—" if c["test_accuracy_drop_pt"] is None else f"{0.0 - c['test_accuracy_drop_pt']:+.1f} pt"
    ratio = "—" if c["latency_ratio"] is None else f"{c['latency_ratio']:.2f}x"
    missed = [k for k, good in (("accuracy", c["accuracy_ok"]), ("speed", c["speed_ok"])) if not good]
    return f"{drop} / {ratio} ({'misses ' + ' and '.join(missed) if missed else 'meets both'})"


def fx_cells(r: dict, eager: float | None) -> list[str]:
    if "error" in r:
        return [r["trial"], f"failed: {r['error']}", *[""] * 6]
    converted = "—" if r["converted_ms"] is None else f"{r['converted_ms']:.2f} ({r['converted_ratio']:.2f}x)"
    return [r["trial"], _pct(r["accuracy"]), _delta(r["accuracy"], eager), _pct(r.get("agreement")),
            f"{r['eager_ms']:.2f}", converted, f"{r['frozen_ms']:.2f} ({r['frozen_ratio']:.2f}x)",
            f"{len(r['dequantize_boundaries'])}: {', '.join(r['dequantize_boundaries'])}"]


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
        width = next((r for k, r in onnx.items() if k.endswith("-bit weights")), None)
        if base and width:
            parts.append(f"{'8' if base.get('reduce_range') else '7'}-bit weights agree with FP32 on "
                         f"{_pct(width.get('agreement'))} of crops against {_pct(base.get('agreement'))} for the "
                         f"baseline's {'7' if base.get('reduce_range') else '8'} bits;")
        dynamic = onnx.get("dynamic (weights only)")
        if dynamic:
            parts.append("dynamic quantization (convolutions as ConvInteger, activations quantized on the fly) runs "
                         f"at {dynamic['latency_ratio']:.2f}x FP32;")
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
                   "unsigned activations and "
                   f"{b0['latency_ms']['onnx_int8_QInt8'] / b0['latency_ms']['onnx_fp32']:.2f}x with signed ones. "
                   "That is why this project trains Lite0 (ReLU6, no SE) as its EfficientNet.")
    return out

