"""PyTorch FX graph-mode post-training static INT8 (`torch.ao.quantization`: `prepare_fx` / `convert_fx`).

Every call into the FX API lives in this module: `torch.ao.quantization` is deprecated in favour of torchao's PT2E
flow, and moving to it should touch this file only.

What makes FX INT8 fast or slow here (measured, ../shared/NOTES.md and reports/quantization.md):
- The converted GraphModule calls each quantized op from Python and re-packs nothing: MobileNetV2 at 112 px ran
  12.8 ms converted against 11.4 ms eager FP32 (the source document's "INT8 slower than FP32"). Traced and frozen
  with TorchScript, the same model ran 5.3 ms. So inference runs the frozen trace, one per thread count.
- Engines: on the Intel Xeon of the first sessions (its CPU flags were not recorded), `onednn` (8-bit
  activations) kept 90.6 % top-1 agreement with FP32 on odd ImageNet photos where `x86` (7-bit activations,
  `reduce_range`) kept 65.6 %, at the same speed (2.9 vs 3.0 ms). On an AMD EPYC without VNNI `onednn`'s sums
  saturate (86.6 % agreement on real val crops against 99.0 % for `x86`, docs/setup.md): `x86` is the one there.
  The stage's `auto` picks by the CPU's flags (faceocc/int8_cpu.py). `qnnpack` targets ARM.
- Weights per channel by default: depthwise convolutions have per-channel ranges that differ by orders of
  magnitude, and one shared scale per tensor rounds the small channels to zero.
- timm's EfficientNet fuses BatchNorm and activation into one module (`BatchNormAct2d`) that FX cannot fold into
  the convolution; `fx_ready` splits it back into BatchNorm2d + activation first.

A saved model is the converted model's state dict (quantized tensors, scales, zero points) written by
`torch.save` and read back with `weights_only=True`, so loading a model file never runs code. Loading rebuilds
the graph from the backbone registry with the settings recorded in the model card, then loads the tensors.
"""

from __future__ import annotations

import copy
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

FX_FILE = "model_fx_int8.pt"
ENGINES = ("x86", "onednn", "qnnpack")


@contextmanager
def _quiet():
    """torch.ao and TorchScript warn on every call that they are deprecated (see above); said once, here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.")
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # quantized ops read scales as Python floats
        yield


class FxModelError(ValueError):
    """A file that is not an FX INT8 model of the expected backbone; str(err) names the file and the reason."""


def fx_ready(model: nn.Module) -> nn.Module:
    """A copy in eval mode that FX can trace and fold: timm's BatchNormAct2d becomes BatchNorm2d + activation."""
    model = copy.deepcopy(model).eval()
    _unfuse_batchnorm_act(model)
    return model.eval()


