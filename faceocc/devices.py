"""Device choice: CUDA when present and asked for ("auto"), never required."""

from __future__ import annotations

import re

import torch


def is_device_name(name: str) -> bool:
    """A device setting's value: auto, cpu, cuda or cuda:N."""
    return name in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", name) is not None


DEVICE_NAMES = "auto, cpu, cuda or cuda:N"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available; use 'auto' or 'cpu'")
    return torch.device(name)
