"""The `faceocc` command: predict's JSON lines, sort's folders and decisions, and bad inputs that never stop a run."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re

import numpy as np
import pytest
from conftest import write_untrained_model

from faceocc import cli, inference
from faceocc.classifier import CARD_FILE
from faceocc.images import encode_png

CLASSES = ("face", "masked", "sunglasses", "mask_sunglasses")
FACE_KEYS = {"path", "box", "detection_score", "landmarks", "label", "scores"}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return write_untrained_model(tmp_path_factory.mktemp("model"), CLASSES)


@pytest.fixture
def photos(tmp_path, astronaut, faceless):
    """A tree with a face, a scene without one, and the bad files a real folder holds."""
    root = tmp_path / "my photos"
    (root / "sub dir").mkdir(parents=True)
    (root / "astronaut ü.png").write_bytes(encode_png(astronaut))
    (root / "sub dir" / "coffee.png").write_bytes(encode_png(faceless))
    (root / "empty.jpg").write_bytes(b"")
    (root / "notes.png").write_text("not a picture")
    (root / "cut.png").write_bytes(encode_png(astronaut)[:3000])
    (root / "readme.txt").write_text("a text file: read, by its content, and refused")
    return root


def _digests(root):
    return {p.relative_to(root): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}


def test_predict_writes_one_json_line_per_face_and_a_reason_per_bad_file(photos, model_dir, tmp_path, capsys):
    out, annotated = tmp_path / "faces.jsonl", tmp_path / "boxed"
    rc = cli.main(["predict", str(photos), "--model", str(model_dir), "--jsonl", str(out), "--annotate",
                   str(annotated)])
    assert rc == cli.EXIT_INPUT_FAILED
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    by_name = {}
    for line in lines:
        by_name.setdefault(line["path"].split("/")[-1], []).append(line)
    assert sorted(by_name) == ["astronaut ü.png", "coffee.png", "cut.png", "empty.jpg", "notes.png", "readme.txt"]

    (face,) = by_name["astronaut ü.png"]
    assert set(face) == FACE_KEYS and face["label"] in CLASSES
    x1, y1, x2, y2 = face["box"]
    assert 0 <= x1 < x2 <= 512 and 0 <= y1 < y2 <= 512 and face["detection_score"] > 0.9
    assert len(face["landmarks"]) == 5 and all(len(p) == 2 for p in face["landmarks"])
    assert set(face["scores"]) == set(CLASSES) and abs(sum(face["scores"].values()) - 1) < 1e-3
    assert face["scores"][face["label"]] == max(face["scores"].values())

    assert by_name["coffee.png"] == [{"path": str(photos / "sub dir" / "coffee.png"), "label": None,
                                      "reason": "no_face"}]
    assert by_name["empty.jpg"][0]["reason"] == "empty file"
    assert by_name["notes.png"][0]["reason"].startswith("not an image")
    assert by_name["cut.png"][0]["reason"].startswith("corrupt image")

    assert sorted(p.relative_to(annotated).as_posix() for p in annotated.rglob("*.png")) == [
        "astronaut ü.png", "sub dir/coffee.png"]  # readable photos only, the input tree mirrored
    err = capsys.readouterr().err
    summary = json.loads(err.strip().splitlines()[-1].split("faceocc predict: ", 1)[1])
    assert summary["images"] == 6 and summary["faces"] == 1 and summary["unreadable"] == 4
    assert summary["no_face"] == 1 and "empty.jpg: empty file" in err


def test_predict_crops_mode_classifies_whole_files_without_detecting(model_dir, tmp_path, capsys):
    crop = tmp_path / "crop.png"
    crop.write_bytes(encode_png(np.full((112, 112, 3), 128, np.uint8)))  # no face MTCNN could find in it
    cli.main(["predict", str(tmp_path / "*.png"), "--crops", "--model", str(model_dir)])
    (line,) = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert line["box"] == [0.0, 0.0, 112.0, 112.0] and line["detection_score"] is None
    assert line["landmarks"] is None and line["label"] in CLASSES


def test_a_path_that_matches_nothing_is_reported_not_skipped(model_dir, tmp_path, capsys):
    assert cli.main(["predict", str(tmp_path / "missing.jpg"), "--model", str(model_dir)]) == cli.EXIT_INPUT_FAILED
    (line,) = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert line["label"] is None and line["reason"] == "no such file or folder"


def test_sort_dry_run_writes_nothing_and_prints_the_decisions(photos, model_dir, tmp_path, capsys):
    before = _digests(photos)
    cli.main(["sort", str(photos), str(tmp_path / "sorted"), "--model", str(model_dir), "--dry-run"])
    assert not (tmp_path / "sorted").exists() and _digests(photos) == before
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    actions = {r["source"].split("/")[-1]: r for r in rows}
    assert actions["coffee.png"]["destination"].endswith("sorted/no_face/sub dir__coffee.png")
    assert actions["empty.jpg"]["action"] == "skipped" and actions["empty.jpg"]["reason"] == "empty file"
    assert actions["astronaut ü.png"]["action"] == "dry-run"


def test_sort_copies_into_class_folders_and_leaves_originals_untouched(photos, model_dir, tmp_path):
    before = _digests(photos)
    dst = tmp_path / "sorted"
    cli.main(["sort", str(photos), str(dst), "--model", str(model_dir)])
    assert _digests(photos) == before
    placed = sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*.png"))
    label = next(r for r in csv.DictReader(open(dst / "decisions.csv", encoding="utf-8"))
                 if r["source"].endswith("astronaut ü.png"))["labels"]
    assert placed == sorted([f"{label}/astronaut ü.png", "no_face/sub dir__coffee.png"])
    assert (dst / label / "astronaut ü.png").read_bytes() == (photos / "astronaut ü.png").read_bytes()
    rows = list(csv.DictReader(open(dst / "decisions.csv", encoding="utf-8")))
    assert sorted(r["action"] for r in rows) == ["copied", "copied"] + ["skipped"] * 4

    cli.main(["sort", str(photos), str(dst), "--model", str(model_dir), "--link"])  # a second run never overwrites
    assert (dst / label / "astronaut ü_2.png").stat().st_ino == (photos / "astronaut ü.png").stat().st_ino
    assert _digests(photos) == before


def test_sort_refuses_a_destination_inside_the_source(photos, model_dir, capsys):
    assert cli.main(["sort", str(photos), str(photos / "sorted"), "--model", str(model_dir)]) == cli.EXIT_REFUSED
    assert "must not be inside" in capsys.readouterr().err


@pytest.mark.parametrize("policy, labels, expected", [
    ("largest", ["masked", "face"], ["masked"]),
    ("any", ["masked", "face", "masked"], ["face", "masked"]),
    ("all", ["masked", "masked"], ["masked"]),
    ("all", ["masked", "face"], ["mixed"]),
    ("any", [], ["no_face"]),
])
def test_sort_policies(policy, labels, expected):
    records = [{"label": x} for x in labels] or [{"label": None, "reason": "no_face"}]
    assert cli.destinations(records, policy) == expected


def test_a_missing_default_model_says_what_to_pass(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(inference, "REPO", tmp_path)
    assert cli.main(["predict", str(tmp_path)]) == cli.EXIT_REFUSED
    assert "pass --model DIR" in capsys.readouterr().err


def test_a_broken_model_directory_is_one_line_not_a_traceback(tmp_path, capsys):
    (tmp_path / "m").mkdir()
    assert cli.main(["predict", str(tmp_path), "--model", str(tmp_path / "m")]) == cli.EXIT_REFUSED
    (line,) = capsys.readouterr().err.splitlines()
    assert re.fullmatch(r"faceocc: .*m/card.json: missing.*", line)


def _clip(path, portrait, frames=12, size=(320, 240), fps=10):
    """A short video of a face sliding across a grey frame, written with OpenCV's mp4v encoder."""
    import cv2

    face = cv2.resize(portrait, (180, 180))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for i in range(frames):
        frame = np.full((size[1], size[0], 3), 90, np.uint8)
        x = 10 + i * (size[0] - 200) // max(1, frames - 1)
        frame[30:210, x : x + 180] = face
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def _count_frames(path) -> int:
    import cv2

    capture, n = cv2.VideoCapture(str(path)), 0
    while capture.read()[0]:
        n += 1
    return n


