"""How a face becomes a fixed-size square crop.

One crop geometry is shared by the crop stage and inference, so a model never sees crops framed differently
from the ones it was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from faceocc.config import bounded
from faceocc.faces import Face


@dataclass(frozen=True)
class CropGeometry:
    size: int = bounded(112, ge=16, le=1024)  # output side, pixels
    margin: float = bounded(0.2, ge=0.0, le=2.0)  # the square crop's side is the box's long side * (1 + margin)


def crop_square(face: Face, margin: float) -> tuple[int, int, int]:
    """(x0, y0, side) of the square crop around a face, in integer source pixels (may leave the image)."""
    cx = (face.box[0] + face.box[2]) / 2
    cy = (face.box[1] + face.box[3]) / 2
    side = max(1, int(round(max(face.width, face.height) * (1 + margin))))
    return int(round(cx - side / 2)), int(round(cy - side / 2)), side


def crop_face(image: np.ndarray, face: Face, geometry: CropGeometry) -> tuple[np.ndarray, tuple]:
    """Return the (size x size x 3) crop and the 5 landmarks in crop pixels.

    Parts of the square outside the image are filled by replicating the edge, so a face at the border keeps
    its framing instead of being shifted or squashed.
    """
    x0, y0, side = crop_square(face, geometry.margin)
    h, w = image.shape[:2]
    pad_l, pad_t = max(0, -x0), max(0, -y0)
    pad_r, pad_b = max(0, x0 + side - w), max(0, y0 + side - h)
    region = image[max(0, y0) : min(h, y0 + side), max(0, x0) : min(w, x0 + side)]
    if pad_l or pad_t or pad_r or pad_b:
        if region.size == 0:  # box entirely outside the image: nothing to replicate
            region = np.zeros((side, side, 3), np.uint8)
        else:
            region = cv2.copyMakeBorder(region, pad_t, pad_b, pad_l, pad_r, cv2.BORDER_REPLICATE)
    # INTER_AREA averages when shrinking (no aliasing); cubic when a small face is enlarged.
    interpolation = cv2.INTER_AREA if side > geometry.size else cv2.INTER_CUBIC
    crop = cv2.resize(region, (geometry.size, geometry.size), interpolation=interpolation)
    k = geometry.size / side
    points = tuple(((x - x0) * k, (y - y0) * k) for x, y in face.landmarks)
    return np.ascontiguousarray(crop), points
