"""What `faceocc predict` gives on whole annotated photos: the face finder finds the faces and frames the crops,
the model labels them, and each annotated face counts as right only when it was found and labelled as annotated.

The split's test figures are on faces cut at their annotated boxes; a user's faces are cut at the finder's
boxes, and the smallest are often not found at all. This measures the difference on the same test faces.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from faceocc.images import ImageDecodeError, load_rgb
from faceocc.sources import voc_image
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


def score_photos(faces: dict, predict: Callable[[np.ndarray, str], list[dict]], label_of: Callable[[str], str],
                 classes: tuple[str, ...], iou: float = 0.5, progress=None) -> dict:
    """Run `predict` (image, path) -> records on each photo and match its records' boxes to the listed
    annotated faces. Per class: faces, found (IoU >= iou), right (found and labelled as annotated)."""
    counts = {c: {"faces": 0, "found": 0, "right": 0} for c in classes}
    confusion = np.zeros((len(classes), len(classes)), np.int64)  # annotated x predicted, found faces only
    problems = []
    for xml, indices in faces.items():
        try:
            ann = parse_voc(xml)
            image_path = voc_image(Path(xml).parent.parent, Path(xml), ann.filename)
            if image_path is None:
                raise VocError(f"no image {ann.filename!r} beside it")
            image = load_rgb(image_path)
        except (VocError, ImageDecodeError) as err:
            problems.append(f"{xml}: {err}")
            continue
        truth = [ann.objects[k] for k in indices if k < len(ann.objects)]
        records = [r for r in predict(image, str(image_path)) if r.get("label") is not None]
        pairs = dict(matched_pairs(np.array([o.box for o in truth]).reshape(-1, 4),
                                   np.array([r["box"] for r in records], float).reshape(-1, 4), iou))
        for t, obj in enumerate(truth):
            label = label_of(obj.name)
            if label not in counts:
                continue
            counts[label]["faces"] += 1
            if t in pairs:
                predicted = records[pairs[t]]["label"]
                counts[label]["found"] += 1
                counts[label]["right"] += predicted == label
                confusion[classes.index(label), classes.index(predicted)] += 1
        if progress is not None:
            progress.update(1)
    per_class = {c: {**v, "found_share": _share(v["found"], v["faces"]), "recall": _share(v["right"], v["faces"]),
                     "recall_of_found": _share(v["right"], v["found"])} for c, v in counts.items()}
    total = {k: sum(v[k] for v in counts.values()) for k in ("faces", "found", "right")}
    return {"photos": len(faces), "iou": iou, **total, "found_share": _share(total["found"], total["faces"]),
            "accuracy": _share(total["right"], total["faces"]),
            "macro_recall": round(float(np.mean([v["recall"] for v in per_class.values() if v["faces"]])), 4)
            if total["faces"] else 0.0,
            "per_class": per_class, "confusion_of_found": confusion.tolist(), "problems": problems}


def _share(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0
