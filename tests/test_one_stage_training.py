"""The one-stage detector's data, training and use: which photos and cells teach it, that the branch learns and
keeps its best val epoch, and that the trained graph (FP32 and INT8) reports faces as `faceocc predict` does."""

import numpy as np
import pytest
import torch

from faceocc.detection_map import AnnotatedPhoto, Detection, found_right
from faceocc.one_stage_data import IGNORE, centre_targets, mirrored, network_input, split_photos
from faceocc.one_stage_training import FeatureSet, class_weights, train_branch

CLASSES = ("with_mask", "without_mask", "mask_weared_incorrect")


def test_a_faces_class_is_taught_at_its_centre_and_middle_cells_and_nowhere_else():
    # a 64 px face centred at (80, 48) at scale 0.5: (40, 24) on a map of 16 px cells, middle half 16 px wide
    target = centre_targets([(48, 16, 112, 80)], [2], 0.5, (4, 6), 16)
    assert target[1, 2] == 2                      # the cell holding the centre (x 32-47, y 16-31)
    taught = np.argwhere(target != IGNORE).tolist()
    assert taught == [[1, 2]]                     # no other cell centre lies within x 32-48, y 16-32
    wide = centre_targets([(0, 0, 192, 128)], [1], 0.5, (4, 6), 16, central=1.0)
    assert (wide == 1).all()                      # every cell centre lies inside a box covering the map
    assert (centre_targets([(0, 0, 192, 128)], [1], 0.5, (4, 6), 16, central=0.0) != IGNORE).sum() == 1


def test_a_small_face_inside_a_large_ones_middle_keeps_its_centre_cell():
    target = centre_targets([(0, 0, 96, 96), (40, 40, 56, 56)], [0, 1], 1.0, (6, 6), 16, central=1.0)
    assert target[3, 3] == 1 and target[0, 0] == 0


def test_the_network_input_is_scaled_to_the_long_side_and_padded_to_multiples_of_32():
    image = np.full((100, 200, 3), 7, np.uint8)
    blob, scale = network_input(image, 320)
    assert scale == pytest.approx(1.6) and blob.shape == (3, 160, 320)
    assert blob[:, :160, :320].min() == 7 and blob.dtype == np.float32
    square, _ = network_input(image, 320, square=True)
    assert square.shape == (3, 320, 320) and square[:, 160:].max() == 0   # black below the photo
    assert mirrored(200, [(10, 5, 50, 45)]) == [(150, 5, 190, 45)]


def _voc(root, name, objects):
    (root / "images").mkdir(exist_ok=True)
    (root / "annotations").mkdir(exist_ok=True)
    (root / "images" / f"{name}.png").write_bytes(b"decoded later")
    (root / "annotations" / f"{name}.xml").write_text(
        f"<annotation><filename>{name}.png</filename><size><width>64</width><height>32</height></size>"
        + "".join(f"<object><name>{n}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax>"
                  f"<ymax>{b[3]}</ymax></bndbox></object>" for n, b in objects) + "</annotation>")
    return str(root / "annotations" / f"{name}.xml")


def test_split_photos_show_annotated_faces_in_their_whole_photo_and_others_in_the_scraped_image(tmp_path):
    xml = _voc(tmp_path, "street", [("mask", (0, 0, 10, 10)), ("no_mask", (20, 0, 30, 10))])
    raw = [{"id": "v0", "origin": f"{xml}#0", "file": "images/v0.png"},
           {"id": "v1", "origin": f"{xml}#1", "file": "images/v1.png"},
           {"id": "p", "origin": "/photos/portrait.jpg", "file": "images/p.png"}]
    split = [{"crop_id": "v0_0", "source_id": "v0", "label": "with_mask", "split": "train"},
             {"crop_id": "v1_0", "source_id": "v1", "label": "without_mask", "split": "val"},
             {"crop_id": "p_0", "source_id": "p", "label": "without_mask", "split": "train"},
             {"crop_id": "p_1", "source_id": "p", "label": "without_mask", "split": "train"},
             {"crop_id": "gone_0", "source_id": "gone", "label": "with_mask", "split": "train"}]
    crops = [{"crop_id": c, "x1": "1", "y1": "2", "x2": "30", "y2": "40"} for c in ("v0_0", "v1_0", "p_0")]
    crops.append({"crop_id": "p_1", "x1": "50", "y1": "2", "x2": "70", "y2": "20"})
    label_of = {"mask": "with_mask", "no_mask": "without_mask"}.get
    photos, problems = split_photos(split, crops, raw, tmp_path / "scrape", "train", CLASSES, label_of)
    assert photos == [
        # the VOC face at its annotated box, in the whole photo; the val face beside it is ignored there
        AnnotatedPhoto(str(tmp_path / "images" / "street.png"), ((0, 0, 10, 10),), ("with_mask",),
                       ((20, 0, 30, 10),)),
        # a portrait's faces where the crop stage found them, with the image's label
        AnnotatedPhoto(str(tmp_path / "scrape" / "images" / "p.png"), ((1.0, 2.0, 30.0, 40.0), (50.0, 2.0, 70.0, 20.0)),
                       ("without_mask", "without_mask"))]
    assert problems == ["gone_0: no crop box or scraped image for it"]


