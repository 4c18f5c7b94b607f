import numpy as np
from PIL import Image

from faceocc.cropping import CropGeometry, FaceSelection
from faceocc.detection import DetectorConfig, Face, SecondPassConfig
from faceocc.facecrops import SourceImage, detection_summary, run_crop


class FlakyDetector:
    """Finds one face per image, except that any batch holding a bright (value 200) image raises."""

    config = DetectorConfig(device="cpu")

    def detect_batch(self, images, *args, **kwargs):
        if any(im.mean() > 150 for im in images):
            raise RuntimeError("simulated MTCNN failure")
        return [[Face((10, 10, 50, 50), 0.99, ((20, 25), (40, 25), (30, 32), (22, 40), (38, 40)))] for _ in images]

    def detect_second_pass(self, image, config, min_score):
        raise AssertionError("not reached: every decodable image has a face")


def test_a_failing_image_is_recorded_and_its_batch_mates_are_still_cropped(tmp_path):
    items = []
    for i, value in enumerate((100, 200, 100)):
        path = tmp_path / f"{i}.png"
        Image.fromarray(np.full((64, 64, 3), value, np.uint8)).save(path)
        items.append(SourceImage(f"id{i}", "face", path))
    # all three share one batch; it fails, is retried image by image, and only the bright one fails again
    result = run_crop(items, tmp_path / "out", FlakyDetector(), FaceSelection(), CropGeometry(size=32),
                      SecondPassConfig(), batch_size=3)
    outcomes = [r["outcome"] for r in result.outcomes]
    assert outcomes == ["kept", "detect_error: simulated MTCNN failure", "kept"]
    assert len(result.crops) == 2
    assert detection_summary(result.outcomes)["face"]["outcomes"]["detect_error"] == 1


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
