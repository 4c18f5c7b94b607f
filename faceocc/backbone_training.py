"""One registry backbone trained on the balance stage's output and described by its card: the train stage's
settings (train.common, overridden per backbone), the images it reads, and the model folder it writes
(faceocc/training.py holds the loop itself)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from faceocc import backbones
from faceocc.attributes import code_matrix
from faceocc.classifier import CARD_FILE, WEIGHTS_FILE, ModelCard, save_weights
from faceocc.config import ConfigError, from_mapping
from faceocc.images import load_rgb
from faceocc.manifest import read_rows
from faceocc.tasks import Task
from faceocc.training import TrainConfig, TrainResult, train
from faceocc.workspace import FACES, SPLIT_CSV

log = logging.getLogger("train")


@dataclass(frozen=True)
class BackboneOverrides:
    """Per-backbone settings; anything left out (null) comes from train.common."""

    pretrained: str | None = None
    input_size: int | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float | None = None
    freeze_backbone_epochs: int | None = None


# train.backbones: one overrides entry per registry backbone, so that a backbone added to the registry is a
# setting here without another edit
BackbonesParams = dataclasses.make_dataclass(
    "BackbonesParams", [(name, BackboneOverrides, field(default_factory=BackboneOverrides))
                        for name in backbones.BACKBONES], frozen=True)
BackbonesParams.__module__ = __name__


@dataclass(frozen=True)
class TrainParams:
    common: TrainConfig = field(default_factory=TrainConfig)
    backbones: BackbonesParams = field(default_factory=BackbonesParams)


def resolved_config(params: TrainParams, backbone: str) -> TrainConfig:
    """train.common with the backbone's overrides; ConfigError names a bad one."""
    overrides = getattr(params.backbones, backbone)
    given = {k: v for k, v in dataclasses.asdict(overrides).items() if v is not None}
    # an override is checked against the same ranges as train.common
    return from_mapping(TrainConfig, {**dataclasses.asdict(params.common), **given}, f"train.backbones.{backbone}")


def check_head(config: TrainConfig, classes: tuple[str, ...]) -> None:
    """ConfigError when the head cannot learn the task's classes, before any work."""
    if config.head == "attributes":
        try:  # a task whose classes are not mixes of the attributes
            code_matrix(classes)
        except ValueError as err:
            raise ConfigError(f"train.common.head: {err}") from None


@dataclass(frozen=True)
class TrainedModel:
    result: TrainResult
    card: ModelCard


def fit(backbone: str, task: Task, config: TrainConfig, balance: Path, split: Path, crops: Path,
        on_epoch: Callable[[dict], None]) -> TrainedModel:
    """Train on balance/train.csv, choose the epoch by split/split.csv's val rows, and describe the model kept."""
    classes = task.classes
    index = {c: i for i, c in enumerate(classes)}
    train_rows = read_rows(balance / "train.csv")
    val_rows = [r for r in read_rows(split / SPLIT_CSV) if r["split"] == "val"]
    roots = {"crop": crops / FACES, "balance": balance}
    train_images = [load_rgb(roots[r["root"]] / r["file"]) for r in train_rows]
    val_images = [load_rgb(crops / FACES / r["file"]) for r in val_rows]
    y_train = np.array([index[r["label"]] for r in train_rows], np.int64)
    y_val = np.array([index[r["label"]] for r in val_rows], np.int64)

    torch.manual_seed(config.seed)  # the new head's initial weights
    model, start = backbones.build(backbone, len(classes), config.pretrained)
    spec = backbones.BACKBONES[backbone]
    log.info("%s: %s; %d train / %d val images", backbone, start, len(train_rows), len(val_rows))
    result = train(model, train_images, y_train, val_images, y_val, classes, spec.mean, spec.std, config, on_epoch)
    card = ModelCard(
        backbone=backbone, classes=classes, task=task.name, input_size=config.input_size, mean=spec.mean,
        std=spec.std, crop=json.loads((crops / "geometry.json").read_text()),
        finder=json.loads((crops / "finder.json").read_text()), start=start,
        data_sha256=data_hash(balance / "train.csv", split / SPLIT_CSV),
        train_counts=dict(sorted(Counter(r["label"] for r in train_rows).items())), best_epoch=result.best_epoch,
        val_macro_f1=result.best_val_macro_f1, params=dataclasses.asdict(config),
        mirror_average=config.mirror_average)
    return TrainedModel(result, card)


def write_model(trained: TrainedModel, folder: Path) -> None:
    """The weights and card.json, the files later stages and the CLI load (into a new folder)."""
    folder.mkdir()
    save_weights(trained.result.state, folder / WEIGHTS_FILE)
    (folder / CARD_FILE).write_text(trained.card.to_json())


def kept_model_summary(history: list[dict], best_epoch: int) -> dict:
    """The figures `dvc metrics show` reports for a training run: the kept (best) epoch's, plus how many ran."""
    kept = next(record for record in history if record["epoch"] == best_epoch)
    return {"best_epoch": best_epoch, "epochs_run": len(history), "val_accuracy": kept["val_accuracy"],
            "val_macro_f1": kept["val_macro_f1"], "train_loss": kept["train_loss"]}


def data_hash(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()
