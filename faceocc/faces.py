"""A detected face as one record (box, score, 5 landmarks, how it was found), and the image geometry every
detector shares: shrinking a large image, padding a tight one, mapping faces back to source pixels, and
non-maximum suppression when several looks at one image are merged."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import cv2
import numpy as np

# MTCNN's point order, which every detector's points are put in. "left" is the image's left, i.e. the subject's
# right eye on a frontal face.
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
# Where MTCNN puts the 5 points inside its own box, on average (fractions of width, height): the stand-in for
# landmarks of a box that came without any (an annotated box, or a detector that gives none), so alignment and
# drawing still have points to use.
TEMPLATE_LANDMARKS = ((0.31, 0.40), (0.69, 0.40), (0.50, 0.59), (0.35, 0.78), (0.65, 0.78))


@dataclass(frozen=True)
class Face:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in source-image pixels
    score: float  # the detector's confidence, on its own scale (a probability for all but dlib's)
    landmarks: tuple[tuple[float, float], ...]  # 5 (x, y) points in LANDMARK_NAMES order
    detection_pass: int = 1  # 1 = plain detection, 2 = found only by the second pass, 0 = boxed by the source
    # which model gave the points: a detector's name, annotation (the source's points) or template (none given)
    landmarks_from: str = "mtcnn"

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def short_side(self) -> float:
        return min(self.width, self.height)

    def to_source(self, scale: float, offset: tuple[float, float] = (0.0, 0.0)) -> "Face":
        """Map a face found on a resized-then-offset copy of an image back to the source's pixels."""
        ox, oy = offset
        x1, y1, x2, y2 = self.box
        box = ((x1 - ox) / scale, (y1 - oy) / scale, (x2 - ox) / scale, (y2 - oy) / scale)
        points = tuple(((x - ox) / scale, (y - oy) / scale) for x, y in self.landmarks)
        return replace(self, box=box, landmarks=points)


def template_landmarks(box: Sequence[float]) -> tuple[tuple[float, float], ...]:
    """The 5 template points placed in a box (x1, y1, x2, y2)."""
    w, h = box[2] - box[0], box[3] - box[1]
    return tuple((box[0] + fx * w, box[1] + fy * h) for fx, fy in TEMPLATE_LANDMARKS)


def faces_from_arrays(boxes: np.ndarray, scores: np.ndarray, points: np.ndarray | None, landmarks_from: str,
                      detection_pass: int = 1) -> list[Face]:
    """Parallel detector outputs ((n, 4) x1y1x2y2, (n,), (n, 5, 2) or None) -> Face records, best score first.
    The only place such arrays become records, so no caller can index them out of step."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    scores = np.asarray(scores, np.float64).reshape(-1)
    if points is not None:
        points = np.asarray(points, np.float64).reshape(-1, 5, 2)
    faces = []
    for i, (box, score) in enumerate(zip(boxes, scores)):
        box = tuple(float(v) for v in box)
        if points is None:
            marks, source = template_landmarks(box), "template"
        else:
            marks, source = tuple((float(x), float(y)) for x, y in points[i]), landmarks_from
        faces.append(Face(box, float(score), marks, detection_pass, source))
    return sorted(faces, key=lambda f: -f.score)


def suppress_overlaps(faces: Sequence[Face], iou: float) -> list[Face]:
    """Greedy non-maximum suppression (torchvision's): of boxes overlapping at IoU > `iou`, the best score stays;
    the kept faces come best first."""
    if len(faces) < 2:
        return list(faces)
    import torch
    from torchvision.ops import nms

    boxes = torch.tensor([f.box for f in faces], dtype=torch.float64)
    scores = torch.tensor([f.score for f in faces], dtype=torch.float64)
    keep = nms(boxes, scores, iou).tolist()
    return [faces[i] for i in keep]


def shrink_to_max_side(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Downscale so the long side is at most `max_side`; returns (image, scale applied)."""
    h, w = image.shape[:2]
    if max(h, w) <= max_side:
        return image, 1.0
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def rescale(image: np.ndarray, scale: float) -> tuple[np.ndarray, float]:
    """The image resized by `scale` (cubic up, area down); returns (image, the exact x factor after rounding)."""
    if scale == 1.0:
        return image, 1.0
    h, w = image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interpolation = cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA
    return cv2.resize(image, size, interpolation=interpolation), size[0] / w


def pad_and_upscale(
    image: np.ndarray, pad_fraction: float, upscale_to: int
) -> tuple[np.ndarray, float, tuple[float, float]]:
    """Pad every side with the image's mean colour, then upscale a small result.

    Returns (canvas, scale, offset) such that source point p lands at p * scale + offset on the canvas.
    A face filling the whole frame has no context for a detector's sliding window; the border gives it some.
    """
    h, w = image.shape[:2]
    pad = int(round(max(h, w) * pad_fraction))
    fill = [int(v) for v in image.reshape(-1, 3).mean(axis=0)]
    canvas = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=fill)
    scale = 1.0
    short = min(canvas.shape[:2])
    if short < upscale_to:
        scale = upscale_to / short
        size = (round(canvas.shape[1] * scale), round(canvas.shape[0] * scale))
        canvas = cv2.resize(canvas, size, interpolation=cv2.INTER_CUBIC)
        # the exact factor per axis after rounding; they differ by <0.5 px / side, use x's
        scale = canvas.shape[1] / (w + 2 * pad)
    return canvas, scale, (pad * scale, pad * scale)
