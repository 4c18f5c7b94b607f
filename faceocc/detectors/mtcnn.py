"""facenet-pytorch's MTCNN: the three-network cascade, batched over equal-size images.

Its O-Net probability is the score. The cascade's internal thresholds gate what reaches O-Net; a second look
(`relaxed`) lowers them, which recovers some occluded faces the first look drops before O-Net sees them.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from facenet_pytorch import MTCNN
from facenet_pytorch.models.utils.detect_face import detect_face

from faceocc.detectors import MtcnnOptions
from faceocc.devices import resolve_device
from faceocc.faces import Face, faces_from_arrays


class MtcnnDetector:
    name = "mtcnn"

    def __init__(self, options: MtcnnOptions, device: str = "cpu"):
        self.options = options
        self.device = resolve_device(device)
        self._mtcnn = MTCNN(keep_all=True, device=self.device).eval()

    def detect_batch(self, images: Sequence[np.ndarray], floor: float, relaxed: bool = False) -> list[list[Face]]:
        if not images:
            return []
        shapes = {im.shape for im in images}
        if len(shapes) != 1:
            raise ValueError(f"MTCNN batches need equal-size images, got shapes {sorted(shapes)}")
        o = self.options
        if min(images[0].shape[:2]) < o.min_face_size:
            # no pyramid level fits: facenet-pytorch would fail on an empty torch.cat
            return [[] for _ in images]
        net = self._mtcnn
        with torch.inference_mode():
            boxes, points = detect_face(np.stack(images), o.min_face_size, net.pnet, net.rnet, net.onet,
                                        list(o.relaxed_thresholds if relaxed else o.thresholds), o.factor,
                                        self.device)
        per_image = []
        for b, p in zip(boxes, points):
            # detect_face returns ragged object arrays: (n, 5) boxes with the score last, (n, 5, 2) points
            b = np.asarray(b, np.float64).reshape(-1, 5)
            faces = faces_from_arrays(b[:, :4], b[:, 4], np.asarray(p, np.float64).reshape(-1, 5, 2), self.name)
            per_image.append([f for f in faces if f.score >= floor])
        return per_image
