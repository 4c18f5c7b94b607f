import numpy as np
import pytest

from faceocc.cropping import CropGeometry, crop_face, crop_square
from faceocc.faces import Face, pad_and_upscale, shrink_to_max_side


def face(x1, y1, x2, y2, score=0.99):
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    points = ((cx - 10, cy - 5), (cx + 10, cy - 5), (cx, cy), (cx - 8, cy + 10), (cx + 8, cy + 10))
    return Face((x1, y1, x2, y2), score, points)


def test_crop_is_square_with_margin_around_the_box_centre():
    assert crop_square(face(10, 20, 110, 100), margin=0.2) == (0, 0, 120)


def test_crop_maps_landmarks_into_crop_pixels():
    image = np.zeros((300, 300, 3), np.uint8)
    f = face(100, 100, 200, 200)
    for x, y in f.landmarks:
        image[int(y) - 1 : int(y) + 2, int(x) - 1 : int(x) + 2] = 255
    crop, points = crop_face(image, f, CropGeometry(size=120, margin=0.2))
    assert crop.shape == (120, 120, 3)
    for x, y in points:
        assert crop[int(round(y)), int(round(x))].max() > 100  # each dot lands where its point says


def test_face_at_the_border_keeps_its_framing():
    image = np.full((100, 100, 3), 50, np.uint8)
    crop, points = crop_face(image, face(-20, -20, 40, 40), CropGeometry(size=64, margin=0.0))
    assert crop.shape == (64, 64, 3) and (crop == 50).all()
    assert points[2] == pytest.approx((32.0, 32.0))  # the nose at the box centre stays at the crop centre


def test_box_outside_the_image_gives_a_blank_crop_not_an_error():
    crop, _ = crop_face(np.zeros((50, 50, 3), np.uint8), face(500, 500, 560, 560), CropGeometry(size=32))
    assert crop.shape == (32, 32, 3)


def test_to_source_inverts_shrink_and_padding():
    image = np.zeros((400, 1000, 3), np.uint8)
    small, shrink = shrink_to_max_side(image, 500)
    assert small.shape[:2] == (200, 500) and shrink == 0.5
    canvas, scale, offset = pad_and_upscale(small, pad_fraction=0.2, upscale_to=800)
    assert min(canvas.shape[:2]) >= 799
    # a point p on the source lands at (p * shrink) * scale + offset on the canvas, and maps back
    p = np.array([300.0, 120.0])
    on_canvas = p * shrink * scale + np.array(offset)
    f = Face((*on_canvas, *(on_canvas + 10)), 0.9, tuple((tuple(on_canvas),) * 5))
    back = f.to_source(scale, offset).to_source(shrink)
    assert back.box[:2] == pytest.approx(tuple(p), abs=1e-6)
