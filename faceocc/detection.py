"""Face detection with facenet-pytorch's MTCNN: one `Face` record per face, in source-image pixels.

MTCNN misses many occluded faces, most of all tight crops where a masked face fills the frame. A second pass
on the misses pads the image (so the face no longer touches the border), upscales small images and lowers the
cascade thresholds; `detect_with_second_pass` reports which pass found each face.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import cv2
import numpy as np
import torch
from facenet_pytorch import MTCNN
from facenet_pytorch.models.utils.detect_face import detect_face

from faceocc.devices import resolve_device

# MTCNN's point order. "left" is the image's left, i.e. the subject's right eye on a frontal face.
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass(frozen=True)
class Face:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in source-image pixels
    score: float  # O-Net face probability
    landmarks: tuple[tuple[float, float], ...]  # 5 (x, y) points in LANDMARK_NAMES order
    detection_pass: int = 1  # 1 = plain detection, 2 = found only by the second pass, 0 = boxed by the source
    landmarks_from: str = "mtcnn"  # mtcnn | annotation (the source's points) | template (a boxed face without any)

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


@dataclass(frozen=True)
class DetectorConfig:
    min_face_size: int = 20  # pixels, on the image MTCNN sees
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)  # P-Net, R-Net, O-Net
    factor: float = 0.709  # image pyramid scale step
    max_side: int = 1024  # larger images are shrunk for detection (speed); faces map back to source pixels
    device: str = "auto"


@dataclass(frozen=True)
class SecondPassConfig:
    enabled: bool = True
    # borders to try in turn, each a fraction of the image's long side added on every side. On occlusion4's
    # masked misses, trying 0.3 then 0.6 recovered 39 of 146 faces, one padding alone 24-30 (README).
    pad_fractions: tuple[float, ...] = (0.3, 0.6)
    upscale_to: int = 480  # a padded image whose short side is below this is upscaled to it
    thresholds: tuple[float, float, float] = (0.5, 0.6, 0.6)
    min_face_size: int = 20


class FaceDetector:
    """MTCNN networks loaded once; thresholds are per call so both passes share one set of weights."""

    def __init__(self, config: DetectorConfig):
        self.config = config
        self.device = resolve_device(config.device)
        self._mtcnn = MTCNN(keep_all=True, device=self.device).eval()

    def detect_batch(
        self,
        images: Sequence[np.ndarray],
        thresholds: Sequence[float] | None = None,
        min_face_size: int | None = None,
        detection_pass: int = 1,
    ) -> list[list[Face]]:
        """Faces per image for equal-shape HxWx3 uint8 RGB images, best score first."""
        if not images:
            return []
        shapes = {im.shape for im in images}
        if len(shapes) != 1:
            raise ValueError(f"MTCNN batches need equal-size images, got shapes {sorted(shapes)}")
        min_size = min_face_size or self.config.min_face_size
        if min(images[0].shape[:2]) < min_size:
            # no pyramid level fits: facenet-pytorch would fail on an empty torch.cat
            return [[] for _ in images]
        net = self._mtcnn
        with torch.inference_mode():
            boxes, points = detect_face(
                np.stack(images),
                min_size,
                net.pnet, net.rnet, net.onet,
                list(thresholds or self.config.thresholds),
                self.config.factor,
                self.device,
            )
        return [_faces_from_arrays(boxes[i], points[i], detection_pass) for i in range(len(images))]

    def detect(self, image: np.ndarray) -> list[Face]:
        """First-pass faces in one image of any size, in its own pixels."""
        small, scale = shrink_to_max_side(image, self.config.max_side)
        return [f.to_source(scale) for f in self.detect_batch([small])[0]]

    def detect_second_pass(self, image: np.ndarray, config: SecondPassConfig, min_score: float) -> list[Face]:
        """Faces found on padded, upscaled copies with lower thresholds, in the source's pixels.

        Paddings are tried in order until one gives a face scoring at least `min_score`; otherwise the faces
        of the last try are returned (all below `min_score`, kept so the caller can record them).
        """
        small, shrink = shrink_to_max_side(image, self.config.max_side)
        faces: list[Face] = []
        for pad_fraction in config.pad_fractions:
            canvas, scale, offset = pad_and_upscale(small, pad_fraction, config.upscale_to)
            found = self.detect_batch([canvas], config.thresholds, config.min_face_size, detection_pass=2)[0]
            faces = [f.to_source(scale, offset).to_source(shrink) for f in found]
            if any(f.score >= min_score for f in faces):
                break
        return faces


def _faces_from_arrays(boxes, points, detection_pass: int) -> list[Face]:
    # detect_face returns ragged object arrays: (n, 5) boxes with the score last, (n, 5, 2) points.
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 5)
    points = np.asarray(points, dtype=np.float64).reshape(-1, 5, 2)
    faces = [
        Face(
            box=tuple(float(v) for v in b[:4]),
            score=float(b[4]),
            landmarks=tuple((float(x), float(y)) for x, y in p),
            detection_pass=detection_pass,
        )
        for b, p in zip(boxes, points)
    ]
    return sorted(faces, key=lambda f: -f.score)


def shrink_to_max_side(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Downscale so the long side is at most `max_side`; returns (image, scale applied)."""
    h, w = image.shape[:2]
    if max(h, w) <= max_side:
        return image, 1.0
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def pad_and_upscale(
    image: np.ndarray, pad_fraction: float, upscale_to: int
) -> tuple[np.ndarray, float, tuple[float, float]]:
    """Pad every side with the image's mean colour, then upscale a small result.

    Returns (canvas, scale, offset) such that source point p lands at p * scale + offset on the canvas.
    A face filling the whole frame has no context for P-Net's sliding window; the border gives it some.
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
