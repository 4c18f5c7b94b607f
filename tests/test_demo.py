from collections import Counter

import numpy as np

from faceocc import CLASSES
from faceocc.demo import DemoConfig, build_demo

POINTS = ((205.0, 102.0), (247.0, 104.0), (225.0, 129.0), (202.0, 139.0), (245.0, 142.0))


def fixed_landmarks(_image):
    return POINTS  # stands in for MTCNN: the demo's logic, not the detector, is under test


def test_demo_is_deterministic_for_a_seed():
    a = build_demo(DemoConfig(images_per_class=2, image_size=96, seed=5), fixed_landmarks)
    b = build_demo(DemoConfig(images_per_class=2, image_size=96, seed=5), fixed_landmarks)
    c = build_demo(DemoConfig(images_per_class=2, image_size=96, seed=6), fixed_landmarks)
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b))
    assert not all(np.array_equal(x.image, y.image) for x, y in zip(a, c))


def test_demo_has_every_class_and_the_faceless_extras():
    images = build_demo(DemoConfig(images_per_class=3, image_size=96, faceless_images=2), fixed_landmarks)
    counts = Counter(i.label for i in images)
    assert set(counts) == set(CLASSES) and sum(counts.values()) == 3 * len(CLASSES) + 2
    assert sum("faceless" in i.origin for i in images) == 2
    assert all(i.image.shape == (96, 96, 3) and i.image.dtype == np.uint8 for i in images)
