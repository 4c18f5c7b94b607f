"""A trained one-stage detector on disk and at work: its folder (one ONNX graph and a card), its INT8 version, and
the records it gives for a photo, the same as `faceocc predict`'s for the two-stage path.

A photo is scaled to the card's long side and padded to a multiple of 32; one run gives CenterFace's face
heatmap, boxes and landmarks and the class map; faces are decoded as CenterFace's own detector decodes them
(faceocc/detectors/centerface.py) and each takes the class map's probabilities at the cell of its centre.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from faceocc import int8_cpu
from faceocc.detectors.centerface import CenterFaceDetector
from faceocc.faces import Face
from faceocc.one_stage import CLASS_OUTPUT, BRANCH_PREFIX, DETECTION_OUTPUTS, INPUT, classes_at
from faceocc.one_stage_data import network_input

GRAPH_FILE = "model.onnx"
CARD_FILE = "one_stage.json"

log = logging.getLogger("faceocc.one_stage")


@dataclass(frozen=True)
class OneStageCard:
    task: str
    classes: tuple[str, ...]
    side: int                  # a photo's long side in the network, px
    threshold: float           # the face score a detection must reach, on CenterFace's scale
    min_face: int              # px, the short side of a face box in the photo
    variant: str = "fp32"      # fp32 | int8
    info: dict = field(default_factory=dict)  # how it was trained or quantized

    def write(self, folder: Path) -> None:
        (folder / CARD_FILE).write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")

    @classmethod
    def read(cls, folder: Path) -> "OneStageCard":
        values = json.loads((Path(folder) / CARD_FILE).read_text())
        return cls(**{**values, "classes": tuple(values["classes"])})


class _Decoder(CenterFaceDetector):
    """CenterFace's decoding (heatmap peaks, boxes, landmarks, overlap suppression), without its session."""

    name = "one-stage"

    def __init__(self):  # the graph runs elsewhere: only the decoding is borrowed
        pass

    def decode(self, heat, size, offset, marks, floor: float, image_wh) -> list[Face]:
        return self._decode(heat, size, offset, marks, floor, image_wh)


class OneStageDetector:
    """A one-stage model folder, loaded once; `predict_image` gives `faceocc predict`'s records."""

    def __init__(self, folder: str | Path, threads: int = 0, threshold: float | None = None):
        import onnxruntime as ort

        self.folder = Path(folder)
        self.card = OneStageCard.read(self.folder)
        risk = int8_cpu.saturation_risk("onnx_int8" if self.card.variant == "int8" else None, self.card.info,
                                        onnx_stage="detect_quantize")
        if risk:
            log.warning("%s: %s", self.folder, risk)
        self.threshold = self.card.threshold if threshold is None else threshold
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(self.folder / GRAPH_FILE), options,
                                             providers=["CPUExecutionProvider"])
        self._decoder = _Decoder()

    def predict_image(self, image: np.ndarray, path: str) -> list[dict]:
        """One record per face found, largest first, or one with label None and the reason (no_face)."""
        blob, scale = network_input(image, self.card.side)
        heat, size, offset, marks, probabilities = self._session.run(
            [*DETECTION_OUTPUTS, BRANCH_PREFIX + CLASS_OUTPUT], {INPUT: blob[None]})
        h, w = image.shape[:2]
        faces = self._decoder.decode(heat[0, 0], size[0], offset[0], marks[0], self.threshold,
                                     (round(w * scale), round(h * scale)))
        faces = [f for f in faces if min(f.box[2] - f.box[0], f.box[3] - f.box[1]) >= self.card.min_face * scale]
        if not faces:
            return [{"path": path, "label": None, "reason": "no_face"}]
        faces.sort(key=lambda f: -(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
        centres = [((f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2) for f in faces]
        records = []
        for face, found in zip(faces, classes_at(probabilities[0], np.array(centres), self.card.classes)):
            records.append({
                "path": path, "box": [round(float(v) / scale, 1) for v in face.box],
                "detection_score": round(face.score, 4),
                "landmarks": [[round(x / scale, 1), round(y / scale, 1)] for x, y in face.landmarks],
                "label": found.label, "scores": {c: round(v, 4) for c, v in found.probabilities.items()}})
        return records


def quantize(fp32_folder: Path, out_folder: Path, calibration: Sequence[np.ndarray], *, per_channel: bool,
             activations: str, reduce_range: bool = True) -> None:
    """ONNX Runtime static INT8 (QDQ, calibrated on `calibration`: network inputs (3, H, W)) of the whole
    one-stage graph, CenterFace and the class branch alike, written with its card beside it. `reduce_range`
    (7-bit weights) keeps it exact on CPUs without VNNI (faceocc/int8_cpu.py)."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType, quant_pre_process,
                                          quantize_static)

    class Inputs(CalibrationDataReader):
        def __init__(self):
            self._items = iter([{INPUT: blob[None]} for blob in calibration])

        def get_next(self):
            return next(self._items, None)

    prepared = out_folder / "prepared.onnx"
    quant_pre_process(str(fp32_folder / GRAPH_FILE), str(prepared), skip_symbolic_shape=True)
    quantize_static(str(prepared), str(out_folder / GRAPH_FILE), Inputs(), quant_format=QuantFormat.QDQ,
                    per_channel=per_channel, reduce_range=reduce_range,
                    activation_type=getattr(QuantType, activations), weight_type=QuantType.QInt8)
    prepared.unlink()
    card = OneStageCard.read(fp32_folder)
    info = {"quantized_from": str(fp32_folder), "calibration_photos": len(calibration), "per_channel": per_channel,
            "activations": activations, "reduce_range": reduce_range}
    OneStageCard(**{**asdict(card), "variant": "int8", "info": info}).write(out_folder)


ONE_STAGE = "one-stage"  # the `--detector` value that swaps the finder and the classifier for one graph
REPO = Path(__file__).resolve().parents[1]


def release_folder(task: str) -> Path:
    """Where a task's released one-stage model lives (`make release` writes it: tools/one_stage_release.py)."""
    return REPO / f"models/release_one_stage_{task}"


class OneStagePredictor:
    """`faceocc predict`'s predictor for a one-stage model: the same `predict_image`, `classes` and `card` as the
    two-stage FacePredictor, and `describe()` for the record of a score."""

    def __init__(self, folder: str | Path | None = None, task: str | None = None, threads: int = 0,
                 threshold: float | None = None):
        folder = Path(folder) if folder is not None else release_folder(task or "occlusion4")
        if not (folder / CARD_FILE).is_file() or not (folder / GRAPH_FILE).is_file():
            raise ValueError(f"no one-stage model at {folder} ({CARD_FILE} and {GRAPH_FILE}); pass --model DIR, "
                             "for example models/one_stage/int8 after `dvc repro`")
        self.detector = OneStageDetector(folder, threads, threshold)
        self.card = self.detector.card
        self.classes = self.card.classes
        if task and self.card.task != task:
            raise ValueError(f"{folder} is a {self.card.task} one-stage model, not one for --task {task}")

    def predict_image(self, image: np.ndarray, path: str, crops: bool = False) -> list[dict]:
        if crops:
            raise ValueError("a one-stage model finds faces itself: --crops needs a classifier model")
        return self.detector.predict_image(image, path)

    def describe(self) -> dict:
        return {"detector": ONE_STAGE, "model": str(self.detector.folder), "threshold": self.detector.threshold,
                "side": self.card.side, "min_face": self.card.min_face}