def _separable(n, seed):
    """Features whose channel k is lit at a face's cell exactly when its class is k: a branch can learn it."""
    rng = np.random.default_rng(seed)
    features = rng.normal(0, 0.1, (n, 96, 4, 4)).astype(np.float16)
    targets = np.full((n, 4, 4), IGNORE, np.int64)
    for i in range(n):
        label, row, col = i % 3, rng.integers(4), rng.integers(4)
        features[i, label * 8:(label + 1) * 8, row, col] += 3
        targets[i, row, col] = label
    return FeatureSet(features, targets)


def test_the_branch_learns_a_class_the_features_hold_and_keeps_its_best_val_epoch():
    branch, history = train_branch(_separable(48, 0), _separable(24, 1), CLASSES, epochs=8, batch=8, lr=0.01,
                                   tower_lr=0.001, hidden=16, seed=0)
    assert history[0]["val_macro_f1"] < 1.0                  # one epoch does not get there
    assert max(h["val_macro_f1"] for h in history) == 1.0
    data = _separable(24, 1)
    with torch.no_grad():
        logits = branch(torch.from_numpy(data.features.astype(np.float32)))
    taught = data.targets != IGNORE
    # the branch returned is the best epoch's, whatever the last one scored
    assert (logits.argmax(1).numpy()[taught] == data.targets[taught]).mean() == 1.0


def test_a_frozen_tower_stays_centerfaces_and_the_head_still_learns():
    from faceocc.one_stage import class_branch

    branch, history = train_branch(_separable(48, 0), _separable(24, 1), CLASSES, epochs=4, batch=8, lr=0.01,
                                   tower_lr=0.0, hidden=16, seed=0)
    original = class_branch(len(CLASSES), 16, seed=0).tower.state_dict()
    assert all(torch.equal(v, original[k]) for k, v in branch.tower.state_dict().items())
    assert max(h["val_macro_f1"] for h in history) == 1.0


def test_a_rare_class_weighs_as_much_as_a_common_one():
    targets = np.array([[0, 0, 0, 1, IGNORE, IGNORE]])
    weights = class_weights(targets, 3)
    assert weights[1] == pytest.approx(3 * weights[0]) and weights[2] == 0   # absent: no weight


def test_found_right_counts_each_face_once_at_the_overlap_given():
    photos = [AnnotatedPhoto("a", ((0, 0, 10, 10), (20, 0, 30, 10)), ("with_mask", "without_mask"))]
    detections = [[Detection((0, 0, 10, 10), "with_mask", 0.9), Detection((1, 0, 11, 10), "with_mask", 0.8),
                   Detection((21, 0, 31, 10), "with_mask", 0.7)]]
    result = found_right(photos, detections, CLASSES)
    assert (result["faces"], result["found"], result["right"]) == (2, 2, 1)
    assert result["per_class"] == {"with_mask": {"faces": 1, "found": 1, "right": 1},
                                   "without_mask": {"faces": 1, "found": 1, "right": 0}}
    assert found_right(photos, detections, CLASSES, iou=0.9)["found"] == 1   # the shifted box overlaps 0.82


@pytest.fixture(scope="module")
def one_stage_folders(tmp_path_factory, astronaut):
    """An (untrained) one-stage model folder as detect_train writes it, and its INT8 as detect_quantize does."""
    import onnx

    from faceocc.one_stage import class_branch, one_stage_graph
    from faceocc.one_stage_model import GRAPH_FILE, OneStageCard, quantize

    fp32, int8 = tmp_path_factory.mktemp("fp32"), tmp_path_factory.mktemp("int8")
    onnx.save(one_stage_graph(class_branch(len(CLASSES), 16, seed=1)), str(fp32 / GRAPH_FILE))
    OneStageCard("mask_wearing", CLASSES, side=320, threshold=0.5, min_face=10).write(fp32)
    quantize(fp32, int8, [network_input(astronaut, 320)[0]], per_channel=True, activations="QUInt8")
    return fp32, int8


