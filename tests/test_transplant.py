"""Moving a real occluder from one face onto another (faceocc/transplant.py) and the balance recipes that do it."""

import cv2
import numpy as np
import pytest

from faceocc.balancing import SyntheticRecipe
from faceocc.config import ConfigError
from faceocc.train_set import BalanceParams, SyntheticParams, check_recipes, make_synthetic
from faceocc.images import encode_png, load_rgb
from faceocc.transplant import region, transplant

# 5 landmarks (left eye, right eye, nose, mouth left, mouth right) of an upright face in a 112 px crop
TARGET_POINTS = np.array([[38.0, 48.0], [74.0, 48.0], [56.0, 66.0], [42.0, 82.0], [70.0, 82.0]])
CLASSES = ("face", "masked", "sunglasses", "mask_sunglasses")


def _skin(side: int, tone: tuple[int, int, int]) -> np.ndarray:
    ramp = np.linspace(-12, 12, side)[None, :, None]  # a little light fall-off, as on a real face
    return np.clip(np.full((side, side, 3), tone, float) + ramp, 0, 255).astype(np.uint8)


def _donor_with_sunglasses(angle_deg: float = 15.0, scale: float = 1.4) -> tuple[np.ndarray, np.ndarray]:
    """A larger, turned face whose eyes are behind black lenses."""
    side = 160
    matrix = cv2.getRotationMatrix2D((56.0, 56.0), angle_deg, scale)
    matrix[:, 2] += [24.0, 24.0]
    points = cv2.transform(TARGET_POINTS[None], matrix)[0]
    image = _skin(side, (170, 130, 110))
    eye_distance = float(np.linalg.norm(points[1] - points[0]))
    for eye in points[:2]:
        cv2.circle(image, tuple(int(v) for v in np.round(eye)), int(0.35 * eye_distance), (15, 15, 20), -1)
    return image, points


def test_the_sunglasses_region_covers_both_eyes_and_the_mask_region_the_nose_and_mouth_but_not_the_eyes():
    glasses = region(TARGET_POINTS, "sunglasses", (112, 112))
    mask = region(TARGET_POINTS, "masked", (112, 112))
    at = lambda m, p: m[int(p[1]), int(p[0])]  # noqa: E731
    assert at(glasses, TARGET_POINTS[0]) == at(glasses, TARGET_POINTS[1]) == 255
    assert at(glasses, TARGET_POINTS[3]) == 0 and at(glasses, [56, 100]) == 0
    assert all(at(mask, p) == 255 for p in TARGET_POINTS[2:]) and at(mask, [56, 100]) == 255
    assert at(mask, TARGET_POINTS[0]) == at(mask, TARGET_POINTS[1]) == 0
    with pytest.raises(ValueError, match="cannot transplant 'mask_low'"):
        region(TARGET_POINTS, "mask_low", (112, 112))


def test_sunglasses_moved_from_a_turned_larger_face_land_dark_on_the_targets_eyes_and_nothing_else_changes():
    target = _skin(112, (205, 160, 140))
    donor, donor_points = _donor_with_sunglasses()
    out = transplant(target, TARGET_POINTS, donor, donor_points, "sunglasses")
    assert out.shape == target.shape and out.dtype == np.uint8
    for eye in TARGET_POINTS[:2].astype(int):
        assert out[eye[1], eye[0]].mean() < 80  # a lens, where the target had skin (~170)
    # the edge is soft (a few pixels) and nothing further out changes
    outside = cv2.dilate(region(TARGET_POINTS, "sunglasses", (112, 112)), np.ones((15, 15), np.uint8)) == 0
    assert np.array_equal(out[outside], target[outside])
    # the lenses are lit as the target is: the rim of the region matches the target's skin, not the donor's
    glasses = region(TARGET_POINTS, "sunglasses", (112, 112))
    rim = (glasses > 0) & (cv2.erode(glasses, np.ones((5, 5), np.uint8)) == 0)
    assert abs(float(out[rim].mean()) - float(target[rim].mean())) < 6
    assert np.array_equal(out, transplant(target, TARGET_POINTS, donor, donor_points, "sunglasses"))


