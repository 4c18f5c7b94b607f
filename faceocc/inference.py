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

from faceocc.classifier import Classifier, ModelFileError
from faceocc.cropping import CropGeometry, crop_face
from faceocc.devices import resolve_device
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


REPO = Path(__file__).resolve().parents[1]


def load_classifier(model: str | Path | None = None, task: str | None = None, device: str = "cpu") -> Classifier:
    """The model directory `model`, else the task's released one (occlusion4's when no task is named). Raises
    ModelFileError naming the file and the reason: no model there, a broken one, or one of another task (its
    labels would be read as the wrong ones)."""
    from faceocc.tasks import task_named, task_of_model

    wanted = task_named(task or "occlusion4")
    model_dir = Path(model) if model is not None else REPO / wanted.release_dir
    if model is None and not (model_dir / "card.json").exists():
        raise ModelFileError(f"no {wanted.name} model at {model_dir}; pass --model DIR (after `dvc repro`, for "
                             "example models/onnx_int8/mobilenet_v2)"
                             + ("" if wanted.name == "occlusion4"
                                else f", or build it: make release TASK={wanted.name}"))
    classifier = Classifier.load(model_dir, str(resolve_device(device)))
    card = classifier.card
    model_task = getattr(task_of_model(card.task, card.classes), "name", "")
    if task and model_task != task:
        raise ModelFileError(f"{model_dir} is a {model_task or 'task-less'} model (classes "
                             f"{', '.join(card.classes)}), not one for --task {task}")
    return classifier


def read_photo(path: Path) -> tuple[np.ndarray | None, str | None]:
    """(upright RGB image, None), or (None, the reason in one line): empty, truncated, not an image, a bomb,
    unreadable. What either path's predictor reads a photo with."""
    try:
        return load_rgb(path), None
    except ImageDecodeError as err:
        return None, str(err)


class FacePredictor:
    """Finder + classifier, loaded once; `predict_image` is safe to call on any file.

    From Python, the released model with the finder it was trained with:

        from faceocc import FacePredictor
        predictor = FacePredictor.open()                       # or FacePredictor.open("models/fp32/resnet18")
        for face in predictor.predict("photo.jpg"):            # one dict per face (see the module's docstring)
            print(face["label"], face["scores"], face["box"])
    """

    def __init__(self, classifier, settings: FinderSettings | None = None, finder: FaceFinder | None = None,
                 threads: int = 0, device: str = "cpu"):
        """`settings` default to the card's finder; `finder` is one already loaded (tests, benchmarks); `threads`
        for an ONNX detector's session, 0 = ONNX Runtime's choice (every physical core), as torch does for MTCNN;
        `device` for a torch detector (MTCNN): cpu, cuda or cuda:N."""
        self.classifier = classifier
        self.settings = finder.settings if finder else settings or finder_settings(classifier.card)
        self.geometry = CropGeometry(**classifier.card.crop) if classifier.card.crop else CropGeometry()
        self._finder, self._threads, self._device = finder, threads, device

    @classmethod
    def open(cls, model: str | Path | None = None, *, task: str | None = None, device: str = "auto",
             detector: str | None = None, min_score: float | None = None, threads: int = 0) -> FacePredictor:
        """The predictor `faceocc predict` uses: `model` (a model directory; default the task's released model),
        `task` (occlusion4 or mask_wearing; a model of another task is refused), `device` (auto: CUDA when
        present), `detector` / `min_score` (another registered detector or threshold than the card's)."""
        used = str(resolve_device(device))
        classifier = load_classifier(model, task, used)
        return cls(classifier, finder_settings(classifier.card, detector, min_score), threads=threads, device=used)

    @property
    def finder(self) -> FaceFinder:
        if self._finder is None:  # the detector is only loaded when some input needs detection
            self._finder = FaceFinder(self.settings, threads=self._threads, device=self._device)
        return self._finder

    def predict(self, path: str | Path, crops: bool = False) -> list[dict]:
        """Every face in the photo at `path` (or the whole file as one face with `crops`): one record each, or
        one record with label None and the reason (no face, or why the file could not be read)."""
        image, error = self.read(Path(path))
        if image is None:
            return [{"path": str(path), "label": None, "reason": error}]
        return self.predict_image(image, str(path), crops)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.classifier.classes

    @property
    def card(self):
        """The classifier's model card: its task and classes, what the CLI and the server report."""
        return self.classifier.card

    @staticmethod
    def read(path: Path) -> tuple[np.ndarray | None, str | None]:
        return read_photo(path)

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