def test_video_writes_an_annotated_frame_and_a_json_line_per_input_frame(astronaut, model_dir, tmp_path, capsys):
    clip = _clip(tmp_path / "walk by.mp4", astronaut)
    out, lines = tmp_path / "annotated.mp4", tmp_path / "frames.jsonl"
    assert cli.main(["video", str(clip), "--out", str(out), "--jsonl", str(lines), "--model", str(model_dir),
                     "--detect-every", "3"]) == 0
    assert _count_frames(out) == _count_frames(clip) == 12
    records = [json.loads(x) for x in lines.read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(12))
    tracked = [r["faces"] for r in records if r["faces"]]
    assert len(tracked) >= 10 and all(f["label"] in CLASSES and f["track"] == 0 for fs in tracked for f in fs)
    summary = json.loads(capsys.readouterr().err.strip().splitlines()[-1].split("faceocc video: ", 1)[1])
    assert summary["frames"] == 12 and summary["faces"] == sum(len(r["faces"]) for r in records)
    assert sum(summary["per_class"].values()) == summary["faces"] and summary["fps"] > 0


def test_broken_videos_are_one_line_each_and_the_good_one_still_runs(astronaut, model_dir, tmp_path, capsys):
    good = _clip(tmp_path / "good.mp4", astronaut, frames=6)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 3])
    empty, text = tmp_path / "empty.mp4", tmp_path / "notes.mp4"
    empty.write_bytes(b"")
    text.write_text("not a video")
    rc = cli.main(["video", str(cut), str(empty), str(good), str(text), "--model", str(model_dir)])
    err = capsys.readouterr().err
    summaries = {json.loads(x.split("faceocc video: ", 1)[1])["video"].split("/")[-1]:
                 json.loads(x.split("faceocc video: ", 1)[1]) for x in err.splitlines() if "faceocc video: " in x}
    assert rc == 1 and summaries["good.mp4"]["frames"] == 6 and "error" not in summaries["good.mp4"]
    for bad in ("cut.mp4", "empty.mp4", "notes.mp4"):
        assert "error" in summaries[bad], summaries[bad]
        assert f"{bad}: " in err


