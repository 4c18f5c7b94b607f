"""YuNet (libfacedetection, compiled into `yuface`): a tiny anchor-free detector with 5 landmarks.

The library takes BGR, returns integer pixels and a 0-100 confidence, and applies its own NMS; it warns on
inputs over 960 px (its Python wrapper does; the raw call used here runs them without a word). Its points come in the subject's order (right eye
first as seen = image-left first), the same as MTCNN's.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from faceocc.faces import Face, faces_from_arrays


class YuNetDetector:
    name = "yunet"

    def __init__(self):
        import yuface

        self._detect = yuface.c_detect  # the raw call: (n, 15) rows of confidence, x, y, w, h, 10 landmark values

    def detect_batch(self, images: Sequence[np.ndarray], floor: float, relaxed: bool = False) -> list[list[Face]]:
        return [self._detect_one(image, floor) for image in images]

    def _detect_one(self, image: np.ndarray, floor: float) -> list[Face]:
        rows = np.asarray(self._detect(np.ascontiguousarray(image[..., ::-1])), np.float64).reshape(-1, 16)
        rows = rows[rows[:, 0] / 100.0 >= floor]
        boxes = np.column_stack([rows[:, 1], rows[:, 2], rows[:, 1] + rows[:, 3], rows[:, 2] + rows[:, 4]])
        return faces_from_arrays(boxes, rows[:, 0] / 100.0, rows[:, 5:15].reshape(-1, 5, 2), self.name)
