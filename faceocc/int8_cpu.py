"""Which INT8 models multiply correctly on this CPU.

An x86 CPU without VNNI (`avx512_vnni` or `avx_vnni` among its flags) multiplies u8 activations by s8 weights
with VPMADDUBSW, which adds each pair of products into a 16-bit integer: 2 x 255 x 127 does not fit, and the sum
saturates. VNNI's instruction adds into 32 bits. A model quantized with 8 bits on both sides is therefore exact
on one CPU and wrong on another: on an AMD EPYC without VNNI (2026-12-03, docs/setup.md) the occlusion4
release made on an Intel Xeon fell from 97.7 % to 95.7 % on val, and FX's `onednn` engine kept 86.6 % top-1
agreement with FP32 where its `x86` engine kept 99.0 %.

Two ways keep a pair sum inside 16 bits on every x86 CPU, and the pipeline uses both: ONNX Runtime's
`reduce_range` (7-bit weights) and FX's `x86` engine (7-bit activations). `onednn` (8 bits) stays the FX choice
where the quantizing CPU has VNNI (`engine: auto`), and loading such a model on a CPU without VNNI warns.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni"})


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str] | None:
    """The CPU's feature flags, or None where the system does not list them (not Linux)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return None


@functools.cache
def _this_cpu() -> tuple[frozenset[str] | None, str]:
    return cpu_flags(), platform.machine()


def is_x86(machine: str | None = None) -> bool:
    return (machine or _this_cpu()[1]).lower() in ("x86_64", "amd64", "i686", "x86")


def saturates(flags: frozenset[str] | None = None, machine: str | None = None) -> bool:
    """True where 8-bit x 8-bit products go through a 16-bit pair sum: an x86 CPU whose flags lack VNNI.
    Unknown flags, or another architecture (ARM's dot-product instructions add into 32 bits), count as safe."""
    flags = _this_cpu()[0] if flags is None else flags
    return is_x86(machine) and flags is not None and not flags & VNNI_FLAGS


def fx_engine(requested: str, flags: frozenset[str] | None = None, machine: str | None = None) -> str:
    """The FX engine to quantize with: `auto` is `onednn` (8-bit activations) on an x86 CPU with VNNI, `x86`
    (7-bit activations, no saturation) on one without, and `qnnpack` on other architectures (ARM)."""
    if requested != "auto":
        return requested
    if not is_x86(machine):
        return "qnnpack"
    return "x86" if saturates(flags, machine) else "onednn"


def saturation_risk(variant: str | None, variant_info: dict | None, saturating: bool | None = None,
                    onnx_stage: str = "quantize_onnx") -> str | None:
    """Why an INT8 model (a card's variant and variant_info) loses accuracy on this CPU, or None if it does not.
    `onnx_stage` is the params.yaml section that quantized an ONNX model (`detect_quantize` for the one-stage
    graph), named in the fix."""
    info = variant_info or {}
    if variant == "fx_int8":
        at_risk = info.get("engine") == "onednn"
        fix = "re-quantize with quantize_fx.engine x86 (or auto on this CPU)"
    elif variant == "onnx_int8":
        at_risk = not info.get("reduce_range", False) and info.get("weights", "QInt8") == "QInt8"
        fix = f"re-quantize with {onnx_stage}.reduce_range true"
    else:
        return None
    if not at_risk or not (saturates() if saturating is None else saturating):
        return None
    return (f"{variant} with 8-bit activations and weights on a CPU without VNNI: its INT8 sums saturate here and "
            f"accuracy drops; {fix}, or use an FP32 model")