def test_a_donor_that_covers_none_of_the_region_leaves_the_target_as_it_was():
    target = _skin(112, (205, 160, 140))
    donor, donor_points = _donor_with_sunglasses()
    far = donor_points + [400.0, 400.0]  # the donor's face lies far outside its own image
    out = transplant(target, TARGET_POINTS, donor, far, "sunglasses")
    assert np.array_equal(out, target)


def _write_face(folder, name: str, image: np.ndarray) -> str:
    (folder / f"{name}.png").write_bytes(encode_png(image))
    return f"{name}.png"


def test_a_donor_recipe_moves_real_sunglasses_from_train_faces_in_turn_and_names_itself_apart(tmp_path):
    faces, out = tmp_path / "faces", tmp_path / "out"
    faces.mkdir()
    donor, donor_points = _donor_with_sunglasses()
    originals, landmarks = [], {}
    for k in range(3):
        originals.append({"id": f"m{k}", "label": "masked", "kind": "original", "root": "crop",
                          "file": _write_face(faces, f"m{k}", _skin(112, (200, 150 + 10 * k, 130))),
                          "origin": f"m{k}", "recipe": ""})
        landmarks[f"m{k}"] = TARGET_POINTS
    for k in range(2):
        originals.append({"id": f"s{k}", "label": "sunglasses", "kind": "original", "root": "crop",
                          "file": _write_face(faces, f"s{k}", donor), "origin": f"s{k}", "recipe": ""})
        landmarks[f"s{k}"] = donor_points
    recipe = SyntheticRecipe("mask_sunglasses", "masked", "sunglasses", 3, donor="sunglasses")
    params = BalanceParams(synthetic=SyntheticParams(recipes=(recipe,)))
    made = make_synthetic(params, originals, landmarks, landmarks, faces, out)
    assert [m["recipe"] for m in made] == ["sunglasses_from_sunglasses_on_masked"] * 3
    assert sorted(m["origin"] for m in made) == ["m0", "m1", "m2"]
    for item in made:
        image = load_rgb(out / item["file"])
        eye = TARGET_POINTS[0].astype(int)
        assert image[eye[1], eye[0]].mean() < 80
    assert SyntheticRecipe("mask_sunglasses", "masked", "sunglasses", 3).tag == "sunglasses_on_masked"


def test_a_donor_outside_the_task_or_a_render_that_cannot_be_moved_is_refused():
    bad_donor = SyntheticRecipe("mask_sunglasses", "masked", "sunglasses", 3, donor="hat")
    with pytest.raises(ConfigError, match="donor class outside"):
        check_recipes(BalanceParams(synthetic=SyntheticParams(recipes=(bad_donor,))), CLASSES)
    low = SyntheticRecipe("mask_sunglasses", "masked", "mask_low", 3, donor="masked")
    with pytest.raises(ConfigError, match="a donor can lend"):
        check_recipes(BalanceParams(synthetic=SyntheticParams(recipes=(low,))), CLASSES)


def test_a_moved_mask_keeps_its_own_colour_and_follows_the_targets_mouth():
    target = _skin(112, (205, 160, 140))
    matrix = cv2.getRotationMatrix2D((56.0, 56.0), -10.0, 0.8)
    donor_points = cv2.transform(TARGET_POINTS[None], matrix)[0]
    donor = _skin(112, (120, 90, 70))
    mask_colour = (60, 110, 200)
    cv2.fillPoly(donor, [np.round(cv2.transform(np.array([[[20.0, 58.0], [92.0, 58.0], [84.0, 112.0],
                                                            [28.0, 112.0]]]), matrix)[0]).astype(np.int32)],
                 mask_colour)
    out = transplant(target, TARGET_POINTS, donor, donor_points, "masked")
    for point in [*TARGET_POINTS[3:].astype(int), (56, 95)]:  # mouth corners and chin: under the mask, unlit
        assert np.abs(out[point[1], point[0]].astype(int) - mask_colour).max() <= 3
    eye = TARGET_POINTS[0].astype(int)
    assert np.array_equal(out[eye[1], eye[0]], target[eye[1], eye[0]])
