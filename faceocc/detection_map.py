"""Mean average precision of a system that finds and labels faces, on photos with annotated boxes, by pycocotools'
COCOeval: the COCO definition (precision interpolated at 101 recall points; IoU 0.50, and the mean over 0.50 to
0.95), per class and per face size, so that the two-stage path (finder + classifier) and a one-stage detector are
scored the same way and beside the public figures (YOLOv5s on the Kaggle mask set: mAP50 0.76, incorrect 0.43).

An annotated face a split does not score (another split's, a class the task lacks) is a COCO "crowd" region: a
detection on it counts neither as right nor as wrong.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from faceocc.end_to_end import Tally
from faceocc.sources import voc_image
from faceocc.voc import VocError, parse_voc

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in the photo's pixels
# COCO's own size buckets (area in pixels): a face under 32x32 is "small", over 96x96 "large"
SIZES = {"small": 1, "medium": 2, "large": 3}
MAX_DETECTIONS = 300  # per photo; COCO's 100 cuts off the Kaggle set's crowds


@dataclass(frozen=True)
class AnnotatedPhoto:
    path: str
    boxes: tuple[Box, ...]            # the faces scored
    labels: tuple[str, ...]           # their classes
    ignored: tuple[Box, ...] = ()     # annotated faces not scored: a detection on one is neither right nor wrong


@dataclass(frozen=True)
class Detection:
    box: Box
    label: str
    score: float                      # how sure the system is of a face of this class here


def voc_photos(faces: dict[str, list[int]], label_of: Callable[[str], str],
               classes: Sequence[str]) -> tuple[list[AnnotatedPhoto], list[str]]:
    """The photos of {annotation file: [object index scored, ...]} (`end_to_end.annotated_test_faces`), with every
    other annotated face of each photo ignored; and one line for each annotation or photo that cannot be used."""
    photos, problems = [], []
    for xml, indices in faces.items():
        try:
            ann = parse_voc(xml)
        except VocError as err:
            problems.append(str(err))
            continue
        image = voc_image(Path(xml).parent.parent, Path(xml), ann.filename)
        if image is None:
            problems.append(f"{xml}: no image {ann.filename!r} beside it")
            continue
        scored = [k for k in sorted(set(indices)) if k < len(ann.objects) and label_of(ann.objects[k].name) in classes]
        photos.append(AnnotatedPhoto(
            str(image), tuple(ann.objects[k].box for k in scored),
            tuple(label_of(ann.objects[k].name) for k in scored),
            tuple(o.box for k, o in enumerate(ann.objects) if k not in scored)))
    return photos, problems


def detections_of(records: Iterable[dict]) -> list[Detection]:
    """`faceocc predict`'s records as detections: each found face once, with its label and the product of how
    sure the finder is of a face and the classifier of the label (a crop classified whole counts as sure)."""
    found = []
    for r in records:
        if r.get("label") is None:
            continue
        face = r.get("detection_score")
        found.append(Detection(tuple(float(v) for v in r["box"]), r["label"],
                               (1.0 if face is None else float(face)) * float(r["scores"][r["label"]])))
    return found


def coco_map(photos: Sequence[AnnotatedPhoto], detections: Sequence[Sequence[Detection]],
             classes: Sequence[str]) -> dict:
    """mAP50 and mAP50-95 over the classes that have a scored face, AP per class and mAP50 per face size
    ({"small", "medium", "large"}, for the sizes that have a face), with the counts. `detections[i]` are those
    on `photos[i]`."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if len(photos) != len(detections):
        raise ValueError(f"{len(photos)} photos but detections for {len(detections)}")
    class_id = {c: k + 1 for k, c in enumerate(classes)}
    images, truth, found = [], [], []
    for i, (photo, dets) in enumerate(zip(photos, detections), start=1):
        images.append({"id": i})
        for box, label in zip(photo.boxes, photo.labels):
            truth.append(_annotation(len(truth) + 1, i, class_id[label], box, crowd=False))
        for box in photo.ignored:  # a crowd region of every class: COCO matches crowds within a class only
            for k in class_id.values():
                truth.append(_annotation(len(truth) + 1, i, k, box, crowd=True))
        found += [{"image_id": i, "category_id": class_id[d.label], "bbox": _xywh(d.box), "score": d.score}
                  for d in dets if d.label in class_id]
    faces = {c: sum(label == c for p in photos for label in p.labels) for c in classes}
    record = {"photos": len(photos), "faces": sum(faces.values()), "detections": len(found)}
    if not record["faces"]:
        return {**record, "map50": 0.0, "map50_95": 0.0, "per_class": {}, "map50_by_size": {}}
    gt = COCO()
    gt.dataset = {"images": images, "annotations": truth,
                  "categories": [{"id": k, "name": c} for c, k in class_id.items()]}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        gt.createIndex()
        dt = gt.loadRes(found) if found else COCO()
        if not found:
            dt.dataset = {"images": images, "annotations": [], "categories": gt.dataset["categories"]}
            dt.createIndex()
        run = COCOeval(gt, dt, "bbox")
        run.params.maxDets = [1, 10, MAX_DETECTIONS]
        run.evaluate()
        run.accumulate()
    precision = run.eval["precision"]  # [IoU threshold, recall point, class, size, max detections]
    per_class = {}
    for c, k in class_id.items():
        if faces[c]:
            column = precision[:, :, k - 1, 0, -1]
            per_class[c] = {"faces": faces[c], "ap50": _mean(column[0]), "ap50_95": _mean(column)}
    sizes = {}
    for name, a in SIZES.items():
        scored = [k - 1 for c, k in class_id.items() if faces[c] and _has_size(photos, c, name)]
        if scored:
            sizes[name] = _mean(precision[0, :, scored, a, -1])
    return {**record,
            "map50": round(float(np.mean([v["ap50"] for v in per_class.values()])), 4),
            "map50_95": round(float(np.mean([v["ap50_95"] for v in per_class.values()])), 4),
            "per_class": per_class, "map50_by_size": sizes}


