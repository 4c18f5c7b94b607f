"""Fine-tuning a backbone on face crops: AdamW, warm-up then cosine, label smoothing, class-weighted loss,
a frozen-backbone first phase, early stopping on validation macro-F1, the best epoch's weights kept.

Deterministic on the CPU for a seed: one seeded generator orders the batches, no data-loader workers, and
torch's deterministic algorithms are switched on.
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from faceocc.attributes import attach_attribute_head, fold_attribute_head
from faceocc.classifier import preprocess
from faceocc.config import bounded, checked
from faceocc.devices import DEVICE_NAMES, is_device_name, resolve_device
from faceocc.metrics import summary


Head = Literal["softmax", "attributes"]


@dataclass(frozen=True)
class TrainConfig:
    pretrained: str = "imagenet"       # imagenet | none
    input_size: int = bounded(112, ge=16, le=1024)
    epochs: int = bounded(15, ge=1)
    batch_size: int = bounded(32, ge=1)
    lr: float = bounded(1e-3, gt=0)
    weight_decay: float = bounded(0.05, ge=0)
    warmup_epochs: float = bounded(1.0, ge=0)
    label_smoothing: float = bounded(0.1, ge=0, lt=1)
    # train only the new head first, so random head gradients spare the backbone
    freeze_backbone_epochs: int = bounded(1, ge=0)
    patience: int = bounded(4, ge=1)                # epochs without a better validation macro-F1 before stopping
    hflip: bool = True                 # mirror half of each batch (seeded)
    seed: int = 0
    threads: int = bounded(2, ge=1)
    # auto: CUDA when present; the CPU run is the deterministic reference
    device: str = checked("auto", is_device_name, DEVICE_NAMES)
    # score val (and, through the model card, every later prediction) as the mean of each crop's and its mirror
    # image's probabilities
    mirror_average: bool = False
    # softmax: four exclusive classes; attributes: mask and sunglasses logits whose sums are the class logits
    # (faceocc/attributes.py), folded into a plain 4-way head when saved
    head: Head = "softmax"


HEADS = typing.get_args(Head)


@dataclass
class TrainResult:
    state: dict
    best_epoch: int
    best_val_macro_f1: float
    history: list[dict]


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters of the model's last Linear layer: the freshly made head."""
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    return list(last.parameters())


def train(model: nn.Module, train_images: list[np.ndarray], train_labels: np.ndarray,
          val_images: list[np.ndarray], val_labels: np.ndarray, classes: tuple[str, ...], mean, std,
          config: TrainConfig, on_epoch: Callable[[dict], None] | None = None) -> TrainResult:
    if config.head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, got {config.head!r}")
    torch.manual_seed(config.seed)
    if config.head == "attributes":
        attach_attribute_head(model, classes)  # a fresh head, seeded like the rest of the run
    torch.set_num_threads(config.threads)
    device = torch.device(resolve_device(config.device))
    torch.use_deterministic_algorithms(device.type == "cpu")  # CUDA kernels would need extra settings
    model.to(device)
    generator = torch.Generator().manual_seed(config.seed)
    x_train = preprocess(train_images, config.input_size, mean, std)
    y_train = torch.as_tensor(train_labels, dtype=torch.long)
    x_val = preprocess(val_images, config.input_size, mean, std)

    counts = np.bincount(train_labels, minlength=len(classes)).astype(float)
    weights = np.where(counts > 0, counts.sum() / (len(classes) * np.maximum(counts, 1)), 0.0)
    loss_fn = nn.CrossEntropyLoss(weight=torch.as_tensor(weights, dtype=torch.float32, device=device),
                                  label_smoothing=config.label_smoothing)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = max(1, math.ceil(len(x_train) / config.batch_size))
    total, warmup = config.epochs * steps_per_epoch, config.warmup_epochs * steps_per_epoch

    def lr_factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    head = set(head_parameters(model))
    best = TrainResult(_cpu_state(model), 0, -1.0, [])
    stale = 0
    for epoch in range(1, config.epochs + 1):
        frozen = epoch <= config.freeze_backbone_epochs
        for p in model.parameters():
            p.requires_grad_(not frozen or p in head)
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        running, seen = 0.0, 0
        for start in tqdm(range(0, len(order), config.batch_size), desc=f"epoch {epoch}", unit="batch",
                          leave=False):
            idx = order[start : start + config.batch_size]
            xb, yb = x_train[idx].to(device), y_train[idx].to(device)
            if config.hflip:
                flip = torch.rand(len(idx), generator=generator) < 0.5
                xb = torch.where(flip[:, None, None, None].to(device), xb.flip(3), xb)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
            scheduler.step()
            running += float(loss.detach()) * len(idx)
            seen += len(idx)
        val = evaluate_logits(model, x_val, val_labels, classes, mirror_average=config.mirror_average)
        record = {"epoch": epoch, "train_loss": round(running / max(1, seen), 4), "val_accuracy": val["accuracy"],
                  "val_macro_f1": val["macro_f1"], "lr": round(optimizer.param_groups[0]["lr"], 6),
                  "backbone_frozen": frozen}
        best.history.append(record)
        if on_epoch:
            on_epoch(record)
        if val["macro_f1"] > best.best_val_macro_f1:
            best.state = _cpu_state(model)
            best.best_epoch, best.best_val_macro_f1 = epoch, val["macro_f1"]
            stale = 0
        elif not frozen:
            stale += 1
            if stale >= config.patience:
                break
    torch.use_deterministic_algorithms(False)
    model.to("cpu")
    if config.head == "attributes":
        model.load_state_dict(best.state)
        best.state = _cpu_state(fold_attribute_head(model))
    return best


@torch.inference_mode()
def evaluate_logits(model: nn.Module, x: torch.Tensor, labels: np.ndarray, classes: tuple[str, ...],
                    batch_size: int = 128, mirror_average: bool = False) -> dict:
    model.eval()
    if len(x) == 0:
        return {"accuracy": 0.0, "macro_f1": 0.0}
    device = next(model.parameters()).device

    def probabilities(xb: torch.Tensor) -> torch.Tensor:
        p = torch.softmax(model(xb), dim=1)
        # the mirror view of NCHW crops: images.mirrored's flip, on the width axis of the tensor
        return (p + torch.softmax(model(xb.flip(3)), dim=1)) / 2 if mirror_average else p

    predictions = torch.cat([probabilities(x[i : i + batch_size].to(device)).argmax(1).cpu()
                             for i in range(0, len(x), batch_size)])
    return summary(labels, predictions.numpy(), classes)


def _cpu_state(model: nn.Module) -> dict:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
