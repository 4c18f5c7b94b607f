"""One face-finding policy for every caller: a registered detector, its score threshold, a test-time pyramid,
the second pass on misses, and the face-size rule.

The crop stage, `faceocc predict/sort/video`, the benchmarks and the release's end-to-end score all find faces
through `FaceFinder`, and the crop stage writes its `FinderSettings` beside the crops, so the model card carries
them and the tool finds faces the way the training crops were found.

- First pass: the image is shrunk to `max_side`, searched at each of `scales` (1 = as shrunk; 2 = upscaled
  twice, for faces under the detector's smallest anchor), the looks merged by non-maximum suppression.
- Second pass, only when the first found no face at the threshold: the image padded by each of `pad_fractions`
  in turn (a face filling the frame has no context for a sliding window) and upscaled, with the detector's
  relaxed settings, until some face reaches the threshold.
- Outcome: `ok` (faces at the threshold and at least `min_face_px` on their short side, largest first),
  `no_face`, `too_small`, or `detect_error: <reason>` when the detector itself failed on the image.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from typing import Sequence

import numpy as np

from faceocc.config import bounded, from_mapping
from faceocc.detectors import DETECTORS, Detector, MtcnnOptions, make_detector
from faceocc.faces import Face, pad_and_upscale, rescale, shrink_to_max_side, suppress_overlaps


@dataclass(frozen=True)
class DetectorSettings:
    # the default, chosen by reports/detectors.md: the most crowd recall at precision >= 0.85 with >= 95 % of
    # masked occlusion4 photos found; mtcnn at 0.9 with scales (1,) was the tool's finder before the table
    name: str = "retinaface"       # faceocc.detectors.DETECTORS
    threshold: float = 0.7         # the score a face must reach, on the detector's own scale
    max_side: int = bounded(1024, ge=32)  # larger images are shrunk for detection; faces map back to source pixels
    scales: tuple[float, ...] = bounded((1.0, 2.0), gt=0, le=8)  # test-time pyramid over the shrunk image
    merge_iou: float = bounded(0.4, gt=0, le=1)  # looks at several scales are merged by NMS at this overlap
    mtcnn: MtcnnOptions = field(default_factory=MtcnnOptions)  # used only by name: mtcnn


@dataclass(frozen=True)
class SecondPassSettings:
    enabled: bool = True
    # borders to try in turn, each a fraction of the image's long side added on every side. On occlusion4's
    # masked misses, trying 0.3 then 0.6 recovered 39 of 146 MTCNN misses, one padding alone 24-30 (README).
    pad_fractions: tuple[float, ...] = bounded((0.3, 0.6), ge=0, le=4)
    upscale_to: int = bounded(480, ge=0, le=4096)  # a padded image whose short side is below this is upscaled to it


@dataclass(frozen=True)
class FinderSettings:
    detector: DetectorSettings = field(default_factory=DetectorSettings)
    second_pass: SecondPassSettings = field(default_factory=SecondPassSettings)
    # a face whose short side (source pixels) is under this is `too_small`; 44 % of mask_detection's annotated
    # faces are under 20 px, 12 % under 10
    min_face_px: int = bounded(10, ge=0)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, where: str = "finder") -> "FinderSettings":
        """The settings a crop stage or model card recorded; unknown or mistyped keys fail naming the key."""
        return from_mapping(cls, data, where)


@dataclass(frozen=True)
class Found:
    """The faces worth classifying in one image (largest first) and the outcome; `candidates` counts the faces
    that reached the threshold before the size rule, `detection_pass` which pass found them (None: neither)."""

    faces: tuple[Face, ...]
    outcome: str
    candidates: int = 0
    detection_pass: int | None = None


class FaceFinder:
    """The detector's weights loaded once; `find` is safe on any decoded RGB image."""

    def __init__(self, settings: FinderSettings = FinderSettings(), threads: int = 1, device: str = "cpu",
                 detector: Detector | None = None):
        """`detector` replaces the registry's (tests); otherwise settings.detector.name is loaded."""
        if detector is None and settings.detector.name not in DETECTORS:
            raise ValueError(f"unknown detector {settings.detector.name!r}; valid: {sorted(DETECTORS)}")
        self.settings = settings
        self.detector = detector or make_detector(settings.detector.name, threads, device, settings.detector.mtcnn)
        self.seconds = 0.0  # spent in the detector, both passes, since construction

    @property
    def threshold(self) -> float:
        return self.settings.detector.threshold

    def find(self, image: np.ndarray) -> Found:
        return self.find_batch([image])[0]

    def find_batch(self, images: Sequence[np.ndarray], batch_size: int = 8) -> list[Found]:
        """`find` for many images, batching those of equal shape (MTCNN runs them as one tensor)."""
        first = self.first_pass_batch(images, self.threshold, batch_size)
        out = []
        for image, faces in zip(images, first):
            if isinstance(faces, Exception):
                out.append(Found((), f"detect_error: {faces}"))
                continue
            detection_pass = 1 if faces else None
            if not faces and self.settings.second_pass.enabled:
                try:
                    faces = self.second_pass(image, self.threshold)
                except Exception as err:  # noqa: BLE001 - one image's failure is its outcome, not the run's
                    out.append(Found((), f"detect_error: {err}"))
                    continue
                detection_pass = 2 if faces else None
            out.append(self.select(faces, detection_pass))
        return out

    def select(self, faces: Sequence[Face], detection_pass: int | None) -> Found:
        confident = [f for f in faces if f.score >= self.threshold]
        if not confident:
            return Found((), "no_face", 0, None)
        big = sorted((f for f in confident if f.short_side >= self.settings.min_face_px),
                     key=lambda f: -f.width * f.height)
        return Found(tuple(big), "ok" if big else "too_small", len(confident), detection_pass)

    def first_pass(self, image: np.ndarray, floor: float | None = None, max_side: int | None = None) -> list[Face]:
        """Every face scoring at least `floor` (default: the threshold) on the first pass, best first, in the
        image's pixels; `max_side` shrinks further (video detects on small frames)."""
        found = self.first_pass_batch([image], self.threshold if floor is None else floor, 1, max_side)[0]
        if isinstance(found, Exception):
            raise found
        return found

    def first_pass_batch(self, images: Sequence[np.ndarray], floor: float, batch_size: int = 8,
                         max_side: int | None = None) -> list[list[Face] | Exception]:
        d = self.settings.detector
        side = min(d.max_side, max_side or d.max_side)
        groups: dict[tuple, list] = defaultdict(list)
        for i, image in enumerate(images):
            small, shrink = shrink_to_max_side(image, side)
            groups[small.shape].append((i, small, shrink))
        out: list = [None] * len(images)
        for members in groups.values():
            for start in range(0, len(members), batch_size):
                batch = members[start : start + batch_size]
                try:
                    per_image = self._looks([small for _, small, _ in batch], floor)
                except Exception:  # noqa: BLE001 - one bad image must not lose its batch: retry one by one
                    per_image = [self._one_look(small, floor) for _, small, _ in batch]
                for (i, _, shrink), faces in zip(batch, per_image):
                    out[i] = faces if isinstance(faces, Exception) else [f.to_source(shrink) for f in faces]
        return out

    def second_pass(self, image: np.ndarray, floor: float) -> list[Face]:
        """Faces found on padded, upscaled copies with the detector's relaxed settings, in the image's pixels.
        Paddings are tried in order until one gives a face scoring at least `floor`."""
        p = self.settings.second_pass
        small, shrink = shrink_to_max_side(image, self.settings.detector.max_side)
        for pad_fraction in p.pad_fractions:
            canvas, scale, offset = pad_and_upscale(small, pad_fraction, p.upscale_to)
            found = self._timed(self.detector.detect_batch, [canvas], floor, True)[0]
            if found:  # best first, as the detector gave them
                return [replace(f, detection_pass=2).to_source(scale, offset).to_source(shrink) for f in found]
        return []

    def _looks(self, images: list[np.ndarray], floor: float) -> list[list[Face]]:
        """Faces per equal-shape image over the pyramid's scales, merged."""
        d = self.settings.detector
        merged: list[list[Face]] = [[] for _ in images]
        for scale in d.scales:
            scaled = [rescale(im, scale) for im in images]
            found = self._timed(self.detector.detect_batch, [im for im, _ in scaled], floor, False)
            for faces, got, (_, exact) in zip(merged, found, scaled):
                faces.extend(f.to_source(exact) for f in got)
        if len(d.scales) > 1:  # the same face seen at two scales: the better-scored look stays, best first
            merged = [suppress_overlaps(faces, d.merge_iou) for faces in merged]
        return merged

    def _one_look(self, image: np.ndarray, floor: float):
        try:
            return self._looks([image], floor)[0]
        except Exception as err:  # noqa: BLE001 - recorded as this image's outcome
            return err

    def _timed(self, fn, *args):
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.seconds += time.perf_counter() - start