def test_tracks_keep_their_id_move_between_detections_and_expire():
    from faceocc.faces import Face
    from faceocc.video import FaceTracker, VideoSettings

    def face(x):
        return Face(box=(x, 10.0, x + 50.0, 60.0), score=0.99, landmarks=((x + 10, 20.0),) * 5)

    tracker = FaceTracker(VideoSettings(max_missed=1))
    tracker.update([face(0.0)], 0)
    tracker.update([face(10.0)], 2)           # moved 10 px in 2 frames: 5 px per frame
    (track,) = tracker.tracks
    assert track.track_id == 0 and list(track.velocity) == [5.0, 0.0, 5.0, 0.0]
    tracker.advance()
    assert track.box[0] == 15.0 and track.landmarks[0][0] == 25.0
    tracker.update([face(200.0)], 4)          # far away: a new face, and the old track misses once
    assert sorted(t.track_id for t in tracker.tracks) == [0, 1]
    tracker.update([face(200.0)], 6)          # second miss: over max_missed, dropped
    assert [t.track_id for t in tracker.tracks] == [1]


class _FakeCamera:
    """cv2.VideoCapture for a webcam index: no frame count (-1), no fps (0), frames until released; the
    `interrupt_at`-th read sends this process SIGINT, as Ctrl-C in a terminal would."""

    opened: list = []

    def __init__(self, index, portrait=None, interrupt_at=0):
        import cv2

        self.index, self.reads, self.interrupt_at = index, 0, interrupt_at
        frame = np.full((240, 320, 3), 90, np.uint8)
        frame[30:210, 70:250] = cv2.resize(portrait, (180, 180))
        self.frame = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
        _FakeCamera.opened.append(index)

    def isOpened(self):
        return True

    def get(self, prop):
        import cv2

        return -1.0 if prop == cv2.CAP_PROP_FRAME_COUNT else 0.0

    def read(self):
        import os
        import signal

        self.reads += 1
        if self.reads == self.interrupt_at:
            os.kill(os.getpid(), signal.SIGINT)
        return True, self.frame.copy()

    def release(self):
        pass


@pytest.mark.parametrize("stop", ["max_frames", "ctrl_c"])
def test_a_webcam_index_streams_until_max_frames_or_ctrl_c_and_closes_the_video(stop, astronaut, model_dir, tmp_path,
                                                                                 capsys, monkeypatch):
    import signal

    import cv2

    monkeypatch.setattr(_FakeCamera, "opened", [])
    monkeypatch.setattr(cv2, "VideoCapture", lambda index: _FakeCamera(
        index, astronaut, interrupt_at=4 if stop == "ctrl_c" else 0))
    handler = signal.getsignal(signal.SIGINT)
    out = tmp_path / "cam.mp4"
    limit = ["--max-frames", "5"] if stop == "max_frames" else []
    assert cli.main(["video", "0", "--out", str(out), "--model", str(model_dir), *limit]) == 0
    summary = json.loads(capsys.readouterr().err.strip().splitlines()[-1].split("faceocc video: ", 1)[1])
    expected = 5 if stop == "max_frames" else 3  # Ctrl-C during the 4th read: that frame is not processed
    assert _FakeCamera.opened == [0] and summary["frames"] == expected and "error" not in summary
    assert summary.get("stopped") == ("interrupted" if stop == "ctrl_c" else None)
    assert signal.getsignal(signal.SIGINT) is handler  # the previous Ctrl-C behaviour is back
    monkeypatch.undo()  # the real VideoCapture again, to read the written video back
    assert _count_frames(out) == expected and summary["faces"] >= expected - 1