def _annotation(ident: int, image: int, category: int, box: Box, crowd: bool) -> dict:
    x, y, w, h = _xywh(box)
    return {"id": ident, "image_id": image, "category_id": category, "bbox": [x, y, w, h], "area": w * h,
            "iscrowd": int(crowd), "ignore": int(crowd)}


def _xywh(box: Box) -> list[float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    return [x1, y1, x2 - x1, y2 - y1]


def _mean(values: np.ndarray) -> float:
    """The mean of COCOeval's precisions, leaving out its -1 for "no face of this class and size"."""
    kept = values[values > -1]
    return round(float(kept.mean()), 4) if kept.size else 0.0


def _has_size(photos: Sequence[AnnotatedPhoto], label: str, size: str) -> bool:
    low, high = {"small": (0, 32 ** 2), "medium": (32 ** 2, 96 ** 2), "large": (96 ** 2, float("inf"))}[size]
    return any(lab == label and low <= (b[2] - b[0]) * (b[3] - b[1]) < high
               for p in photos for b, lab in zip(p.boxes, p.labels))


def found_right(photos: Sequence[AnnotatedPhoto], detections: Sequence[Sequence[Detection]], classes: Sequence[str],
                iou: float = 0.5) -> dict:
    """Per class: the scored faces, those a detection overlaps (IoU >= iou, each detection used once, best overlap
    first) and those whose detection carries their class; `faceocc score`'s found x right (its Tally) for any
    system."""
    tally = Tally(tuple(classes))
    for photo, dets in zip(photos, detections):
        tally.add_matched(photo.boxes, photo.labels, [d.box for d in dets], [d.label for d in dets], iou)
    counted = tally.result(len(photos), iou)
    return {**{k: counted[k] for k in ("faces", "found", "right")}, "iou": iou,
            "per_class": {c: {k: v[k] for k in ("faces", "found", "right")}
                          for c, v in counted["per_class"].items() if v["faces"]}}
