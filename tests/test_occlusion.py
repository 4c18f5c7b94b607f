import cv2
import numpy as np
import pytest

from faceocc.occlusion import (GlassesStyle, MaskStyle, draw, low_mask_style, occlude, random_glasses_style,
                               random_mask_style, render_mask, render_sunglasses)

# Fixed 5 points on a 200x200 canvas: eyes at y=80, nose at y=105, mouth at y=130.
POINTS = ((80.0, 80.0), (120.0, 80.0), (100.0, 105.0), (85.0, 130.0), (115.0, 130.0))


@pytest.fixture
def canvas():
    return np.full((200, 200, 3), 128, np.uint8)


def _changed(before, after, xy, radius=2):
    x, y = int(xy[0]), int(xy[1])
    window = (slice(y - radius, y + radius + 1), slice(x - radius, x + radius + 1))
    return np.abs(before[window].astype(int) - after[window].astype(int)).max() > 20


def test_mask_covers_nose_and_mouth_but_not_the_eyes(canvas):
    out = render_mask(canvas, POINTS, MaskStyle(color=(230, 230, 230)))
    assert _changed(canvas, out, POINTS[3]) and _changed(canvas, out, POINTS[4])
    assert _changed(canvas, out, (100, 115))  # between nose tip and mouth
    assert not _changed(canvas, out, POINTS[0]) and not _changed(canvas, out, POINTS[1])


def test_sunglasses_darken_the_eyes_but_not_the_mouth(canvas):
    out = render_sunglasses(canvas, POINTS, GlassesStyle())
    for eye in POINTS[:2]:
        assert out[int(eye[1]), int(eye[0])].mean() < 0.6 * 128  # tinted lens, glare included
    assert not _changed(canvas, out, POINTS[3]) and not _changed(canvas, out, POINTS[4])


def test_rendering_follows_a_rotated_face(canvas):
    # the same face turned 90 degrees: the mouth is now on the left of the eyes
    rot = cv2.getRotationMatrix2D((100, 100), 90, 1.0)
    turned = [tuple(rot @ (x, y, 1)) for x, y in POINTS]
    out = render_mask(canvas, turned, MaskStyle(color=(230, 230, 230)))
    assert _changed(canvas, out, turned[3]) and _changed(canvas, out, turned[4])
    assert not _changed(canvas, out, turned[0])


def test_rendering_is_a_pure_function_of_image_points_and_style(canvas):
    style = MaskStyle(shape="cloth", color=(200, 50, 50))
    a = render_mask(canvas, POINTS, style)
    b = render_mask(canvas, POINTS, style)
    assert np.array_equal(a, b)
    assert (canvas == 128).all()  # the input is not modified


def test_edges_are_soft_not_binary(canvas):
    out = render_mask(canvas, POINTS, MaskStyle(color=(255, 255, 255), shade=0.0, pleats=False))
    levels = np.unique(out[..., 0])
    assert len(levels) > 10  # anti-aliased and feathered: many intermediate levels


def test_random_styles_vary_and_are_seeded():
    styles = [random_mask_style(np.random.default_rng(s)) for s in range(20)]
    assert len({s.shape for s in styles}) > 1 and len({s.color for s in styles}) > 5
    assert random_glasses_style(np.random.default_rng(3)) == random_glasses_style(np.random.default_rng(3))


def test_mask_sunglasses_renders_both(canvas):
    out = occlude(canvas, POINTS, "mask_sunglasses", np.random.default_rng(0))
    assert _changed(canvas, out, POINTS[0]) and _changed(canvas, out, POINTS[3])


def test_unknown_occlusion_is_refused(canvas):
    with pytest.raises(ValueError, match="unknown occlusion 'hat'"):
        occlude(canvas, POINTS, "hat", np.random.default_rng(0))


def test_face_off_the_canvas_leaves_the_image_unchanged(canvas):
    far = [(x + 1000, y) for x, y in POINTS]
    assert np.array_equal(render_sunglasses(canvas, far, GlassesStyle()), canvas)


def test_a_mask_worn_low_leaves_the_nose_free_and_covers_the_chin(canvas):
    chin = (100, 150)
    mouth_covered = []
    for seed in range(40):
        out = draw(canvas, POINTS, "mask_low", np.random.default_rng(seed))
        assert not _changed(canvas, out, POINTS[2], radius=1), seed  # the nose tip stays in view
        assert _changed(canvas, out, chin), seed
        mouth_covered.append(_changed(canvas, out, (100, 131), radius=0))
    # both ways of wearing it wrongly: under the nose (mouth covered) and down on the chin (mouth free)
    assert 0.5 < np.mean(mouth_covered) < 0.9


def test_a_low_mask_follows_this_faces_nose_not_a_fixed_height():
    long_nose = [*POINTS[:2], (100.0, 118.0), *POINTS[3:]]
    tops = [(low_mask_style(points, np.random.default_rng(1)).top) for points in (POINTS, long_nose)]
    assert tops[1] - tops[0] == pytest.approx((118 - 105) / 50)


def test_an_unknown_render_is_refused(canvas):
    with pytest.raises(ValueError, match="unknown render 'scarf'"):
        draw(canvas, POINTS, "scarf", np.random.default_rng(0))
