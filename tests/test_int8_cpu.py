"""Which INT8 models multiply correctly on which CPU: the flags that say so, the FX engine `auto` picks, and the
warning a model that saturates here gets when it is loaded."""

import logging

import numpy as np
import pytest
import torch

from faceocc import int8_cpu, onnx_models
from faceocc.backbones import IMAGENET_MEAN, IMAGENET_STD, build
from faceocc.classifier import CARD_FILE, Classifier, ModelCard

AVX2_ONLY = frozenset({"fpu", "sse4_2", "avx", "avx2", "fma"})
WITH_VNNI = AVX2_ONLY | {"avx512f", "avx512_vnni"}


def test_cpu_flags_come_from_the_flags_line_and_are_unknown_without_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 avx_vnni\nbugs\t\t: spectre\n")
    assert int8_cpu.cpu_flags(info) == {"fpu", "avx2", "avx_vnni"}
    assert int8_cpu.cpu_flags(tmp_path / "absent") is None
    (tmp_path / "empty").write_text("processor\t: 0\n")
    assert int8_cpu.cpu_flags(tmp_path / "empty") is None


@pytest.mark.parametrize("flags, machine, expected", [
    (AVX2_ONLY, "x86_64", True),                          # VPMADDUBSW's 16-bit pair sums
    (WITH_VNNI, "x86_64", False),                         # AVX-512 VNNI adds into 32 bits
    (AVX2_ONLY | {"avx_vnni"}, "x86_64", False),          # so does AVX-VNNI
    (AVX2_ONLY | {"avx512f", "avx512bw"}, "AMD64", True), # AVX-512 without VNNI still saturates
    (frozenset({"fp", "asimd", "asimddp"}), "aarch64", False),
])
def test_int8_sums_saturate_on_x86_without_vnni_only(flags, machine, expected):
    assert int8_cpu.saturates(flags, machine) is expected


def test_auto_engine_is_onednn_with_vnni_x86_without_and_qnnpack_on_arm():
    assert int8_cpu.fx_engine("auto", WITH_VNNI, "x86_64") == "onednn"
    assert int8_cpu.fx_engine("auto", AVX2_ONLY, "x86_64") == "x86"
    assert int8_cpu.fx_engine("auto", frozenset({"asimd"}), "aarch64") == "qnnpack"
    assert int8_cpu.fx_engine("onednn", AVX2_ONLY, "x86_64") == "onednn"  # an explicit engine is kept


@pytest.mark.parametrize("variant, info, at_risk", [
    ("onnx_int8", {"activations": "QUInt8", "per_channel": True}, True),   # the releases made before reduce_range
    ("onnx_int8", {"activations": "QInt8", "reduce_range": False}, True),  # S8S8 runs as U8S8 on x86
    ("onnx_int8", {"activations": "QUInt8", "reduce_range": True}, False),
    ("onnx_int8", {"weights": "QUInt8"}, False),                           # U8U8: another kernel, no saturation
    ("fx_int8", {"engine": "onednn"}, True),
    ("fx_int8", {"engine": "x86"}, False),
    ("fp32", {}, False),
    ("onnx_fp32", None, False),
])
def test_saturation_risk_names_the_variant_and_the_fix(variant, info, at_risk):
    risk = int8_cpu.saturation_risk(variant, info, saturating=True)
    assert (risk is not None) is at_risk
    if at_risk:
        assert variant in risk and "without VNNI" in risk and "re-quantize" in risk
        if variant == "onnx_int8":  # the fix names the params section that quantized the graph
            assert "quantize_onnx.reduce_range" in risk
            assert "detect_quantize.reduce_range" in int8_cpu.saturation_risk(variant, info, True, "detect_quantize")
    assert int8_cpu.saturation_risk(variant, info, saturating=False) is None  # a VNNI CPU runs every variant right


def test_loading_an_8_bit_onnx_model_on_a_cpu_without_vnni_warns_with_its_folder(tmp_path, monkeypatch, caplog):
    model, _ = build("mobilenet_v2", 4, "none")
    calibration = torch.randn(4, 3, 64, 64).numpy()
    onnx_models.export(model.eval(), 64, tmp_path / "fp32.onnx")
    classes = ("face", "masked", "sunglasses", "mask_sunglasses")
    for name, reduce_range in (("full", False), ("reduced", True)):
        folder = tmp_path / name
        folder.mkdir()
        onnx_models.quantize_int8(tmp_path / "fp32.onnx", folder / onnx_models.ONNX_FILE, calibration,
                                  reduce_range=reduce_range, work_dir=tmp_path)
        info = {"activations": "QUInt8", "per_channel": True, "reduce_range": reduce_range}
        card = ModelCard(backbone="mobilenet_v2", classes=classes, input_size=64, mean=IMAGENET_MEAN,
                         std=IMAGENET_STD, variant="onnx_int8", variant_info=info)
        (folder / CARD_FILE).write_text(card.to_json())
    monkeypatch.setattr(int8_cpu, "saturates", lambda *a, **k: True)
    with caplog.at_level(logging.WARNING, logger="faceocc.classifier"):
        full = Classifier.load(tmp_path / "full")
        Classifier.load(tmp_path / "reduced")
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and warned[0].startswith(f"{tmp_path / 'full'}: onnx_int8 with 8-bit")
    assert full.predict_proba([np.zeros((64, 64, 3), np.uint8)]).shape == (1, 4)  # a warning, not a refusal