def test_the_one_stage_detector_reports_centerfaces_faces_in_photo_pixels_with_a_class(one_stage_folders, astronaut):
    from faceocc.detectors.centerface import CenterFaceDetector
    from faceocc.one_stage_data import fit_long_side
    from faceocc.one_stage_model import OneStageDetector

    records = OneStageDetector(one_stage_folders[0], threads=1).predict_image(astronaut, "a.png")
    scaled, scale = fit_long_side(astronaut, 320)
    expected = CenterFaceDetector(threads=1).detect_batch([scaled], 0.5)[0]
    assert len(records) == len(expected) == 1
    assert np.allclose(records[0]["box"], np.array(expected[0].box) / scale, atol=0.1)
    assert records[0]["detection_score"] == pytest.approx(expected[0].score, abs=1e-4)
    assert records[0]["label"] in CLASSES and sum(records[0]["scores"].values()) == pytest.approx(1, abs=1e-3)
    assert records[0]["label"] == max(records[0]["scores"], key=records[0]["scores"].get)
    assert len(records[0]["landmarks"]) == 5


def test_the_int8_graph_finds_the_same_face_and_a_faceless_photo_has_none(one_stage_folders, astronaut, faceless):
    from faceocc.one_stage_model import OneStageCard, OneStageDetector
    from faceocc.voc import matched_pairs

    fp32 = OneStageDetector(one_stage_folders[0], threads=1).predict_image(astronaut, "a.png")
    int8 = OneStageDetector(one_stage_folders[1], threads=1)
    found = int8.predict_image(astronaut, "a.png")
    card = OneStageCard.read(one_stage_folders[1])
    assert card.variant == "int8" and card.info["reduce_range"] is True  # 7-bit weights: exact without VNNI too
    assert len(found) == 1 and matched_pairs(np.array([fp32[0]["box"]]), np.array([found[0]["box"]]), 0.8)
    assert int8.predict_image(faceless, "coffee.png") == [{"path": "coffee.png", "label": None, "reason": "no_face"}]


def test_an_8_bit_one_stage_graph_warns_on_a_cpu_without_vnni_naming_detect_quantize(one_stage_folders, tmp_path,
                                                                                      monkeypatch, caplog):
    import dataclasses
    import logging
    import shutil

    from faceocc import int8_cpu
    from faceocc.one_stage_model import OneStageCard, OneStageDetector

    eight_bit = tmp_path / "eight_bit"
    shutil.copytree(one_stage_folders[1], eight_bit)
    card = OneStageCard.read(eight_bit)
    dataclasses.replace(card, info={**card.info, "reduce_range": False}).write(eight_bit)
    monkeypatch.setattr(int8_cpu, "saturates", lambda *a, **k: True)
    with caplog.at_level(logging.WARNING, logger="faceocc.one_stage"):
        OneStageDetector(one_stage_folders[1], threads=1)
        assert not caplog.records  # the stage's default, 7-bit weights, is exact here
        OneStageDetector(eight_bit, threads=1)
    assert len(caplog.records) == 1
    assert str(eight_bit) in caplog.text and "detect_quantize.reduce_range true" in caplog.text


def test_faceocc_predict_and_score_run_a_one_stage_model_and_refuse_what_it_cannot_do(one_stage_folders, astronaut,
                                                                                      tmp_path, capsys):
    import json

    from faceocc import cli
    from faceocc.images import encode_png

    (tmp_path / "with_mask").mkdir()
    (tmp_path / "with_mask" / "a.png").write_bytes(encode_png(astronaut))
    folder = str(one_stage_folders[1])
    assert cli.main(["predict", str(tmp_path / "with_mask"), "--detector", "one-stage", "--model", folder,
                     "--annotate", str(tmp_path / "drawn")]) == cli.EXIT_OK
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(records) == 1 and records[0]["label"] in CLASSES and len(records[0]["box"]) == 4
    assert (tmp_path / "drawn" / "a.png").is_file()
    out = tmp_path / "score.json"
    assert cli.main(["score", str(tmp_path), "--detector", "one-stage", "--model", folder, "--json",
                     str(out)]) == cli.EXIT_OK
    result = json.loads(out.read_text())
    assert result["found"] == 1 and result["finder"]["detector"] == "one-stage"
    for argv, says in ((["predict", "a.png", "--crops"], "--crops"),
                       (["predict", "a.png", "--model", str(tmp_path)], f"no one-stage model at {tmp_path}"),
                       (["predict", "a.png", "--task", "occlusion4"], "not one for --task occlusion4")):
        model = [] if "--model" in argv else ["--model", folder]
        assert cli.main([*argv, "--detector", "one-stage", *model]) == cli.EXIT_REFUSED
        assert says in capsys.readouterr().err


