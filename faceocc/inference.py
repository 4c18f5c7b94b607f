"""Faces in a photo -> one record per face with its class: MTCNN (with the crop stage's second pass for faces the
first pass misses), the crop geometry the model was trained on, and the same `Classifier` evaluation uses.

Records are plain dicts ready for JSON: `box` [x1, y1, x2, y2] and `landmarks` [[x, y] x 5] in the photo's
pixels, `detection_score`, `label`, `scores` {class: probability}. A photo that yields no classified face gives
one record with `label: None` and a `reason` (`no_face`, `too_small`, or why the file could not be read).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from faceocc.cropping import CropGeometry, crop_face
from faceocc.detection import DetectorConfig, Face, FaceDetector, SecondPassConfig
from faceocc.images import IMAGE_SUFFIXES, ImageDecodeError, load_rgb


@dataclass(frozen=True)
class FaceRules:
    min_score: float = 0.9        # MTCNN probability a face must reach (the crop stage's default)
    min_face_px: int = 20         # shorter box side in photo pixels; smaller faces are reported as too_small
    second_pass: SecondPassConfig = field(default_factory=SecondPassConfig)


def find_images(inputs: Iterable[str | Path]) -> Iterator[tuple[Path, Path]]:
    """(file, root it was found under) for files, folders (recursive, image suffixes only) and glob patterns;
    an input that matches nothing is yielded as itself so the caller reports it instead of skipping silently."""
    import glob

    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
                yield file, path
        elif path.exists():
            yield path, path.parent
        else:
            files = [Path(m) for m in sorted(glob.glob(str(raw), recursive=True)) if Path(m).is_file()]
            if not files:
                yield path, path.parent
            for file in files:
                yield file, _glob_root(str(raw))


def _glob_root(pattern: str) -> Path:
    """The folder part of a pattern before its first wildcard: `photos/**/*.jpg` -> `photos`."""
    parts = Path(pattern).parts
    fixed = [p for p in parts[: next((i for i, p in enumerate(parts) if any(c in p for c in "*?[")), len(parts))]]
    return Path(*fixed) if fixed else Path(".")


class FacePredictor:
    """Detector + classifier, loaded once; `predict_image` is safe to call on any file."""

    def __init__(self, classifier, rules: FaceRules = FaceRules(), detector: FaceDetector | None = None):
        self.classifier = classifier
        self.rules = rules
        self.geometry = CropGeometry(**classifier.card.crop) if classifier.card.crop else CropGeometry()
        self._detector = detector

    @property
    def detector(self) -> FaceDetector:
        if self._detector is None:  # MTCNN is only loaded when some input needs detection
            self._detector = FaceDetector(DetectorConfig(device="cpu"))
        return self._detector

    def read(self, path: Path) -> tuple[np.ndarray | None, str | None]:
        try:
            return load_rgb(path), None
        except ImageDecodeError as err:  # empty, truncated, not an image, a bomb, unreadable: the reason in one line
            return None, str(err)

    def faces(self, image: np.ndarray) -> tuple[list[Face], str]:
        """Faces worth classifying, largest first, or ([], why not)."""
        found = [f for f in self.detector.detect(image) if f.score >= self.rules.min_score]
        if not found and self.rules.second_pass.enabled:
            found = [f for f in self.detector.detect_second_pass(image, self.rules.second_pass, self.rules.min_score)
                     if f.score >= self.rules.min_score]
        if not found:
            return [], "no_face"
        big = [f for f in found if f.short_side >= self.rules.min_face_px]
        if not big:
            return [], "too_small"
        return sorted(big, key=lambda f: -f.width * f.height), "ok"

    def predict_image(self, image: np.ndarray, path: str, crops: bool = False) -> list[dict]:
        if crops:  # the whole file is an already-cropped face
            h, w = image.shape[:2]
            return self._records(path, [image], [None], [(0.0, 0.0, float(w), float(h))])
        faces, reason = self.faces(image)
        if not faces:
            return [{"path": path, "label": None, "reason": reason}]
        face_crops = [crop_face(image, f, self.geometry)[0] for f in faces]
        return self._records(path, face_crops, faces, [f.box for f in faces])

    def _records(self, path: str, face_crops: list[np.ndarray], faces: list[Face | None], boxes) -> list[dict]:
        probabilities = self.classifier.predict_proba(face_crops)
        classes = self.classifier.classes
        records = []
        for face, box, p in zip(faces, boxes, probabilities):
            records.append({
                "path": path, "box": [round(float(v), 1) for v in box],
                "detection_score": None if face is None else round(face.score, 4),
                "landmarks": None if face is None else [[round(x, 1), round(y, 1)] for x, y in face.landmarks],
                "label": classes[int(np.argmax(p))],
                "scores": {c: round(float(v), 4) for c, v in zip(classes, p)}})
        return records
