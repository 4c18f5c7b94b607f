"""The demo data set: occluded variants of the portraits scikit-image ships, built offline and deterministically.

It exists so the whole DAG runs anywhere in minutes. Two identities cannot teach a useful classifier; train
on a real folder (README, "Your own data") for that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np
from skimage import data as skdata

from faceocc import CLASSES
from faceocc.occlusion import Landmarks, occlude

# skimage portraits with one frontal-ish face each, and scenes with none (they exercise the `no_face` outcome).
PORTRAITS = ("astronaut", "camera")
FACELESS_SCENES = ("coffee", "chelsea", "rocket")
# flipping an image swaps what "left" means: MTCNN orders points by image side
_FLIP_ORDER = (1, 0, 2, 4, 3)


@dataclass(frozen=True)
class DemoConfig:
    images_per_class: int = 12
    image_size: int = 320  # side of the square canvas
    faceless_images: int = 2  # labelled like any other class, expected to end as `no_face` in the crop stage
    seed: int = 0


@dataclass(frozen=True)
class DemoImage:
    label: str
    origin: str  # how it was made, for the provenance manifest
    image: np.ndarray


def load_portrait(name: str) -> np.ndarray:
    image = getattr(skdata, name)()
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3])


def build_demo(config: DemoConfig, find_landmarks: Callable[[np.ndarray], Landmarks | None]) -> list[DemoImage]:
    """All demo images, in a fixed order; `find_landmarks` is the detector's 5 points of a portrait's face."""
    rng = np.random.default_rng(config.seed)
    portraits = []
    for name in PORTRAITS:
        image = load_portrait(name)
        points = find_landmarks(image)
        if points is None:
            raise RuntimeError(f"demo: no face found in scikit-image portrait {name!r}")
        portraits.append((name, image, np.asarray(points, np.float64)))
    out = []
    for label in CLASSES:
        for k in range(config.images_per_class):
            name, image, points = portraits[k % len(portraits)]
            scene, scene_points = place_face(image, points, config.image_size, rng)
            if label != "face":
                scene = occlude(scene, scene_points, label, rng)
            scene = relight(scene, rng)
            out.append(DemoImage(label, f"skimage:{name}#{label}-{k}", scene))
    for k in range(config.faceless_images):
        name = FACELESS_SCENES[k % len(FACELESS_SCENES)]
        scene = cv2.resize(load_portrait(name), (config.image_size, config.image_size), interpolation=cv2.INTER_AREA)
        out.append(DemoImage(CLASSES[k % len(CLASSES)], f"skimage:{name}#faceless-{k}", relight(scene, rng)))
    return out


def place_face(
    image: np.ndarray, points: np.ndarray, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Put the portrait on a size x size canvas at a random scale, roll, position and mirror.

    Returns the canvas and the landmarks moved with it.
    """
    eye_centre = (points[0] + points[1]) / 2
    # eye-to-mouth distance sizes the face: unlike eye distance it barely shrinks on a turned head
    face_unit = float(np.hypot(*((points[3] + points[4]) / 2 - eye_centre)))
    target_eyes = rng.uniform(0.1, 0.22) * size  # faces from ~40 to ~90 px wide on a 320 canvas
    scale = target_eyes / face_unit
    angle = rng.normal(0, 8)
    target = rng.uniform(0.35, 0.65, 2) * size
    m = cv2.getRotationMatrix2D(tuple(eye_centre), angle, scale)
    m[:, 2] += target - eye_centre
    background = _background(size, rng)
    warped = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC,
                            borderMode=cv2.BORDER_REPLICATE)
    # blend the warped photo into a synthetic background away from the face (feathered ellipse)
    keep = np.zeros((size, size), np.float32)
    radius = int(target_eyes * rng.uniform(2.2, 3.5))
    cv2.circle(keep, tuple(int(v) for v in target), radius, 1.0, -1)
    keep = cv2.GaussianBlur(keep, (0, 0), radius * 0.3)[..., None]
    canvas = (warped * keep + background * (1 - keep)).astype(np.uint8)
    moved = np.c_[points, np.ones(5)] @ m.T
    if rng.random() < 0.5:
        canvas = np.ascontiguousarray(canvas[:, ::-1])
        moved = moved[list(_FLIP_ORDER)]
        moved[:, 0] = size - 1 - moved[:, 0]
    return canvas, moved


def _background(size: int, rng: np.random.Generator) -> np.ndarray:
    a, b = rng.uniform(40, 220, 3), rng.uniform(40, 220, 3)
    t = np.linspace(0, 1, size)[:, None, None]
    gradient = a * (1 - t) + b * t
    blobs = cv2.GaussianBlur(rng.normal(0, 40, (size, size, 3)).astype(np.float32), (0, 0), size * 0.05)
    return np.clip(np.broadcast_to(gradient, (size, size, 3)) + blobs * 3, 0, 255).astype(np.float32)


def relight(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness, contrast, colour cast, a directional light gradient and sensor noise."""
    img = image.astype(np.float32) / 255.0
    h, w = img.shape[:2]
    gamma = rng.uniform(0.75, 1.3)
    img = img**gamma
    img = (img - 0.5) * rng.uniform(0.8, 1.2) + 0.5 + rng.uniform(-0.08, 0.08)
    img = img * rng.uniform(0.9, 1.1, 3)[None, None, :]
    direction = rng.normal(0, 1, 2)
    direction /= max(np.hypot(*direction), 1e-6)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    ramp = ((xs / w - 0.5) * direction[0] + (ys / h - 0.5) * direction[1])
    img = img * (1 + rng.uniform(0.0, 0.35) * ramp)[..., None]
    img = img + rng.normal(0, rng.uniform(0.0, 0.02), img.shape)
    return np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)