def test_faceocc_video_runs_a_one_stage_model_on_every_frame_and_keeps_the_face_on_one_track(one_stage_folders,
                                                                                             astronaut, tmp_path,
                                                                                             capsys):
    import json

    import cv2

    from faceocc import cli

    clip, size = tmp_path / "walk.mp4", (480, 360)
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10, size)
    face = cv2.resize(astronaut, (220, 220))
    for i in range(8):  # the face slides right, 20 px a frame
        frame = np.full((size[1], size[0], 3), 90, np.uint8)
        frame[70:290, 20 + 20 * i: 240 + 20 * i] = face
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    out, lines = tmp_path / "annotated.mp4", tmp_path / "frames.jsonl"
    assert cli.main(["video", str(clip), "--detector", "one-stage", "--model", str(one_stage_folders[1]),
                     "--out", str(out), "--jsonl", str(lines), "--detect-every", "4"]) == cli.EXIT_OK
    frames = [json.loads(line) for line in lines.read_text().splitlines()]
    assert [f["frame"] for f in frames] == list(range(8))
    assert all(len(f["faces"]) == 1 for f in frames)  # found on every frame, not every 4th
    assert {f["faces"][0]["track"] for f in frames} == {0}
    lefts = [f["faces"][0]["box"][0] for f in frames]
    assert all(b > a for a, b in zip(lefts, lefts[1:]))  # each frame's own box, not one carried forward
    assert all(f["faces"][0]["label"] in CLASSES for f in frames)
    summary = json.loads(capsys.readouterr().err.strip().splitlines()[-1].split("faceocc video: ", 1)[1])
    assert summary["frames"] == 8 and summary["faces"] == 8 and summary["output"] == str(out)
    assert cv2.VideoCapture(str(out)).get(cv2.CAP_PROP_FRAME_COUNT) == 8


def test_the_video_benchmark_times_the_one_stage_model_in_the_same_loop_as_the_two_stage_one(one_stage_folders,
                                                                                            tmp_path):
    from conftest import write_untrained_model

    from faceocc.classifier import Classifier
    from faceocc.inference import FacePredictor
    from faceocc.one_stage_model import OneStagePredictor
    from faceocc.video_benchmark import VideoBenchmarkParams, benchmark

    model = write_untrained_model(tmp_path, ("face", "masked", "sunglasses", "mask_sunglasses"))
    params = VideoBenchmarkParams(frames=6, width=480, height=360, faces=("face",), face_px=200, detect_every=(3,),
                                  threads=1)
    figures, picture = benchmark(params, FacePredictor(Classifier.load(model), threads=1),
                                 OneStagePredictor(one_stage_folders[1], threads=1))
    assert [(r["detect_every"], r["frames"]) for r in figures["runs"]] == [(3, 6)]
    one_stage = figures["one_stage"]
    assert one_stage["frames"] == 6 and one_stage["side"] == 320
    assert one_stage["frames_with_all_faces"] == 6 and one_stage["fps"] > 0
    assert set(one_stage["per_class"]) <= set(CLASSES)
    assert picture is not None and picture.shape == (360, 480, 3)


