"""Stage `detect_train`: the one-stage detector (CenterFace with a class map, faceocc/one_stage.py) taught the
task's classes on the split's faces in their photos (faceocc/one_stage_data.py): the train photos and their
mirror images to learn from, the val faces to keep the best epoch by. CenterFace's own heads are not trained, so
the faces it finds are CenterFace's. Writes the joined ONNX graph and its card; the epochs' figures to metrics."""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import onnx

from faceocc.atomic import stage_output, write_metrics
from faceocc.one_stage import one_stage_graph
from faceocc.one_stage_data import workspace_photos
from faceocc.one_stage_model import GRAPH_FILE, OneStageCard
from faceocc.one_stage_training import backbone_session, export_parity, feature_set, parity_inputs, train_branch
from stages._common import load_params, refuse, setup_logging
from stages._task import task_of

log = logging.getLogger("detect_train")


@dataclass(frozen=True)
class DetectTrainParams:
    side: int = 640           # a photo's long side in the network, px (a multiple of 32)
    epochs: int = 8
    batch: int = 8            # photos a step
    lr: float = 0.001         # the head's
    tower_lr: float = 0.0     # the tower's (it starts as CenterFace's); 0 keeps it frozen
    hidden: int = 128         # channels of the head's 3 x 3 convolution
    mirror: bool = True       # learn from each photo's mirror image too
    central: float = 0.0      # taught at the centre cell only, or also in this middle share of the box
    threshold: float = 0.5    # the face score a detection must reach when the model is used (its card)
    min_face: int = 10        # px, a found face's short side in the photo (its card)
    seed: int = 0
    threads: int = 0          # ONNX Runtime's, for the backbone's features; 0 = every core
    parity_photos: int = 8    # val photos the exported graph is checked on against the PyTorch branch
    max_abs_probability_diff: float = 1e-3  # the most a class probability may differ; more stops the stage


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--split", required=True, type=Path)
    parser.add_argument("--crops", required=True, type=Path)
    parser.add_argument("--raw", required=True, type=Path, help="the scrape stage's folder (the photos)")
    parser.add_argument("--out", required=True, type=Path, help="the model folder to write")
    parser.add_argument("--metrics", required=True, type=Path)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    setup_logging()
    params = load_params("detect_train", DetectTrainParams, args.params)
    if params.side % 32:
        refuse(f"{args.params}: detect_train.side {params.side} is not a multiple of 32")
    task = task_of(args.crops)
    started = time.perf_counter()
    session = backbone_session(params.threads)
    sets, photos_of = {}, {}
    for split, mirror, central in (("train", params.mirror, params.central), ("val", False, 0.0)):
        photos_of[split], problems = workspace_photos(args.split, args.crops, args.raw, split, task.classes,
                                                      task.label_of)
        sets[split], unread = feature_set(photos_of[split], task.classes, params.side, session, mirror=mirror,
                                          central=central, desc=f"{split} features")
        for problem in problems + unread:
            log.warning("%s: %s", split, problem)
        if not len(sets[split].features):
            refuse(f"{args.split}: no {split} photo to learn from")
    branch, history = train_branch(sets["train"], sets["val"], task.classes, epochs=params.epochs, batch=params.batch,
                                   lr=params.lr, tower_lr=params.tower_lr, hidden=params.hidden, seed=params.seed)
    best = max(history, key=lambda h: (h["val_macro_f1"], -h["epoch"]))
    graph = one_stage_graph(branch)
    parity = export_parity(graph, branch, session, parity_inputs(photos_of["val"], params.side, params.parity_photos))
    if parity["max_abs_probability_diff"] > params.max_abs_probability_diff:
        refuse(f"detect_train: the exported graph differs from the trained branch: {parity}")
    card = OneStageCard(task.name, task.classes, params.side, params.threshold, params.min_face,
                        info={"trained": asdict(params), "best_epoch": best["epoch"], "export_parity": parity})
    with stage_output(args.out) as tmp:
        tmp.mkdir()
        onnx.save(graph, str(tmp / GRAPH_FILE))
        card.write(tmp)
    write_metrics(args.metrics, {"train_views": len(sets["train"].features), "val_photos": len(sets["val"].features),
                                 "best_epoch": best["epoch"], "val_macro_f1": best["val_macro_f1"],
                                 "val_accuracy": best["val_accuracy"], "export_parity": parity, "epochs": history})
    log.info("one-stage (%s): best epoch %d of %d, val macro-F1 %.4f at the faces' centres; ONNX parity %s; %.0f s",
             task.name, best["epoch"], params.epochs, best["val_macro_f1"], parity, time.perf_counter() - started)


if __name__ == "__main__":
    main()
