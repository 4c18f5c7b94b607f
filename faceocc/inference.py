"""Faces in a photo -> one record per face with its class: the `FaceFinder` the model's training crops were
found with (its card's finder settings), the crop geometry the model was trained on, and the same `Classifier`
evaluation uses.

Records are plain dicts ready for JSON: `box` [x1, y1, x2, y2] and `landmarks` [[x, y] x 5] in the photo's
pixels, `detection_score`, `label`, `scores` {class: probability}. A photo that yields no classified face gives
one record with `label: None` and a `reason` (`no_face`, `too_small`, or why the file could not be read).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from faceocc.cropping import CropGeometry, crop_face
from faceocc.faces import Face
from faceocc.finder import FaceFinder, FinderSettings
from faceocc.images import ImageDecodeError, load_rgb


def finder_settings(card, detector: str | None = None, threshold: float | None = None) -> FinderSettings:
    """The card's finder (FinderSettings' defaults for a card older than the finder), with a user's detector
    and threshold swapped in; a new detector without a threshold gets the registry's usual one. The rest (size
    rule, pyramid, second pass) stays the card's."""
    from faceocc.detectors import DETECTORS

    settings = FinderSettings.from_dict(card.finder, "card.finder") if card.finder else FinderSettings()
    d = settings.detector
    if detector is not None and detector != d.name:
        if detector not in DETECTORS:
            raise ValueError(f"unknown detector {detector!r}; valid: {sorted(DETECTORS)}")
        d = replace(d, name=detector, threshold=DETECTORS[detector].threshold)
    if threshold is not None:
        d = replace(d, threshold=threshold)
    return replace(settings, detector=d)


class FacePredictor:
    """Finder + classifier, loaded once; `predict_image` is safe to call on any file."""

    def __init__(self, classifier, settings: FinderSettings | None = None, finder: FaceFinder | None = None,
                 threads: int = 0):
        """`settings` default to the card's finder; `finder` is one already loaded (tests, benchmarks); `threads`
        for an ONNX detector's session, 0 = ONNX Runtime's choice (every physical core), as torch does for MTCNN."""
        self.classifier = classifier
        self.settings = finder.settings if finder else settings or finder_settings(classifier.card)
        self.geometry = CropGeometry(**classifier.card.crop) if classifier.card.crop else CropGeometry()
        self._finder, self._threads = finder, threads

    @property
    def finder(self) -> FaceFinder:
        if self._finder is None:  # the detector is only loaded when some input needs detection
            self._finder = FaceFinder(self.settings, threads=self._threads)
        return self._finder

    def read(self, path: Path) -> tuple[np.ndarray | None, str | None]:
        try:
            return load_rgb(path), None
        except ImageDecodeError as err:  # empty, truncated, not an image, a bomb, unreadable: the reason in one line
            return None, str(err)

    def faces(self, image: np.ndarray) -> tuple[list[Face], str]:
        """Faces worth classifying, largest first, or ([], why not: no_face, too_small, detect_error: ...)."""
        found = self.finder.find(image)
        return list(found.faces), found.outcome

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
