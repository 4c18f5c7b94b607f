"""Training the one-stage detector's class branch (faceocc/one_stage.py) on a workspace's photos.

CenterFace itself stays as it is, so the faces the one-stage detector finds are CenterFace's, and its backbone's
stride-16 features of each training photo are computed once, by ONNX Runtime, and kept (float16, with the photo's
mirror image beside it). Only the branch learns: a copy of CenterFace's stride-32 tower and the head over both.
An epoch then costs the branch alone, about a tenth of a pass through the whole network on the CPU. The epoch kept
is the one with the best macro-F1 on the val faces, read at each face's centre cell as the detector reads it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from faceocc.detection_map import AnnotatedPhoto
from faceocc.images import ImageDecodeError, load_rgb
from faceocc.metrics import summary
from faceocc.one_stage import CLASS_STRIDE, FEATURES, INPUT, centerface_graph, class_branch
from faceocc.one_stage_data import IGNORE, centre_targets, mirrored, network_input

log = logging.getLogger(__name__)


@dataclass
class FeatureSet:
    features: np.ndarray  # (N, 96, side / 16, side / 16) float16: CenterFace's stride-16 features
    targets: np.ndarray   # (N, side / 16, side / 16) int64: the class taught at each cell, IGNORE elsewhere


def backbone_session(threads: int = 0):
    """ONNX Runtime running CenterFace from its input to the stride-16 features the branch starts from."""
    import onnx
    import onnxruntime as ort

    graph = centerface_graph()
    graph.graph.output.append(onnx.helper.make_tensor_value_info(FEATURES, onnx.TensorProto.FLOAT, None))
    backbone = onnx.utils.Extractor(graph).extract_model([INPUT], [FEATURES])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(backbone.SerializeToString(), options, providers=["CPUExecutionProvider"])


def feature_set(photos: Sequence[AnnotatedPhoto], classes: Sequence[str], side: int, session, *, mirror: bool,
                central: float, desc: str = "features") -> tuple[FeatureSet, list[str]]:
    """Each photo (and its mirror image, `mirror`) letterboxed to `side` x `side`, through the backbone; and one
    line for each photo that cannot be read."""
    features, targets, problems = [], [], []
    cells = (side // CLASS_STRIDE, side // CLASS_STRIDE)
    for photo in tqdm(photos, desc=desc, unit="photo"):
        try:
            image = load_rgb(photo.path)
        except ImageDecodeError as err:
            problems.append(f"{photo.path}: {err}")
            continue
        labels = [classes.index(label) for label in photo.labels]
        views = [(image, list(photo.boxes))]
        if mirror:
            views.append((np.ascontiguousarray(image[:, ::-1]), mirrored(image.shape[1], photo.boxes)))
        for view, boxes in views:
            blob, scale = network_input(view, side, square=True)
            features.append(session.run([FEATURES], {INPUT: blob[None]})[0][0].astype(np.float16))
            targets.append(centre_targets(boxes, labels, scale, cells, CLASS_STRIDE, central))
    empty = np.zeros((0, 96, *cells), np.float16), np.zeros((0, *cells), np.int64)
    return (FeatureSet(np.stack(features), np.stack(targets)) if features else FeatureSet(*empty)), problems


def export_parity(graph, branch, session, blobs: Sequence[np.ndarray]) -> dict:
    """The exported one-stage graph (ONNX, run by ONNX Runtime) against what it was made from, on network inputs
    `blobs` ((3, H, W) each): the trained PyTorch branch over the backbone `session`'s features. The largest
    |difference| of a class probability, and the share of cells whose most probable class is the same."""
    from faceocc.detectors import cpu_session
    from faceocc.one_stage import CLASS_OUTPUT

    exported = cpu_session(graph.SerializeToString(), 1)
    name = next(o.name for o in exported.get_outputs() if o.name.endswith(CLASS_OUTPUT))
    was_training = branch.training
    branch.eval()
    largest, same, cells = 0.0, 0, 0
    for blob in blobs:
        got = exported.run([name], {INPUT: blob[None]})[0]
        with torch.no_grad():
            features = torch.from_numpy(session.run([FEATURES], {INPUT: blob[None]})[0])
            expected = torch.softmax(branch(features), 1).numpy()
        largest = max(largest, float(np.abs(got - expected).max()))
        same += int((got.argmax(1) == expected.argmax(1)).sum())
        cells += got.shape[0] * got.shape[2] * got.shape[3]
    branch.train(was_training)
    return {"photos": len(blobs), "max_abs_probability_diff": round(largest, 7),
            "cell_top1_agreement": round(same / cells, 6) if cells else None}


def parity_inputs(photos: Sequence[AnnotatedPhoto], side: int, count: int) -> list[np.ndarray]:
    """The first `count` photos that decode, as the detector feeds them to the network (long side `side`, padded
    to multiples of 32; not the training squares). A photo that does not decode was named when its features
    failed."""
    blobs = []
    for photo in photos:
        if len(blobs) == count:
            break
        try:
            blobs.append(network_input(load_rgb(photo.path), side)[0])
        except ImageDecodeError:
            continue
    return blobs


def class_weights(targets: np.ndarray, num_classes: int) -> torch.Tensor:
    """Inverse class frequency over the taught cells (normalised to mean 1): a rare class's faces count as much."""
    counts = np.bincount(targets[targets != IGNORE].ravel(), minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / num_classes, 0.0)
    return torch.tensor(weights / max(weights[weights > 0].mean(), 1e-12), dtype=torch.float32)


