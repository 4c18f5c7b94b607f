"""The detector table's arithmetic: recall by size and precision read at any threshold from one run, the
choice rule, and the stage without its data."""

import json

import yaml

from faceocc import detector_benchmark as bench


def _records():
    truth = [("with_mask", (0, 0, 12, 12)), ("with_mask", (100, 100, 130, 130)), ("without_mask", (200, 0, 260, 60))]
    found = [((0, 0, 12, 12), 0.4),         # the tiny face, weakly
             ((101, 101, 131, 131), 0.9),   # the 30 px face
             ((300, 300, 340, 340), 0.95),  # nobody annotated there
             ((201, 0, 204, 3), 0.99)]      # a 3 px speck over the big face: under the size rule
    return [{"truth": truth, "found": found}]


def test_recall_and_precision_follow_the_threshold_and_the_size_rule():
    low = bench.voc_figures(_records(), 0.3, 10, 0.5, (20, 40))
    assert low["recall"]["all"] == {"found": 2, "boxes": 3, "recall": 0.6667}
    assert low["recall"]["0-20 px"]["found"] == 1 and low["recall"][">= 40 px"]["found"] == 0
    assert low["detections"] == 3 and low["precision"] == 0.6667  # the speck is not reported at all
    high = bench.voc_figures(_records(), 0.5, 10, 0.5, (20, 40))
    assert high["recall"]["with_mask 0-20 px"]["found"] == 0 and high["precision"] == 0.5
    assert bench.voc_figures(_records(), 0.3, 2, 0.5, (20, 40))["detections"] == 4


def test_occlusion_shares_count_a_photo_once_with_any_reportable_face():
    records = [{"label": "masked", "found": [(0.8, 30.0), (0.95, 5.0)], "with_second_pass": True},
               {"label": "masked", "found": [(0.5, 50.0)], "with_second_pass": False},
               {"label": "face", "found": [], "with_second_pass": True}]
    first = bench.occlusion_figures(records, 0.7, 10)
    assert first["masked"] == {"found": 1, "photos": 2, "share": 0.5} and first["all"]["found"] == 1
    assert bench.second_pass_figures(records)["all"]["found"] == 2


def _point(candidate, recall, precision, masked, ms):
    return {"candidate": candidate, "recall_all": recall, "precision": precision, "ms_1_thread": ms,
            "occlusion4_first_pass": {"masked": {"share": masked}}}


def test_the_default_is_the_most_recall_at_the_precision_that_also_finds_masked_photos():
    table = [{"points": [_point("a", 0.80, 0.80, 0.99, 10), _point("b", 0.75, 0.90, 0.90, 10)]},
             {"points": [_point("c", 0.72, 0.87, 0.97, 50), _point("d", 0.72, 0.88, 0.96, 20)]}]
    assert bench.choose(table, 0.85, 0.95)["candidate"] == "d"  # a and b fail a rule; c and d tie, d is faster
    assert bench.choose(table, 0.95, 0.95) is None


def test_the_stage_without_its_data_says_skipped_and_still_writes_every_output(tmp_path):
    from stages import detectors

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"detectors": {"mask_detection": str(tmp_path / "absent")}}))
    out = [tmp_path / name for name in ("d.json", "d.md", "d.png")]
    detectors.main(["--metrics", str(out[0]), "--out", str(out[1]), "--chart", str(out[2]), "--work",
                    str(tmp_path / "work"), "--params", str(params)])
    assert json.loads(out[0].read_text()) == {"skipped": 1} and "Skipped: no " in out[1].read_text()
    assert out[2].stat().st_size > 0 and (tmp_path / "work").is_dir()
