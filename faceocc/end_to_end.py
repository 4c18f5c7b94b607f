"""What `faceocc predict` gives on whole annotated photos: the face finder finds the faces and frames the crops,
the model labels them, and each annotated face counts as right only when it was found and labelled as annotated.

The split's test figures are on faces cut at their annotated boxes; a user's faces are cut at the finder's
boxes, and the smallest are often not found at all. This measures the difference on the same test faces.

Two kinds of photos are scored: PascalVOC photos, each annotated face matched to a detection (`score_photos`),
and photos labelled by their folder (`score_labelled_photos`), one face per photo: the one a box gives where the
data has one, else the largest found, as the crop stage keeps and `faceocc sort --policy largest` decides.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from faceocc.images import ImageDecodeError, load_rgb
from faceocc.inputs import list_inputs
from faceocc.sources import box_in_crop, read_crops_csv, voc_image
from faceocc.voc import VocError, matched_pairs, parse_voc


def annotated_test_faces(split_rows: Iterable[dict], raw_rows: Iterable[dict], split: str = "test") -> dict:
    """{annotation file: [object index, ...]} of the `split` items that came from PascalVOC objects (their raw
    origin is `<xml>#<k>`)."""
    origin = {r["id"]: r["origin"] for r in raw_rows if r.get("id")}
    faces: dict[str, list[int]] = defaultdict(list)
    for row in split_rows:
        xml, _, k = origin.get(row["source_id"], "").rpartition("#")
        if row["split"] == split and xml.endswith(".xml") and k.isdigit():
            faces[xml].append(int(k))
    return {xml: sorted(ks) for xml, ks in sorted(faces.items())}


class Tally:
    """Per class: faces, found, right (found and labelled as annotated); a confusion matrix of the found. What
    `faceocc score` counts, and the found x right of either path on annotated photos (faceocc/detection_map.py)."""

    def __init__(self, classes: tuple[str, ...]):
        self.classes = classes
        self.counts = {c: {"faces": 0, "found": 0, "right": 0} for c in classes}
        self.confusion = np.zeros((len(classes), len(classes)), np.int64)  # annotated x predicted, found faces only
        self.problems: list[str] = []

    def add(self, label: str, predicted: str | None) -> None:
        """One annotated face of `label`; `predicted` is its detection's label, None when it was not found."""
        if label not in self.counts:
            return
        self.counts[label]["faces"] += 1
        if predicted is not None:
            self.counts[label]["found"] += 1
            self.counts[label]["right"] += predicted == label
            self.confusion[self.classes.index(label), self.classes.index(predicted)] += 1

    def add_matched(self, boxes, labels, found_boxes, found_labels, iou: float) -> None:
        """One photo's annotated faces (`boxes`, `labels`) against what was found there: each face is found by the
        detection it overlaps best (IoU >= iou, each detection used once) and takes that detection's label."""
        pairs = dict(matched_pairs(np.array(boxes, float).reshape(-1, 4), np.array(found_boxes, float).reshape(-1, 4),
                                   iou))
        for t, label in enumerate(labels):
            self.add(label, found_labels[pairs[t]] if t in pairs else None)

    def result(self, photos: int, iou: float) -> dict:
        per_class = {c: {**v, "found_share": _share(v["found"], v["faces"]), "recall": _share(v["right"], v["faces"]),
                         "recall_of_found": _share(v["right"], v["found"])} for c, v in self.counts.items()}
        total = {k: sum(v[k] for v in self.counts.values()) for k in ("faces", "found", "right")}
        return {"photos": photos, "iou": iou, **total, "found_share": _share(total["found"], total["faces"]),
                "accuracy": _share(total["right"], total["faces"]),
                "accuracy_of_found": _share(total["right"], total["found"]),
                "macro_recall": round(float(np.mean([v["recall"] for v in per_class.values() if v["faces"]])), 4)
                if total["faces"] else 0.0,
                "per_class": per_class, "confusion_of_found": self.confusion.tolist(), "problems": self.problems}


