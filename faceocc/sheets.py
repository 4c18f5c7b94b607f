"""Contact sheets: grids of images with captions, for reviewing data by eye."""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np


def contact_sheet(
    rows: Sequence[tuple[str, Sequence[np.ndarray]]], tile: int = 112, columns: int = 8, caption_px: int = 22
) -> np.ndarray:
    """One band per (title, images) row: the title, then up to `columns` tiles (RGB uint8) side by side."""
    bands = []
    width = columns * tile
    for title, images in rows:
        header = np.full((caption_px, width, 3), 255, np.uint8)
        cv2.putText(header, title, (4, caption_px - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        strip = np.full((tile, width, 3), 235, np.uint8)
        for i, image in enumerate(list(images)[:columns]):
            strip[:, i * tile : (i + 1) * tile] = cv2.resize(image, (tile, tile), interpolation=cv2.INTER_AREA)
        bands.extend([header, strip])
    if not bands:
        return np.full((caption_px, width, 3), 255, np.uint8)
    return np.vstack(bands)


def draw_points(image: np.ndarray, points: Sequence[Sequence[float]], radius: int = 2) -> np.ndarray:
    out = image.copy()
    for x, y in points:
        cv2.circle(out, (int(round(x)), int(round(y))), radius, (255, 40, 40), -1, cv2.LINE_AA)
    return out