def test_predict_with_pose_adds_angles_and_an_attention_flag_and_draws_axes(photos, model_dir, tmp_path, capsys):
    from faceocc.images import load_rgb

    portrait = photos / "astronaut ü.png"
    assert cli.main(["predict", str(portrait), "--model", str(model_dir), "--annotate", str(tmp_path / "plain")]) == 0
    assert all("pose" not in json.loads(x) for x in capsys.readouterr().out.splitlines())  # only when asked
    assert cli.main(["predict", str(portrait), "--model", str(model_dir), "--pose", "--attention-yaw", "1",
                     "--annotate", str(tmp_path / "posed")]) == 0
    faces = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert faces and all(set(f["pose"]) == {"yaw", "pitch", "roll", "attention", "masked_face", "axes"}
                         for f in faces)
    assert all(f["pose"]["masked_face"] == (f["label"] in ("masked", "mask_sunglasses")) for f in faces)
    axes = faces[0]["pose"]["axes"]  # drawn as given: three arrows from the nose tip, as long as half the face
    nose, eyes = np.array(faces[0]["landmarks"][2]), np.array(faces[0]["landmarks"][:2])
    assert {tuple(a) for a, _ in axes.values()} == {tuple(axes["x"][0])}
    assert np.linalg.norm(np.array(axes["x"][0]) - nose) < 0.3 * np.linalg.norm(eyes[1] - eyes[0])
    width = faces[0]["box"][2] - faces[0]["box"][0]
    assert 0.35 * width < np.linalg.norm(np.subtract(axes["x"][1], axes["x"][0])) < 0.65 * width  # a frontal face
    yaw, pitch = faces[0]["pose"]["yaw"], faces[0]["pose"]["pitch"]
    # a portrait facing the camera; pitch is not checked: her broad smile lifts the mouth corners, which five
    # landmarks read as a head tilted down (reports/pose.md)
    assert abs(yaw) < 15
    assert faces[0]["pose"]["attention"] == (abs(yaw) > 1 or abs(pitch) > 20)
    plain = load_rgb(next((tmp_path / "plain").rglob("*.png"))).astype(int)
    posed = load_rgb(next((tmp_path / "posed").rglob("*.png"))).astype(int)
    assert (np.abs(posed - plain).sum(axis=2) > 0).sum() > 200  # axes and angles drawn on top


def test_without_model_the_released_model_is_used(astronaut, tmp_path, capsys):
    from faceocc.classifier import ModelCard

    if not (inference.REPO / "models/release" / CARD_FILE).exists():
        pytest.skip("no models/release/ in this checkout (make release)")
    card = ModelCard.read(inference.REPO / "models/release")
    photo = tmp_path / "portrait.png"
    photo.write_bytes(encode_png(astronaut))
    assert cli.main(["predict", str(photo)]) == 0
    records = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert card.variant == "onnx_int8" and len(records) == 1 and set(records[0]["scores"]) == set(card.classes)
    assert records[0]["label"] == "face"  # a bare-faced portrait, through the model a user gets by default


def test_the_python_api_gives_what_predict_prints(photos, model_dir, capsys):
    from faceocc import FacePredictor

    predictor = FacePredictor.open(model_dir, device="cpu")
    photo = photos / "astronaut ü.png"
    assert cli.main(["predict", str(photo), "--model", str(model_dir), "--device", "cpu"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert predictor.predict(photo) == printed and set(printed[0]) >= FACE_KEYS
    (bad,) = predictor.predict(photos / "notes.png")  # a bad file is a record with the reason, not an exception
    assert bad["label"] is None and "not" in bad["reason"]


def test_a_device_this_machine_lacks_or_a_made_up_one_is_refused_in_one_line(photos, model_dir, capsys):
    import torch

    with pytest.raises(SystemExit) as usage:  # argparse's usage error
        cli.main(["predict", str(photos), "--model", str(model_dir), "--device", "gpu0"])
    assert usage.value.code == 2
    assert "'gpu0' is not a device" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert cli.main(["predict", str(photos), "--model", str(model_dir), "--device", "cuda"]) == 2
        (line,) = capsys.readouterr().err.splitlines()
        assert "CUDA is not available" in line
