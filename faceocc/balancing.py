"""Class balance for the training split: the source document's strategies, albumentations augmentation, and
synthetic rare-class faces drawn by the occlusion renderer onto real faces of other classes.

Only the train split is ever touched: augmented and synthetic images never reach val or test.
Every random choice is seeded from (seed, item id, copy number), so outputs do not depend on processing order.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import albumentations as A
import cv2
import numpy as np

from faceocc.occlusion import draw

STRATEGIES = ("none", "undersample", "oversample")


@dataclass(frozen=True)
class AugmentConfig:
    hflip_p: float = 0.5
    affine_p: float = 0.8
    rotate_deg: float = 12.0
    scale: float = 0.08             # +- fraction
    translate: float = 0.05         # +- fraction of the side
    blur_p: float = 0.2             # Gaussian or motion blur
    blur_max_kernel: int = 5
    brightness: float = 0.2
    contrast: float = 0.2
    brightness_contrast_p: float = 0.7
    sharpen_p: float = 0.2
    jpeg_p: float = 0.3             # re-encoding artefacts, as scraped photos have
    jpeg_min_quality: int = 40
    noise_p: float = 0.2


def build_augmenter(config: AugmentConfig) -> A.Compose:
    kernel = max(3, config.blur_max_kernel | 1)
    return A.Compose([
        A.HorizontalFlip(p=config.hflip_p),
        A.Affine(rotate=(-config.rotate_deg, config.rotate_deg), scale=(1 - config.scale, 1 + config.scale),
                 translate_percent=(-config.translate, config.translate), border_mode=cv2.BORDER_REFLECT_101,
                 p=config.affine_p),
        A.OneOf([A.GaussianBlur(blur_limit=(3, kernel)), A.MotionBlur(blur_limit=(3, kernel))], p=config.blur_p),
        A.RandomBrightnessContrast(brightness_limit=config.brightness, contrast_limit=config.contrast,
                                   p=config.brightness_contrast_p),
        A.Sharpen(p=config.sharpen_p),
        A.ImageCompression(quality_range=(config.jpeg_min_quality, 95), p=config.jpeg_p),
        A.GaussNoise(std_range=(0.02, 0.06), p=config.noise_p),
    ], seed=0)


def augment(augmenter: A.Compose, image: np.ndarray, seed: int) -> np.ndarray:
    augmenter.set_random_seed(seed)
    return augmenter(image=image)["image"]


@dataclass(frozen=True)
class Plan:
    keep: int     # items of the pool kept (real first)
    extra: int    # augmented copies added


def plan_counts(counts: dict[str, int], strategy: str, target: int = 0, augment_ratio: int = 3) -> dict[str, Plan]:
    """How many to keep and how many augmented copies to add per class.

    - none: everything as it is.
    - undersample: every class cut to the smallest non-empty class.
    - oversample (the source document's recipe): classes above the target (default: the median class count)
      are cut to it, classes in the middle stay, classes below grow by augmentation towards it, with at most
      `augment_ratio` copies per image (1:3 in the source).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy {strategy!r} is not one of {STRATEGIES}")
    present = [n for n in counts.values() if n > 0]
    if strategy == "none" or not present:
        return {c: Plan(n, 0) for c, n in counts.items()}
    if strategy == "undersample":
        smallest = min(present)
        return {c: Plan(min(n, smallest), 0) for c, n in counts.items()}
    goal = target or int(statistics.median(present))
    plans = {}
    for c, n in counts.items():
        if n >= goal:
            plans[c] = Plan(goal, 0)
        else:
            plans[c] = Plan(n, min(goal - n, n * augment_ratio))
    return plans


@dataclass(frozen=True)
class SyntheticRecipe:
    label: str       # the class the new images belong to
    source: str      # the class of the real faces drawn on
    render: str      # what is drawn (faceocc.occlusion.RENDERS): masked, sunglasses, or mask_low (worn wrongly)
    count: int       # at most this many (one per source face)
    donor: str = ""  # set: the occluder is moved from a real train face of this class (faceocc/transplant.py)
                     # instead of drawn; render is then what is moved: masked or sunglasses

    @property
    def tag(self) -> str:
        """the recipe's name in ids and train.csv: sunglasses_on_masked, sunglasses_from_sunglasses_on_masked"""
        moved = f"{self.render}_from_{self.donor}" if self.donor else self.render
        return f"{moved}_on_{self.source}"


def render_synthetic(image: np.ndarray, landmarks: np.ndarray, render: str, seed: int,
                     source_px: float | None = None) -> np.ndarray:
    """Draw a random-styled occluder of kind `render` onto a face crop at its landmarks, then bring the crop back to
    the detail of its source (`source_px`: how many source pixels the crop's side came from).

    A 25 px face enlarged to a 112 px crop is soft; an occluder drawn sharp on it would let a model tell synthetic
    from real faces by sharpness alone, and on mask-wearing's small faces that is most of them.
    """
    drawn = draw(image, landmarks, render, np.random.default_rng(seed))
    return match_resolution(drawn, source_px) if source_px else drawn


def match_resolution(image: np.ndarray, source_px: float) -> np.ndarray:
    """Shrink a crop to the side it had in its source and enlarge it back as the crop stage did (cubic): a no-op
    for crops that were shrunk, not enlarged."""
    h, w = image.shape[:2]
    scale = source_px / h
    if scale >= 1.0 or round(w * scale) < 2 or round(h * scale) < 2:
        return image
    shrunk = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    return cv2.resize(shrunk, (w, h), interpolation=cv2.INTER_CUBIC)


def source_side(source_points: np.ndarray, crop_points: np.ndarray, crop_side: int) -> float | None:
    """How many source pixels a crop's side spans, from the same landmarks in both frames (their spread's ratio);
    None when the landmarks coincide."""
    spread_source = float(np.linalg.norm(source_points - source_points.mean(0)))
    spread_crop = float(np.linalg.norm(crop_points - crop_points.mean(0)))
    if spread_source < 1e-6 or spread_crop < 1e-6:
        return None
    return crop_side * spread_source / spread_crop
