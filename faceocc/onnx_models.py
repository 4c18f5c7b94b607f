"""ONNX variants of a trained model: export with a dynamic batch axis, a parity check against PyTorch, and
ONNX Runtime static INT8 quantization (QDQ, per-channel weights) calibrated on training crops.

Measured on this machine (../shared/NOTES.md): ONNX Runtime's INT8 is only fast with *unsigned* activations
(`QUInt8`); signed activations were 1.1-3x slower and made EfficientNet-B0 slower than FP32, one of the source
document's failures. The activation type is a parameter so that ablation stays one edit away.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                      quantize_dynamic, quantize_static)
from onnxruntime.quantization.shape_inference import quant_pre_process

ONNX_FILE = "model.onnx"
OPSET = 17


def export(model: torch.nn.Module, input_size: int, path: str | Path) -> None:
    """TorchScript-based export (the dynamo exporter needs onnxscript), batch axis dynamic, then checked."""
    model = model.eval().cpu()
    example = torch.zeros(1, 3, input_size, input_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, (example,), str(path), dynamo=False, opset_version=OPSET, input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)


def session(path: str | Path, threads: int = 1) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_logits(sess: ort.InferenceSession, batch: np.ndarray, batch_size: int = 64) -> np.ndarray:
    outs = [sess.run(None, {"input": batch[i : i + batch_size]})[0] for i in range(0, len(batch), batch_size)]
    return np.concatenate(outs) if outs else np.empty((0, 0), np.float32)


class _Calibration(CalibrationDataReader):
    def __init__(self, batch: np.ndarray):
        self._items = iter([{"input": batch[i : i + 1]} for i in range(len(batch))])

    def get_next(self):
        return next(self._items, None)


def quantize_int8(fp32_path: str | Path, out_path: str | Path, calibration: np.ndarray, *, mode: str = "static",
                  method: str = "MinMax", activations: str = "QUInt8", weights: str = "QInt8",
                  per_channel: bool = True, reduce_range: bool = True, work_dir: str | Path | None = None) -> None:
    """Static QDQ INT8 (calibrated on `calibration`, NCHW float32) or dynamic INT8 weights. `reduce_range` keeps
    weights to 7 bits, so that u8 x s8 pair sums fit AVX2's 16-bit VPMADDUBSW on CPUs without VNNI."""
    if mode == "dynamic":
        quantize_dynamic(str(fp32_path), str(out_path), weight_type=getattr(QuantType, weights),
                         per_channel=per_channel, reduce_range=reduce_range)
        return
    prepared = Path(work_dir or Path(out_path).parent) / "preprocessed.onnx"
    quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
    quantize_static(str(prepared), str(out_path), _Calibration(calibration), quant_format=QuantFormat.QDQ,
                    per_channel=per_channel, reduce_range=reduce_range, activation_type=getattr(QuantType, activations),
                    weight_type=getattr(QuantType, weights), calibrate_method=getattr(CalibrationMethod, method))
    prepared.unlink(missing_ok=True)


INT8_KERNELS = frozenset({"QLinearConv", "QLinearAdd", "QLinearMul", "QLinearGlobalAveragePool", "QLinearAveragePool",
                          "QGemm", "QLinearMatMul", "MatMulInteger", "ConvInteger", "DynamicQuantizeMatMul",
                          "QLinearSigmoid", "QLinearLeakyRelu", "QLinearConcat", "QLinearSoftmax", "QAttention"})
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"})
LAYOUT_OPS = frozenset({"Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "ReorderInput", "ReorderOutput"})


def runtime_ops(path: str | Path, work_dir: str | Path) -> dict[str, int]:
    """Op counts of the graph ONNX Runtime actually runs, after it has fused each DequantizeLinear -> op ->
    QuantizeLinear group it has an INT8 kernel for. A DequantizeLinear left over is a boundary where
    activations go back to float (the model's output is one)."""
    from collections import Counter

    optimized = Path(work_dir) / "runtime_graph.onnx"
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(optimized)
    options.log_severity_level = 3  # ORT warns that an ENABLE_ALL graph is machine-specific: it is only counted
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    counts = Counter(node.op_type for node in onnx.load(str(optimized)).graph.node)
    optimized.unlink(missing_ok=True)
    return dict(sorted(counts.items()))


def op_summary(counts: dict[str, int]) -> dict[str, int]:
    """Runtime ops grouped: INT8 kernels, float compute ops, and the dequantize boundaries between them."""
    int8 = sum(n for op, n in counts.items() if op in INT8_KERNELS)
    float_ops = sum(n for op, n in counts.items() if op not in INT8_KERNELS | QDQ_OPS | LAYOUT_OPS)
    return {"int8_ops": int8, "float_ops": float_ops, "dequantize": counts.get("DequantizeLinear", 0),
            "quantize": counts.get("QuantizeLinear", 0) + counts.get("DynamicQuantizeLinear", 0)}