def score_photos(faces: dict, predict: Callable[[np.ndarray, str], list[dict]], label_of: Callable[[str], str],
                 classes: tuple[str, ...], iou: float = 0.5, progress=None) -> dict:
    """Run `predict` (image, path) -> records on each photo and match its records' boxes to the listed
    annotated faces. Per class: faces, found (IoU >= iou), right (found and labelled as annotated)."""
    tally = Tally(classes)
    for xml, indices in faces.items():
        try:
            ann = parse_voc(xml)
            image_path = voc_image(Path(xml).parent.parent, Path(xml), ann.filename)
            if image_path is None:
                raise VocError(f"no image {ann.filename!r} beside it")
            image = load_rgb(image_path)
        except (VocError, ImageDecodeError) as err:
            tally.problems.append(f"{xml}: {err}")
            continue
        truth = [ann.objects[k] for k in indices if k < len(ann.objects)]
        records = [r for r in predict(image, str(image_path)) if r.get("label") is not None]
        tally.add_matched([o.box for o in truth], [label_of(o.name) for o in truth], [r["box"] for r in records],
                          [r["label"] for r in records], iou)
        if progress is not None:
            progress.update(1)
    return tally.result(len(faces), iou)


@dataclass(frozen=True)
class LabelledPhoto:
    """A photo whose folder names its class. `box` (x1, y1, x2, y2) is its face where the data says which one,
    in the coordinates of `frame`, the part of a larger photo this file shows (None: the file's own pixels)."""
    path: str
    label: str
    box: tuple[float, float, float, float] | None = None
    frame: tuple[float, float, float, float] | None = None

    def box_in(self, width: int, height: int) -> tuple[float, float, float, float] | None:
        """The face box in the pixels of the file as decoded (`width` x `height`)."""
        if self.box is None or self.frame is None:
            return self.box
        return box_in_crop(self.box, self.frame, width, height)


def labelled_photos(root: str | Path, classes: Iterable[str], pattern: str = "*") -> list[LabelledPhoto]:
    """The entries under `root`/<class>/ (recursively) whose name matches `pattern` (fnmatch, as
    `split.out_of_domain`), sorted. Every entry counts, whatever its suffix: it is decoded by content, and one
    that is not an image (or not a file: a FIFO, a dangling link, an empty folder) is reported when scored. A
    `crops.csv` beside the class folders (shared/datasets/occlusion4_more's: columns file, face_box_xyxy and
    crop_box_xyxy, both in the source photo's pixels) gives each file its face."""
    root = Path(root)
    crops = read_crops_csv(root / "crops.csv") if (root / "crops.csv").is_file() else {}
    photos = []
    for label in classes:
        folder = root / label
        if not folder.is_dir():
            continue
        for entry in list_inputs([folder]):  # recursive; a FIFO or dangling link is kept, to be reported
            if fnmatchcase(entry.path.name, pattern):
                cut = crops.get(entry.path.relative_to(root).as_posix())
                photos.append(LabelledPhoto(str(entry.path), label, cut and cut.face, cut and cut.frame))
    return photos


def score_labelled_photos(photos: Iterable[LabelledPhoto], predict: Callable[[np.ndarray, str], list[dict]],
                          classes: tuple[str, ...], iou: float = 0.5, progress=None) -> dict:
    """Run `predict` on each photo; its face is found when a detection overlaps its box (IoU >= iou), or, for a
    photo without a box, when any face is found, the largest standing for the photo. Per class: photos (as
    faces), found, right; the same record as `score_photos`."""
    tally, count = Tally(classes), 0
    for photo in photos:
        count += 1
        try:
            image = load_rgb(photo.path)
        except ImageDecodeError as err:
            tally.problems.append(f"{photo.path}: {err}")
            continue
        records = [r for r in predict(image, photo.path) if r.get("label") is not None]  # largest face first
        box = photo.box_in(image.shape[1], image.shape[0])
        if box is None:
            tally.add(photo.label, records[0]["label"] if records else None)
        else:
            pairs = matched_pairs(np.array([box], float),
                                  np.array([r["box"] for r in records], float).reshape(-1, 4), iou)
            tally.add(photo.label, records[pairs[0][1]]["label"] if pairs else None)
        if progress is not None:
            progress.update(1)
    return tally.result(count, iou)


def _share(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0