def _detect_outputs(workspace, int8_folder):
    """A workspace as the detect_* stages leave it: the INT8 model, detect_train's record, detect_evaluate's."""
    import json
    import shutil

    shutil.copytree(int8_folder, workspace / "models" / "one_stage" / "int8")
    (workspace / "reports" / "detect" / "eval").mkdir(parents=True)
    (workspace / "reports" / "detect" / "train.json").write_text(json.dumps(
        {"best_epoch": 9, "epochs": [{"epoch": e} for e in range(1, 11)], "train_views": 1512,
         "val_accuracy": 0.81, "val_macro_f1": 0.6904, "val_photos": 161}))
    per_class = {c: {"faces": n, "found": n - 1, "right": n - 2} for c, n in zip(CLASSES, (200, 120, 33))}
    figures = {"photos": 146, "faces": 353, "detections": 400, "map50": 0.4431, "map50_95": 0.1821,
               "map50_by_size": {"large": 0.6},
               "found_right": {"faces": 353, "found": 350, "right": 347, "iou": 0.5, "per_class": per_class},
               "per_class": {c: {"ap50": 0.5, "ap50_95": 0.2, "faces": n} for c, n in zip(CLASSES, (200, 120, 33))}}
    (workspace / "reports" / "detect" / "eval" / "record.json").write_text(json.dumps(
        {"task": "mask_wearing", "side": 320, "threshold": 0.5, "min_score": 0.1, "threads": 1,
         "size_mb": {"fp32": 13.6, "int8": 3.9}, "splits": {"test": {"fp32": figures, "int8": figures}},
         "int8_against_fp32": {"test": {"faces": 350, "found": 349, "same_label": 340}}}))
    (workspace / "reports" / "detect" / "eval" / "report.md").write_text("# One-stage detector (mask_wearing)\n")


def test_a_release_writes_the_one_stage_model_that_faceocc_loads_with_its_figures(one_stage_folders, astronaut,
                                                                                   tmp_path):
    import json

    from faceocc.one_stage_model import OneStagePredictor
    from tools.one_stage_release import one_stage_record, write_one_stage_release

    workspace, out = tmp_path / "ws", tmp_path / "models" / "release_one_stage_mask_wearing"
    with pytest.raises(FileNotFoundError, match="no one-stage model made there .*one_stage.json"):
        one_stage_record(workspace, {})
    _detect_outputs(workspace, one_stage_folders[1])
    record = one_stage_record(workspace, {"faceocc_version": "0.1.0", "date": "2026-12-03", "commit": "abc123"})
    write_one_stage_release(workspace, record, out, "models/release_mask_wearing")
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "model.onnx", "one_stage.json", "release.json",
                                                     "report.md"]
    predictor = OneStagePredictor(out, task="mask_wearing", threads=1)
    assert predictor.predict_image(astronaut, "a.png")[0]["label"] in CLASSES
    assert json.loads((out / "release.json").read_text())["training"] == {
        "best_epoch": 9, "val_macro_f1": 0.6904, "val_accuracy": 0.81, "val_photos": 161, "train_views": 1512,
        "epochs_run": 10}
    readme = (out / "README.md").read_text()
    assert "`faceocc predict --task mask_wearing --detector one-stage PHOTO...`" in readme
    assert "| test | 146 | 353 | 0.443 | 0.182 | 350 / 347 |" in readme
    assert "| mask_weared_incorrect | 0.500 | 32 / 31 of 33 |" in readme
    assert "the best val epoch, 9 of 10, at val macro-F1 0.690 over 161 val photos" in readme
    assert "of FP32's 350 faces INT8 finds 349, 340 with the same label" in readme


def test_the_exported_graph_is_checked_against_the_branch_it_was_made_from(astronaut):
    from faceocc.one_stage import class_branch, one_stage_graph
    from faceocc.one_stage_training import backbone_session, export_parity

    branch, session = class_branch(len(CLASSES), 16, seed=1), backbone_session(1)
    blobs = [network_input(astronaut, 320)[0]]
    same = export_parity(one_stage_graph(branch), branch, session, blobs)
    assert same["photos"] == 1 and same["max_abs_probability_diff"] < 1e-4 and same["cell_top1_agreement"] == 1.0
    # a graph exported from another branch (what a broken export would hand on) is told apart
    other = export_parity(one_stage_graph(class_branch(len(CLASSES), 16, seed=2)), branch, session, blobs)
    assert other["max_abs_probability_diff"] > 1e-2 and other["cell_top1_agreement"] < 1.0


def test_parity_runs_on_the_first_readable_photos_as_the_detector_feeds_them(tmp_path, astronaut):
    from faceocc.images import encode_png
    from faceocc.one_stage_training import parity_inputs

    (tmp_path / "bad.png").write_bytes(b"not a picture")
    (tmp_path / "a.png").write_bytes(encode_png(astronaut[:200]))  # 200 x 512: not square
    photos = [AnnotatedPhoto(str(tmp_path / name), (), ()) for name in ("bad.png", "a.png", "a.png", "a.png")]
    blobs = parity_inputs(photos, 320, 2)
    assert len(blobs) == 2 and blobs[0].shape == (3, 128, 320)  # long side 320, padded to multiples of 32
