import numpy as np
from PIL import Image

from faceocc.cropping import CropGeometry
from faceocc.faces import Face
from faceocc.batch_cropping import SourceImage, detection_summary, keep_faces, run_crop
from faceocc.finder import FaceFinder, FinderSettings


class FlakyDetector:
    """Finds one face per image, except that any batch holding a bright (value 200) image raises."""

    name = "flaky"

    def detect_batch(self, images, floor, relaxed=False):
        if relaxed:
            raise AssertionError("not reached: every decodable image has a face")
        if any(im.mean() > 150 for im in images):
            raise RuntimeError("simulated detector failure")
        return [[Face((10, 10, 50, 50), 0.99, ((20, 25), (40, 25), (30, 32), (22, 40), (38, 40)))] for _ in images]


def test_a_failing_image_is_recorded_and_its_batch_mates_are_still_cropped(tmp_path):
    items = []
    for i, value in enumerate((100, 200, 100)):
        path = tmp_path / f"{i}.png"
        Image.fromarray(np.full((64, 64, 3), value, np.uint8)).save(path)
        items.append(SourceImage(f"id{i}", "face", path))
    # all three share one batch; it fails, is retried image by image, and only the bright one fails again
    finder = FaceFinder(FinderSettings(), detector=FlakyDetector())
    result = run_crop(items, tmp_path / "out", finder, "largest", CropGeometry(size=32), batch_size=3)
    outcomes = [r["outcome"] for r in result.outcomes]
    assert outcomes == ["kept", "detect_error: simulated detector failure", "kept"]
    assert len(result.crops) == 2
    assert detection_summary(result.outcomes)["face"]["outcomes"]["detect_error"] == 1


def test_annotated_boxes_are_cut_without_detection_but_still_meet_the_size_rule(tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(path)  # the flaky detector would fail on it
    big = Face((5, 5, 45, 45), 1.0, ((15, 20), (35, 20), (25, 27), (17, 35), (33, 35)), 0, "template")
    tiny = Face((50, 50, 56, 56), 1.0, big.landmarks, 0, "template")
    items = [SourceImage("a", "masked", path, annotated=(big,)), SourceImage("b", "masked", path, annotated=(tiny,))]
    finder = FaceFinder(FinderSettings(min_face_px=10), detector=FlakyDetector())
    result = run_crop(items, tmp_path / "out", finder, "all", CropGeometry(size=32), batch_size=2)
    assert [(r["outcome"], r["found_in_pass"]) for r in result.outcomes] == [("kept", "annotation"),
                                                                              ("too_small", "annotation")]


def test_largest_keeps_the_face_a_photo_label_describes_and_all_keeps_every_one():
    small = Face((0, 0, 40, 40), 0.99, ((0, 0),) * 5)
    large = Face((100, 100, 200, 200), 0.95, ((0, 0),) * 5)
    assert keep_faces((small, large), "largest") == (large,)
    assert keep_faces((small, large), "all") == (small, large)
    assert keep_faces((), "largest") == ()


def test_detection_rates_count_too_small_faces_as_found():
    rows = [
        {"label": "masked", "outcome": "kept", "found_in_pass": 1, "faces_kept": 1},
        {"label": "masked", "outcome": "kept", "found_in_pass": 2, "faces_kept": 1},
        {"label": "masked", "outcome": "too_small", "found_in_pass": 1, "faces_kept": 0},
        {"label": "masked", "outcome": "no_face", "found_in_pass": "", "faces_kept": 0},
        {"label": "masked", "outcome": "decode_error: empty file", "found_in_pass": "", "faces_kept": 0},
    ]
    masked = detection_summary(rows)["masked"]
    assert masked["detection_rate_first_pass"] == 0.5  # 2 of 4 decodable
    assert masked["detection_rate_after_second_pass"] == 0.75
    assert masked["faces_kept"] == 2 and masked["images"] == 5