def tower_outputs(branch, features: np.ndarray, batch: int = 16) -> np.ndarray:
    """The branch's tower run once over `features` (float16): what a frozen tower gives every epoch."""
    outs = []
    with torch.no_grad():
        for start in range(0, len(features), batch):
            outs.append(branch.tower(torch.from_numpy(features[start:start + batch].astype(np.float32)))
                        .numpy().astype(np.float16))
    return np.concatenate(outs) if outs else np.zeros((0,), np.float16)


def _logits(branch, data: FeatureSet, towers: np.ndarray | None, chosen) -> torch.Tensor:
    tower = None if towers is None else torch.from_numpy(towers[chosen].astype(np.float32))
    return branch(torch.from_numpy(data.features[chosen].astype(np.float32)), tower)


def centre_scores(branch, data: FeatureSet, towers: np.ndarray | None = None,
                  batch: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """(labels, predicted) at every taught cell of `data` (`towers`: its tower outputs, when kept)."""
    branch.eval()
    labels, predicted = [], []
    with torch.no_grad():
        for start in range(0, len(data.features), batch):
            chosen = slice(start, start + batch)
            logits = _logits(branch, data, towers, chosen)
            target = torch.from_numpy(data.targets[chosen])
            taught = target != IGNORE
            labels.append(target[taught].numpy())
            predicted.append(logits.argmax(1)[taught].numpy())
    return (np.concatenate(labels), np.concatenate(predicted)) if labels else (np.zeros(0, int), np.zeros(0, int))


def train_branch(train: FeatureSet, val: FeatureSet, classes: Sequence[str], *, epochs: int, batch: int, lr: float,
                 tower_lr: float, hidden: int, seed: int) -> tuple[torch.nn.Module, list[dict]]:
    """The branch after the epoch with the best val macro-F1 at the faces' centre cells (the first such, so a
    later equal epoch does not replace it), and each epoch's loss and val figures. `tower_lr` 0 keeps
    CenterFace's tower as it is: it then runs once over the photos, not every epoch."""
    branch = class_branch(len(classes), hidden, seed)
    frozen = tower_lr == 0
    groups = [{"params": branch.head.parameters(), "lr": lr}]
    if frozen:
        branch.tower.requires_grad_(False)
        towers = {"train": tower_outputs(branch, train.features), "val": tower_outputs(branch, val.features)}
    else:
        groups.append({"params": branch.tower.parameters(), "lr": tower_lr})
        towers = {"train": None, "val": None}
    optimiser = torch.optim.AdamW(groups, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, max(epochs, 1))
    weights = class_weights(train.targets, len(classes))
    order_rng = np.random.default_rng(seed)
    best, best_state, history = -1.0, None, []
    for epoch in range(1, epochs + 1):
        branch.train()
        order, losses = order_rng.permutation(len(train.features)), []
        for start in tqdm(range(0, len(order), batch), desc=f"epoch {epoch}", unit="batch", leave=False):
            chosen = np.sort(order[start:start + batch])
            logits = _logits(branch, train, towers["train"], chosen)
            target = torch.from_numpy(train.targets[chosen])
            if not (target != IGNORE).any():
                continue
            loss = F.cross_entropy(logits, target, weight=weights, ignore_index=IGNORE)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
        schedule.step()
        labels, predicted = centre_scores(branch, val, towers["val"])
        figures = summary(labels, predicted, tuple(classes))
        history.append({"epoch": epoch, "loss": round(float(np.mean(losses)), 4) if losses else None,
                        "val_macro_f1": figures["macro_f1"],
                        "val_accuracy": figures["accuracy"]})
        log.info("epoch %d: loss %s, val macro-F1 %.4f", epoch, history[-1]["loss"], history[-1]["val_macro_f1"])
        if history[-1]["val_macro_f1"] > best:
            best = history[-1]["val_macro_f1"]
            best_state = {k: v.detach().clone() for k, v in branch.state_dict().items()}
    if best_state is not None:
        branch.load_state_dict(best_state)
    branch.eval()
    return branch, history
