"""Stage `train@<backbone>`: fine-tune one registry backbone on the balanced train split; keep the best epoch.

Writes models/<backbone>/ (model.pt + card.json, which later stages and the CLI read instead of params.yaml)
and dvclive's per-epoch log under reports/train/<backbone>/ (faceocc/backbone_training.py).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from dvclive import Live

from faceocc import backbones
from faceocc.atomic import stage_output
from faceocc.backbone_training import (BackbonesParams, TrainParams, check_head, fit,  # noqa: F401
                                       kept_model_summary, resolved_config, write_model)
from faceocc.config import ConfigError
from stages._common import load_params, refuse, setup_logging
from stages._task import task_of

log = logging.getLogger("train")


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
        config = resolved_config(params, args.backbone)  # the settings first, then the inputs
    except ConfigError as err:
        refuse(f"{args.params}: {err}")
    task = task_of(args.crops)
    try:
        check_head(config, task.classes)
    except ConfigError as err:
        refuse(f"{args.params}: {err}")

    # the per-epoch logs replace the committed ones only when training ends: Ctrl-C leaves the last run's
    with stage_output(args.live) as live_dir, Live(dir=str(live_dir), save_dvc_exp=False, dvcyaml=None,
                                                   report=None) as live:
        def on_epoch(record: dict) -> None:
            for key in ("train_loss", "val_accuracy", "val_macro_f1", "lr"):
                live.log_metric(key, record[key])
            live.next_step()
            log.info("epoch %d: %s", record["epoch"], record)

        trained = fit(args.backbone, task, config, args.balance, args.split, args.crops, on_epoch)
        # dvclive's summary holds the last epoch's figures; metrics.json must describe the model kept
        live.summary = kept_model_summary(trained.result.history, trained.result.best_epoch)
    with stage_output(args.out) as tmp:
        write_model(trained, tmp)
    log.info("%s: best epoch %d, val macro-F1 %.4f", args.backbone, trained.result.best_epoch,
             trained.result.best_val_macro_f1)


if __name__ == "__main__":
    main()
