"""Stage `train@<backbone>`: fine-tune one registry backbone on the balanced train split; keep the best epoch.

Writes models/<backbone>/ (model.pt + card.json, which later stages and the CLI read instead of params.yaml)
and dvclive's per-epoch log under reports/train/<backbone>/.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from dvclive import Live

from faceocc import backbones
from faceocc.attributes import code_matrix
from faceocc.atomic import stage_output
from faceocc.classifier import CARD_FILE, WEIGHTS_FILE, ModelCard, save_weights
from faceocc.config import ConfigError, from_mapping
from faceocc.images import load_rgb
from faceocc.manifest import read_rows
from faceocc.tasks import HasTask, TaskName, check_labels
from faceocc.training import TrainConfig, train
from stages._common import load_params, refuse, setup_logging

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


@dataclass(frozen=True)
class BackbonesParams:
    mobilenet_v2: BackboneOverrides = field(default_factory=BackboneOverrides)
    efficientnet_lite0: BackboneOverrides = field(default_factory=BackboneOverrides)
    resnet18: BackboneOverrides = field(default_factory=BackboneOverrides)


@dataclass(frozen=True)
class TrainParams(HasTask):
    task: TaskName = "occlusion4"   # faceocc/tasks.py: the class list (and its colours) this run is about
    common: TrainConfig = field(default_factory=TrainConfig)
    backbones: BackbonesParams = field(default_factory=BackbonesParams)


def resolved_config(params: TrainParams, backbone: str) -> TrainConfig:
    overrides = getattr(params.backbones, backbone)
    given = {k: v for k, v in dataclasses.asdict(overrides).items() if v is not None}
    # an override is checked against the same ranges as train.common
    return from_mapping(TrainConfig, {**dataclasses.asdict(params.common), **given}, f"train.backbones.{backbone}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backbone", required=True, choices=sorted(backbones.BACKBONES))
    parser.add_argument("--balance", required=True, type=Path, help="the balance stage's output (train.csv)")
    parser.add_argument("--split", required=True, type=Path, help="the split stage's output (val rows)")
    parser.add_argument("--crops", required=True, type=Path, help="the crop stage's output (images, geometry)")
    parser.add_argument("--out", required=True, type=Path, help="model directory to write")
    parser.add_argument("--live", required=True, type=Path, help="dvclive folder for per-epoch metrics")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    setup_logging()
    params = load_params("train", TrainParams, args.params)
    try:
        config = resolved_config(params, args.backbone)
    except ConfigError as err:
        refuse(f"{args.params}: {err}")
    classes = params.classes
    index = {c: i for i, c in enumerate(classes)}
    if config.head == "attributes":
        code_matrix(classes)  # refuses a task whose classes are not mixes of the attributes, before any work

    train_rows = read_rows(args.balance / "train.csv")
    val_rows = [r for r in read_rows(args.split / "split.csv") if r["split"] == "val"]
    check_labels((r["label"] for r in train_rows + val_rows), params.task, "train")
    roots = {"crop": args.crops / "faces", "balance": args.balance}
    train_images = [load_rgb(roots[r["root"]] / r["file"]) for r in train_rows]
    val_images = [load_rgb(args.crops / "faces" / r["file"]) for r in val_rows]
    y_train = np.array([index[r["label"]] for r in train_rows], np.int64)
    y_val = np.array([index[r["label"]] for r in val_rows], np.int64)

    torch.manual_seed(config.seed)  # the new head's initial weights
    model, start = backbones.build(args.backbone, len(classes), config.pretrained)
    spec = backbones.BACKBONES[args.backbone]
    log.info("%s: %s; %d train / %d val images", args.backbone, start, len(train_rows), len(val_rows))

    # the per-epoch logs replace the committed ones only when training ends: Ctrl-C leaves the last run's
    with stage_output(args.live) as live_dir, Live(dir=str(live_dir), save_dvc_exp=False, dvcyaml=None,
                                                   report=None) as live:
        def on_epoch(record: dict) -> None:
            for key in ("train_loss", "val_accuracy", "val_macro_f1", "lr"):
                live.log_metric(key, record[key])
            live.next_step()
            log.info("epoch %d: %s", record["epoch"], record)

        result = train(model, train_images, y_train, val_images, y_val, classes, spec.mean, spec.std, config,
                       on_epoch)
        # dvclive's summary holds the last epoch's figures; metrics.json must describe the model kept
        live.summary = kept_model_summary(result.history, result.best_epoch)

    card = ModelCard(
        backbone=args.backbone, classes=classes, task=params.task, input_size=config.input_size, mean=spec.mean,
        std=spec.std,
        crop=json.loads((args.crops / "geometry.json").read_text()),
        finder=json.loads((args.crops / "finder.json").read_text()), start=start,
        data_sha256=_data_hash(args.balance / "train.csv", args.split / "split.csv"),
        train_counts=dict(sorted(Counter(r["label"] for r in train_rows).items())), best_epoch=result.best_epoch,
        val_macro_f1=result.best_val_macro_f1, params=dataclasses.asdict(config),
        mirror_average=config.mirror_average)
    with stage_output(args.out) as tmp:
        tmp.mkdir()
        save_weights(result.state, tmp / WEIGHTS_FILE)
        (tmp / CARD_FILE).write_text(card.to_json())
    log.info("%s: best epoch %d, val macro-F1 %.4f", args.backbone, result.best_epoch, result.best_val_macro_f1)


def kept_model_summary(history: list[dict], best_epoch: int) -> dict:
    """The figures `dvc metrics show` reports for a training run: the kept (best) epoch's, plus how many ran."""
    kept = next(record for record in history if record["epoch"] == best_epoch)
    return {"best_epoch": best_epoch, "epochs_run": len(history), "val_accuracy": kept["val_accuracy"],
            "val_macro_f1": kept["val_macro_f1"], "train_loss": kept["train_loss"]}


def _data_hash(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()


if __name__ == "__main__":
    main()
