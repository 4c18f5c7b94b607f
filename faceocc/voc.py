"""PascalVOC annotations (the mask_detection set's XML files): parsing with one-line reasons for bad files, and
how many annotated boxes a detector recovers.

Python's expat (2.4.1 and later) refuses entity-expansion bombs, so a hostile XML file fails to parse rather than
eating memory; every failure becomes a VocError naming the file.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from faceocc.boxes import iou_matrix


class VocError(ValueError):
    """str(err) names the file and why it cannot be used, in one line."""


@dataclass(frozen=True)
class VocObject:
    name: str
    box: tuple[float, float, float, float]  # x1, y1, x2, y2, clipped to the image
    clipped: bool                           # the annotated box reached outside the image


@dataclass(frozen=True)
class VocAnnotation:
    filename: str
    width: int
    height: int
    objects: tuple[VocObject, ...]
    dropped: tuple[str, ...] = ()           # why an <object> was left out (no name, no box, empty box)


def _number(node: ET.Element | None, tag: str) -> float:
    text = node.findtext(tag) if node is not None else None
    if text is None or not text.strip():
        raise ValueError(f"missing <{tag}>")
    return float(text)


def parse_voc(path: str | Path) -> VocAnnotation:
    """One annotation file. Boxes are clipped to the image (and flagged); boxes with no area after clipping,
    objects without a name or a box, are listed in `dropped` with the reason."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as err:
        raise VocError(f"{path}: not a readable VOC XML file ({err})") from None
    try:
        size = root.find("size")
        width, height = int(_number(size, "width")), int(_number(size, "height"))
    except ValueError as err:
        raise VocError(f"{path}: no usable image size ({err})") from None
    if width <= 0 or height <= 0:
        raise VocError(f"{path}: image size {width}x{height}")
    objects, dropped = [], []
    for k, obj in enumerate(root.findall("object")):
        name = (obj.findtext("name") or "").strip()
        if not name:
            dropped.append(f"object {k}: no <name>")
            continue
        try:
            box = obj.find("bndbox")
            x1, y1, x2, y2 = (_number(box, t) for t in ("xmin", "ymin", "xmax", "ymax"))
        except ValueError as err:
            dropped.append(f"object {k} ({name}): {err}")
            continue
        inside = (max(0.0, min(x1, x2)), max(0.0, min(y1, y2)), min(float(width), max(x1, x2)),
                  min(float(height), max(y1, y2)))
        if inside[2] - inside[0] < 1 or inside[3] - inside[1] < 1:
            dropped.append(f"object {k} ({name}): no area inside the {width}x{height} image")
            continue
        objects.append(VocObject(name, inside, inside != (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))))
    return VocAnnotation((root.findtext("filename") or "").strip(), width, height, tuple(objects), tuple(dropped))


def matched_pairs(truth: np.ndarray, detected: np.ndarray, threshold: float = 0.5) -> list[tuple[int, int]]:
    """(truth index, detection index) pairs at IoU >= threshold, each box used once (greedy, best overlap
    first)."""
    if not len(truth) or not len(detected):
        return []
    overlaps = iou_matrix(truth, detected)
    pairs, used_truth, used_detected = [], set(), set()
    for flat in np.argsort(-overlaps, axis=None):
        t, d = (int(v) for v in np.unravel_index(flat, overlaps.shape))
        if overlaps[t, d] < threshold:
            break
        if t not in used_truth and d not in used_detected:
            pairs.append((t, d))
            used_truth.add(t)
            used_detected.add(d)
    return pairs


def matched(truth: np.ndarray, detected: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Per ground-truth box: found by a detection at IoU >= threshold (matched_pairs' one-to-one matching)."""
    found = np.zeros(len(truth), bool)
    for t, _ in matched_pairs(truth, detected, threshold):
        found[t] = True
    return found


def size_bucket(short_side: float, edges: Sequence[int]) -> str:
    """The size bucket of a box's short side: `0-20 px`, `20-40 px`, `>= 40 px` for edges (20, 40)."""
    for lo, hi in zip((0, *edges), edges):
        if short_side < hi:
            return f"{lo}-{hi} px"
    return f">= {edges[-1]} px"
