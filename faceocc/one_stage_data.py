"""The photos a one-stage detector learns from and is scored on, and what it is taught at each cell.

A split's faces are shown to the detector in their photos, not as crops. A face that came from a PascalVOC
annotation is shown in its whole photo, with the photo's other faces of that split (an annotated face of another
split is ignored: a detection on it counts neither way, and it teaches nothing). Any other face (a folder's photo,
the demo's portraits) is shown in the image the scrape kept, at the box the crop stage found it in, with the
image's label: the issue's "boxes from the face finder with the image's label".

The class map is taught only where a face is: at the cells around its centre. Every other cell is left out of
the loss, so a class is never learnt for background, and reading the map anywhere but at a detected face means
nothing.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np

from faceocc.detection_map import AnnotatedPhoto, voc_photos
from faceocc.end_to_end import annotated_test_faces
from faceocc.manifest import read_rows
from faceocc.workspace import CROPS_CSV, MANIFEST_CSV, SPLIT_CSV

IGNORE = -100  # torch's cross-entropy ignore_index: a cell the loss leaves out


def split_photos(split_rows: Iterable[dict], crop_rows: Iterable[dict], raw_rows: Iterable[dict], scrape_dir: Path,
                 split: str, classes: Sequence[str], label_of) -> tuple[list[AnnotatedPhoto], list[str]]:
    """The photos holding the `split` faces of a workspace (its split.csv, crops.csv and scrape manifest rows),
    sorted by path; and one line for each photo or annotation that cannot be used."""
    split_rows, raw_rows = list(split_rows), list(raw_rows)
    photos, problems = voc_photos(annotated_test_faces(split_rows, raw_rows, split), label_of, classes)
    voc_items = {r["id"] for r in raw_rows if r.get("origin", "").partition("#")[0].endswith(".xml")}
    raw_file = {r["id"]: r["file"] for r in raw_rows if r.get("id")}
    box_of = {r["crop_id"]: tuple(float(r[k]) for k in ("x1", "y1", "x2", "y2")) for r in crop_rows}
    faces: dict[str, list[tuple[tuple, str]]] = defaultdict(list)
    for row in split_rows:
        if row["split"] != split or row["source_id"] in voc_items or row["label"] not in classes:
            continue
        if row["crop_id"] not in box_of or row["source_id"] not in raw_file:
            problems.append(f"{row['crop_id']}: no crop box or scraped image for it")
            continue
        faces[str(scrape_dir / raw_file[row["source_id"]])].append((box_of[row["crop_id"]], row["label"]))
    for path, found in faces.items():
        photos.append(AnnotatedPhoto(path, tuple(b for b, _ in found), tuple(label for _, label in found)))
    return sorted(photos, key=lambda p: p.path), problems


def workspace_photos(split_dir: Path, crop_dir: Path, scrape_dir: Path, split: str, classes: Sequence[str],
                     label_of) -> tuple[list[AnnotatedPhoto], list[str]]:
    """`split_photos` of the split, crop and scrape stages' output folders."""
    return split_photos(read_rows(split_dir / SPLIT_CSV), read_rows(crop_dir / CROPS_CSV),
                        read_rows(scrape_dir / MANIFEST_CSV), scrape_dir, split, classes, label_of)


def fit_long_side(image: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    """The image scaled so that its longer side is `side` px, and the scale (network pixels per photo pixel)."""
    h, w = image.shape[:2]
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=interpolation), scale


def network_input(image: np.ndarray, side: int, square: bool = False) -> tuple[np.ndarray, float]:
    """CenterFace's input for an RGB photo: (3, H, W) float32, 0-255, no mean; the photo scaled to a long side of
    `side` and padded with black at the right and bottom to a multiple of 32 (or to `side` x `side`, `square`, so
    that photos batch); and the scale."""
    scaled, scale = fit_long_side(image, side)
    h, w = scaled.shape[:2]
    H, W = (side, side) if square else (-(-h // 32) * 32, -(-w // 32) * 32)
    blob = np.zeros((3, H, W), np.float32)
    blob[:, :h, :w] = scaled.transpose(2, 0, 1)
    return blob, scale


def mirrored(photo_width: int, boxes: Sequence[tuple]) -> list[tuple]:
    """Boxes of a photo `photo_width` px wide, in its mirror image."""
    return [(photo_width - x2, y1, photo_width - x1, y2) for x1, y1, x2, y2 in boxes]


def centre_targets(boxes: Sequence[tuple], labels: Sequence[int], scale: float, shape: tuple[int, int], stride: int,
                   central: float = 0.5) -> np.ndarray:
    """The class each cell of a (rows, cols) map at `stride` px is taught: a face's class at the cell holding its
    centre and at every cell whose centre lies in the middle `central` of its box (0: the centre cell only);
    IGNORE elsewhere. Boxes in photo pixels, `scale` to the network's. Smaller faces are drawn last, so a small
    face inside a large one's middle keeps its centre."""
    target = np.full(shape, IGNORE, np.int64)
    order = sorted(range(len(boxes)), key=lambda i: -(boxes[i][2] - boxes[i][0]) * (boxes[i][3] - boxes[i][1]))
    for i in order:
        x1, y1, x2, y2 = (v * scale for v in boxes[i])
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        half_w, half_h = (x2 - x1) * central / 2, (y2 - y1) * central / 2
        cols = _cells(cx - half_w, cx + half_w, stride, shape[1])
        rows = _cells(cy - half_h, cy + half_h, stride, shape[0])
        target[rows[0]:rows[1], cols[0]:cols[1]] = labels[i]
        target[min(max(int(cy // stride), 0), shape[0] - 1), min(max(int(cx // stride), 0), shape[1] - 1)] = labels[i]
    return target


def _cells(low: float, high: float, stride: int, count: int) -> tuple[int, int]:
    """[first, last + 1) of the cells whose centres lie in [low, high]."""
    first = max(int(np.ceil(low / stride - 0.5)), 0)
    last = min(int(np.floor(high / stride - 0.5)), count - 1)
    return first, max(first, last + 1)