def _unfuse_batchnorm_act(module: nn.Module) -> None:
    try:
        from timm.layers import BatchNormAct2d
    except ImportError:  # timm absent: no such layers to split
        return
    for name, child in list(module.named_children()):
        if isinstance(child, BatchNormAct2d):
            bn = nn.BatchNorm2d(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
            bn.load_state_dict(child.state_dict())  # the activation holds no tensors
            parts = [bn] + [m for m in (child.drop, child.act) if not isinstance(m, nn.Identity)]
            setattr(module, name, nn.Sequential(*parts) if len(parts) > 1 else bn)
        else:
            _unfuse_batchnorm_act(child)


def qconfig_mapping(engine: str, per_channel: bool):
    """The engine's default mapping; `per_channel=False` swaps in one symmetric scale per weight tensor."""
    from torch.ao.quantization import QConfig, default_weight_observer, get_default_qconfig_mapping

    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    mapping = get_default_qconfig_mapping(engine)
    if not per_channel:
        mapping.set_global(QConfig(activation=mapping.global_qconfig.activation, weight=default_weight_observer))
    return mapping


def quantize(model: nn.Module, calibration: torch.Tensor, engine: str = "onednn", per_channel: bool = True,
             batch_size: int = 32) -> torch.fx.GraphModule:
    """Static INT8: BN folded, observers calibrated on `calibration` (NCHW float, preprocessed), converted."""
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    select_engine(engine)
    with _quiet():
        prepared = prepare_fx(fx_ready(model), qconfig_mapping(engine, per_channel), (calibration[:1],))
        with torch.inference_mode():
            for start in range(0, len(calibration), batch_size):
                prepared(calibration[start : start + batch_size])
        return convert_fx(prepared)


def select_engine(engine: str) -> None:
    """Quantized kernels come from a process-wide engine; a model must run on the engine it was converted for."""
    if engine not in torch.backends.quantized.supported_engines:
        raise ValueError(f"quantized engine {engine!r} is not available in this torch build "
                         f"({torch.backends.quantized.supported_engines})")
    torch.backends.quantized.engine = engine


def frozen(quantized: torch.fx.GraphModule, input_size: int) -> torch.jit.ScriptModule:
    """The converted model traced and frozen: about 2x faster than calling the GraphModule (see above)."""
    example = torch.zeros(1, 3, input_size, input_size)
    with _quiet(), torch.no_grad():
        runner = torch.jit.freeze(torch.jit.trace(quantized.eval(), example))
        # TorchScript's profiling executor optimises for what its first calls see: make that batch 1, the
        # per-face path (the thread count matters as much: see FrozenRunner)
        for _ in range(2):
            runner(example)
    return runner


class FrozenRunner(nn.Module):
    """The frozen trace, made once per torch thread count: a frozen INT8 graph first run with 2 threads took
    8.6 ms per face at 1 thread, against 2.5 ms for one first run at 1 thread (MobileNetV2, this CPU)."""

    def __init__(self, quantized: torch.fx.GraphModule, input_size: int):
        super().__init__()
        self.quantized = quantized
        self.input_size = input_size
        self._by_threads: dict[int, torch.jit.ScriptModule] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        threads = torch.get_num_threads()
        if threads not in self._by_threads:
            self._by_threads[threads] = frozen(self.quantized, self.input_size)
        return self._by_threads[threads](x)


def dequantize_boundaries(quantized: torch.fx.GraphModule) -> list[str]:
    """Where the converted graph leaves INT8: the op each `dequantize` feeds (the model's output counts once).
    Activations with no INT8 kernel (SiLU, the sigmoid gate of squeeze-excitation) each add a round trip."""
    users = []
    for node in quantized.graph.nodes:
        if node.op == "call_method" and node.target == "dequantize":
            for user in node.users:
                users.append("output" if user.op == "output" else _op_name(quantized, user))
    return users


def _op_name(graph_module: torch.fx.GraphModule, node: torch.fx.Node) -> str:
    if node.op == "call_module":
        return type(graph_module.get_submodule(node.target)).__name__
    return getattr(node.target, "__name__", str(node.target))


def save(quantized: torch.fx.GraphModule, path: str | Path) -> None:
    torch.save(quantized.state_dict(), str(path))


def load(path: str | Path, model: nn.Module, input_size: int, engine: str, per_channel: bool) -> torch.fx.GraphModule:
    """Rebuild the quantized graph around `model` (an FP32 model of the right architecture; its weights are
    replaced) and load the saved INT8 tensors into it."""
    path = Path(path)
    try:
        with _quiet():
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FxModelError(f"{path}: no such file") from None
    except Exception as err:  # zip/pickle errors of a truncated, corrupt or hostile file
        raise FxModelError(f"{path}: not a readable INT8 state dict ({type(err).__name__}: {err})") from None
    if not isinstance(state, dict):
        raise FxModelError(f"{path}: holds a {type(state).__name__}, not a state dict")
    # observers need one batch before convert; the values they record are overwritten by the loaded tensors
    rebuilt = quantize(model, torch.zeros(1, 3, input_size, input_size), engine, per_channel)
    expected = rebuilt.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise FxModelError(f"{path}: does not fit this backbone ({len(missing)} tensors missing, e.g. "
                           f"{missing[:1]}; {len(unexpected)} unexpected, e.g. {unexpected[:1]})")
    from faceocc.classifier import shape_mismatch

    mismatch = shape_mismatch(expected, state)
    if mismatch:
        raise FxModelError(f"{path}: does not fit this backbone and class list: {mismatch}")
    try:
        with _quiet():
            rebuilt.load_state_dict(state, strict=True)
    except Exception as err:  # shapes or quantization schemes that differ
        first = (str(err).strip().splitlines() or ["mismatch"])[0]
        raise FxModelError(f"{path}: does not fit this backbone ({type(err).__name__}: {first[:200]})") from None
    return rebuilt
