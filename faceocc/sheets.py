"""Contact sheets: grids of images with captions, for reviewing data by eye."""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np


# one colour per series of a chart (bars, lines), in order; class colours on photos are the tasks' own
SERIES_COLOURS = [(70, 110, 200), (230, 150, 40), (60, 170, 90), (190, 60, 60), (140, 80, 170), (90, 90, 90)]


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


def captioned_grid(tiles: Sequence[tuple[str, np.ndarray]], title: str, tile: int = 112, columns: int = 10,
                   caption_px: int = 14) -> np.ndarray:
    """A titled grid of images, each with its caption (e.g. a short id a reviewer copies) underneath."""
    width = columns * tile
    longest = max((c for c, _ in tiles), key=len, default="")
    text_w = cv2.getTextSize(longest, cv2.FONT_HERSHEY_PLAIN, 1.0, 1)[0][0] or 1
    font_scale = min(1.0, 0.85 * (tile - 4) / text_w)  # the whole caption fits under its tile
    header = np.full((24, width, 3), 255, np.uint8)
    cv2.putText(header, title, (4, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    rows = max(1, -(-len(tiles) // columns))
    grid = np.full((rows * (tile + caption_px), width, 3), 255, np.uint8)
    for i, (caption, image) in enumerate(tiles):
        y, x = (i // columns) * (tile + caption_px), (i % columns) * tile
        grid[y : y + tile, x : x + tile] = cv2.resize(image, (tile, tile), interpolation=cv2.INTER_AREA)
        cv2.putText(grid, caption, (x + 2, y + tile + caption_px - 4), cv2.FONT_HERSHEY_PLAIN, font_scale,
                    (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([header, grid])


def bar_chart(values: dict[str, Sequence[float]], series: Sequence[str], title: str, width: int = 720,
              bar_px: int = 16) -> np.ndarray:
    """Horizontal grouped bars: one group per key of `values`, one bar per series, value printed at its end."""
    colours = SERIES_COLOURS
    label_px, top = 150, 30
    group_px = bar_px * len(series) + 14
    height = top + group_px * len(values) + 22 * len(series) + 10
    canvas = np.full((height, width, 3), 255, np.uint8)
    cv2.putText(canvas, title, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    peak = max([v for vals in values.values() for v in vals] + [1])
    scale = (width - label_px - 70) / peak
    for g, (name, vals) in enumerate(values.items()):
        y0 = top + g * group_px
        cv2.putText(canvas, name, (6, y0 + group_px // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        for s, v in enumerate(vals):
            y = y0 + s * bar_px
            x1 = label_px + round(v * scale)
            cv2.rectangle(canvas, (label_px, y), (x1, y + bar_px - 3), colours[s % len(colours)], -1)
            cv2.putText(canvas, f"{v:g}", (x1 + 4, y + bar_px - 5), cv2.FONT_HERSHEY_PLAIN, 0.9, (0, 0, 0), 1,
                        cv2.LINE_AA)
    legend_y = top + group_px * len(values) + 8
    for s, name in enumerate(series):
        y = legend_y + s * 22
        cv2.rectangle(canvas, (label_px, y), (label_px + 14, y + 14), colours[s % len(colours)], -1)
        cv2.putText(canvas, name, (label_px + 22, y + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return canvas


def confusion_image(matrix: np.ndarray, classes: tuple[str, ...], title: str, cell: int = 90) -> np.ndarray:
    """Rows = actual, columns = predicted; each cell shaded by its share of the row, with the count."""
    n = len(classes)
    left, top = 150, 60
    image = np.full((top + n * cell + 10, left + n * cell + 10, 3), 255, np.uint8)
    cv2.putText(image, title, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(image, "actual \\ predicted", (6, 48), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (80, 80, 80), 1, cv2.LINE_AA)
    totals = matrix.sum(axis=1, keepdims=True).clip(min=1)
    for j, name in enumerate(classes):
        cv2.putText(image, name[:12], (left + j * cell + 4, top - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1,
                    cv2.LINE_AA)
    for i, name in enumerate(classes):
        cv2.putText(image, name, (6, top + i * cell + cell // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                    cv2.LINE_AA)
        for j in range(n):
            share = matrix[i, j] / totals[i, 0]
            shade = int(255 - 200 * share)
            colour = (shade, shade, 255) if i != j else (shade, 255, shade)
            x, y = left + j * cell, top + i * cell
            cv2.rectangle(image, (x, y), (x + cell - 2, y + cell - 2), colour, -1)
            cv2.putText(image, str(int(matrix[i, j])), (x + cell // 3, y + cell // 2 + 6), cv2.FONT_HERSHEY_SIMPLEX,
                        0.6, (0, 0, 0), 1, cv2.LINE_AA)
    return image


def line_chart(series: dict[str, tuple[Sequence[float], Sequence[float]]], title: str, x_label: str,
               y_label: str, size: int = 320) -> np.ndarray:
    """Curves on axes from 0 to 1 (precision-recall, ROC), one colour per series, the legend under the plot."""
    left, top, bottom = 46, 48, 40 + 18 * len(series)
    canvas = np.full((top + size + bottom, left + size + 16, 3), 255, np.uint8)
    cv2.putText(canvas, title, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)

    def point(x: float, y: float) -> tuple[int, int]:
        return left + round(x * size), top + round((1 - y) * size)

    for tick in (0.0, 0.5, 1.0):
        cv2.line(canvas, point(tick, 0), point(tick, 1), (225, 225, 225), 1)
        cv2.line(canvas, point(0, tick), point(1, tick), (225, 225, 225), 1)
        cv2.putText(canvas, f"{tick:g}", (point(tick, 0)[0] - 6, top + size + 14), cv2.FONT_HERSHEY_PLAIN, 0.9,
                    (80, 80, 80), 1, cv2.LINE_AA)
        cv2.putText(canvas, f"{tick:g}", (left - 26, point(0, tick)[1] + 4), cv2.FONT_HERSHEY_PLAIN, 0.9,
                    (80, 80, 80), 1, cv2.LINE_AA)
    cv2.rectangle(canvas, point(0, 1), point(1, 0), (0, 0, 0), 1)
    cv2.putText(canvas, x_label, (left + size // 2 - 20, top + size + 30), cv2.FONT_HERSHEY_SIMPLEX, 0.42,
                (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(canvas, y_label, (4, top - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    for s, (name, (xs, ys)) in enumerate(series.items()):
        colour = SERIES_COLOURS[s % len(SERIES_COLOURS)]
        points = np.array([point(x, y) for x, y in zip(xs, ys)], np.int32)
        if len(points):
            cv2.polylines(canvas, [points], False, colour, 2, cv2.LINE_AA)
        y = top + size + 40 + 18 * s
        cv2.rectangle(canvas, (left, y - 10), (left + 12, y + 2), colour, -1)
        cv2.putText(canvas, name, (left + 18, y), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    return canvas
