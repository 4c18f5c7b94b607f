"""Hostile inputs: every entry a user points at gets a line with an outcome, nothing hangs, nothing is lost.

One folder holds every kind of bad entry found trying the tool (issue 20); it goes through `predict`, `sort`,
`video` and the folder scrape, and each must account for every entry.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal

import numpy as np
import pytest
from conftest import write_untrained_model
from PIL import Image

from faceocc import cli
from faceocc.images import ImageDecodeError, encode_png, load_rgb
from faceocc.inputs import list_inputs
from faceocc.manifest import read_rows
from faceocc.sources import RawStore, list_folder, store_folder

CLASSES = ("face", "masked", "sunglasses", "mask_sunglasses")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return write_untrained_model(tmp_path_factory.mktemp("model"), CLASSES)


@pytest.fixture(autouse=True)
def no_hang():
    """A test that blocks (opening a FIFO) fails after 60 s instead of stalling the suite."""
    def hung(*_):
        raise TimeoutError("blocked for 60 s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def _jpeg(image) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _clip(path, portrait, frames=8, size=(160, 120)):
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, size)
    face = cv2.resize(portrait, (100, 100))
    rng = np.random.default_rng(0)
    for i in range(frames):
        frame = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        x = 5 + (i * 5) % 50
        frame[10:110, x: x + 100] = face
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


# entry name -> what every command must say of it (a substring of the reason); None: a readable picture
CORPUS = {
    "noext": None,                          # a JPEG without a suffix: decoded by content
    ".hidden.png": None,                    # hidden files are entries too
    "drawing.svg": "SVG",
    "clip.mp4": "a video",
    "dangling.jpg": "dangling symlink",
    "dir.jpg": "empty folder",              # a folder named like a picture, with nothing in it
    "empty folder": "empty folder",
    "pipe.jpg": "FIFO",                     # opening it would block forever
    "huge.jpg": "too large",                # 64 GB, sparse: must not be read
    "loop": "symlink loop",                 # a link to its own folder
    "truncated.jpg": "corrupt image",
    "empty.png": "empty file",
    "notes.txt": "not an image",
}


@pytest.fixture
def corpus(tmp_path, astronaut):
    root = tmp_path / "bad"
    root.mkdir()
    (root / "noext").write_bytes(_jpeg(astronaut))
    (root / ".hidden.png").write_bytes(encode_png(astronaut[::2, ::2]))
    (root / "drawing.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"><circle r="4"/></svg>')
    _clip(root / "clip.mp4", astronaut)
    (root / "dangling.jpg").symlink_to(tmp_path / "gone.jpg")
    (root / "dir.jpg").mkdir()
    (root / "empty folder").mkdir()
    os.mkfifo(root / "pipe.jpg")
    with open(root / "huge.jpg", "wb") as fh:
        fh.write(b"\xff\xd8\xff")
        fh.truncate(64 * 2**30)
    (root / "loop").symlink_to(root)
    (root / "truncated.jpg").write_bytes(_jpeg(astronaut)[:2500])
    (root / "empty.png").write_bytes(b"")
    (root / "notes.txt").write_text("minutes of the meeting")
    assert sorted(p.name for p in root.iterdir()) == sorted(CORPUS)
    return root


def _reasons_by_name(records, key="path"):
    out = {}
    for r in records:
        out.setdefault(os.path.basename(r[key].rstrip("/")), []).append(r)
    return out


def test_predict_gives_every_entry_of_a_hostile_folder_a_line_and_exits_1(corpus, model_dir, tmp_path, capsys):
    rc = cli.main(["predict", str(corpus), "--model", str(model_dir), "--jsonl", str(tmp_path / "out.jsonl")])
    records = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    by_name = _reasons_by_name(records)
    assert sorted(by_name) == sorted(CORPUS)
    for name, expected in CORPUS.items():
        if expected is None:
            assert all(r.get("reason") in (None, "no_face", "too_small") for r in by_name[name]), by_name[name]
        else:
            (line,) = by_name[name]
            assert line["label"] is None and expected in line["reason"], (name, line)
    assert rc == cli.EXIT_INPUT_FAILED
    summary = json.loads(capsys.readouterr().err.strip().splitlines()[-1].split("faceocc predict: ", 1)[1])
    assert summary["images"] == len(CORPUS) and summary["unreadable"] == len(CORPUS) - 2


def test_sort_gives_every_entry_of_a_hostile_folder_a_decision(corpus, model_dir, tmp_path):
    dst = tmp_path / "sorted"
    assert cli.main(["sort", str(corpus), str(dst), "--model", str(model_dir)]) == cli.EXIT_INPUT_FAILED
    rows = list(csv.DictReader(open(dst / "decisions.csv", encoding="utf-8")))
    by_name = _reasons_by_name(rows, "source")
    assert sorted(by_name) == sorted(CORPUS)
    for name, expected in CORPUS.items():
        (row,) = by_name[name]
        if expected is None:
            assert row["action"] == "copied"
        else:
            assert row["action"] == "skipped" and expected in row["reason"], (name, row)
    assert sum(1 for p in dst.rglob("*") if p.is_file() and p.name != "decisions.csv") == 2


def test_the_folder_scrape_gives_every_entry_a_manifest_row(corpus, tmp_path):
    root = tmp_path / "source"
    (root / "face").mkdir(parents=True)
    for entry in corpus.iterdir():
        entry.rename(root / "face" / entry.name)
    (root / "face" / "loop").unlink()
    (root / "face" / "loop").symlink_to(root / "face")
    (root / "stray.jpg").write_bytes(b"at the root, outside any label folder")
    (root / ".git").mkdir()
    store = RawStore(tmp_path / "raw", CLASSES)
    store_folder(store, list_folder([root]))
    by_name = _reasons_by_name(store.rows, "origin")
    assert sorted(by_name) == sorted([*CORPUS, "stray.jpg", ".git"])
    assert {by_name[name][0]["outcome"] for name, expected in CORPUS.items() if expected is None} == {"ok"}
    assert by_name["stray.jpg"][0]["outcome"] == "not_read" and by_name[".git"][0]["outcome"] == "not_read"
    for name, expected in CORPUS.items():
        (row,) = by_name[name]
        if expected not in (None, "corrupt image"):  # a picture with a broken body: the crop stage says why
            assert row["outcome"] != "ok" and expected in row["detail"], (name, row)
    assert by_name["huge.jpg"][0]["outcome"] == "too_large" and by_name["pipe.jpg"][0]["outcome"] == "unreadable"


def test_video_gives_every_entry_a_summary_line_and_exits_1(corpus, model_dir, capsys):
    entries = sorted(str(p) for p in corpus.iterdir())
    rc = cli.main(["video", *entries, "--model", str(model_dir), "--detect-every", "4"])
    err = capsys.readouterr().err
    summaries = [json.loads(x.split("faceocc video: ", 1)[1]) for x in err.splitlines() if "faceocc video: " in x]
    by_name = _reasons_by_name(summaries, "video")
    assert sorted(by_name) == sorted(CORPUS)
    assert by_name["clip.mp4"][0]["frames"] == 8 and "error" not in by_name["clip.mp4"][0]
    assert all("error" in s for name, (s,) in by_name.items() if name != "clip.mp4")
    assert "a picture (JPEG), not a video" in by_name["truncated.jpg"][0]["error"]
    assert "FIFO" in by_name["pipe.jpg"][0]["error"] and "folder" in by_name["dir.jpg"][0]["error"]
    assert rc == cli.EXIT_INPUT_FAILED


def test_an_mp4_with_a_corrupt_middle_is_reported_as_damaged(astronaut, model_dir, tmp_path, capsys):
    clip = _clip(tmp_path / "clip.mp4", astronaut, frames=20)
    data = bytearray(clip.read_bytes())
    data[len(data) // 2: len(data) // 2 + 2000] = bytes(2000)
    (tmp_path / "damaged.mp4").write_bytes(bytes(data))
    rc = cli.main(["video", str(tmp_path / "damaged.mp4"), "--model", str(model_dir)])
    summary = json.loads(capsys.readouterr().err.strip().splitlines()[-1].split("faceocc video: ", 1)[1])
    assert rc == cli.EXIT_INPUT_FAILED and summary["error"].startswith("damaged stream: ")
    assert summary["frames"] > 0  # what could be shown still is


def test_video_outputs_of_clips_with_one_name_in_two_folders_do_not_overwrite(astronaut, model_dir, tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        _clip(tmp_path / folder / "clip.mp4", astronaut, frames=3 if folder == "a" else 5)
    out = tmp_path / "out"
    out.mkdir()
    assert cli.main(["video", str(tmp_path / "a" / "clip.mp4"), str(tmp_path / "b" / "clip.mp4"), "--out", str(out),
                     "--model", str(model_dir)]) == cli.EXIT_OK
    names = cli.video_output_names([str(tmp_path / "a" / "clip.mp4"), str(tmp_path / "b" / "clip.mp4")])
    assert names[0] != names[1] and names[0].endswith("a__clip") and names[1].endswith("b__clip")
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.annotated.mp4" for n in names)
    assert cli.video_output_names(["x.mp4", "x.mp4", "y.mp4"]) == ["x", "x_2", "y"]


def test_a_glob_through_a_symlink_loop_lists_each_file_once(tmp_path, astronaut):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(_jpeg(astronaut))
    (tmp_path / "photos" / "again").symlink_to(tmp_path / "photos")
    entries = list(list_inputs([str(tmp_path / "photos" / "**")]))
    files = [e for e in entries if e.problem is None]
    assert [e.path.name for e in files] == ["a.jpg"]
    assert all("symlink loop" in e.problem for e in entries if e.problem)


def test_a_path_given_twice_is_one_entry_and_a_pattern_matching_nothing_is_one(tmp_path, astronaut):
    (tmp_path / "a.jpg").write_bytes(_jpeg(astronaut))
    entries = list(list_inputs([tmp_path / "a.jpg", tmp_path / "a.jpg", str(tmp_path / "*.png")]))
    assert [(e.path.name, e.problem) for e in entries] == [("a.jpg", None), ("*.png", "no file matches this pattern")]


def test_exit_status_is_0_when_all_read_1_when_any_input_failed_2_when_nothing_ran(model_dir, tmp_path, astronaut,
                                                                                  capsys):
    (tmp_path / "ok.jpg").write_bytes(_jpeg(astronaut))
    assert cli.main(["predict", str(tmp_path / "ok.jpg"), "--model", str(model_dir)]) == cli.EXIT_OK
    assert cli.main(["predict", str(tmp_path / "missing.jpg"), "--model", str(model_dir)]) == cli.EXIT_INPUT_FAILED
    assert cli.main(["sort", str(tmp_path / "missing"), str(tmp_path / "s"), "--model", str(model_dir)]) == 2
    assert cli.main(["video", str(tmp_path / "missing.mp4"), "--model", str(model_dir)]) == cli.EXIT_INPUT_FAILED
    assert cli.main(["predict", str(tmp_path / "ok.jpg"), "--model", str(tmp_path / "ok.jpg")]) == cli.EXIT_REFUSED
    assert capsys.readouterr().err.splitlines()[-1].startswith("faceocc: ")


def test_a_huge_file_is_refused_from_its_size_without_being_read(tmp_path):
    huge = tmp_path / "huge.jpg"
    with open(huge, "wb") as fh:
        fh.truncate(64 * 2**30)
    with pytest.raises(ImageDecodeError, match="too large: 68719476736 bytes"):
        load_rgb(huge)


def test_the_same_bytes_under_two_labels_is_a_label_conflict_and_neither_copy_is_kept(tmp_path, astronaut):
    for label in ("face", "masked", "face"):
        (tmp_path / "src" / label).mkdir(parents=True, exist_ok=True)
    (tmp_path / "src" / "face" / "a.jpg").write_bytes(_jpeg(astronaut))
    (tmp_path / "src" / "face" / "a_copy.jpg").write_bytes(_jpeg(astronaut))  # a duplicate, until the conflict
    (tmp_path / "src" / "masked" / "b.jpg").write_bytes(_jpeg(astronaut))
    (tmp_path / "src" / "face" / "c.jpg").write_bytes(_jpeg(astronaut[::-1]))
    (tmp_path / "src" / "masked" / "d.jpg").write_bytes(_jpeg(astronaut[::-1]))  # another pair: same story
    store = RawStore(tmp_path / "raw", CLASSES)
    store_folder(store, list_folder([tmp_path / "src"]))
    outcomes = {os.path.basename(r["origin"]): r["outcome"] for r in store.rows}
    assert outcomes == {"a.jpg": "label_conflict", "a_copy.jpg": "label_conflict", "b.jpg": "label_conflict",
                        "c.jpg": "label_conflict", "d.jpg": "label_conflict"}
    assert not list((tmp_path / "raw" / "images").glob("*"))
    assert "labelled masked" in next(r for r in store.rows if r["origin"].endswith("a.jpg"))["detail"]


def test_a_scrape_manifest_row_per_entry_is_read_back_by_the_stage_reader(tmp_path, astronaut):
    from faceocc.manifest import write_rows
    from faceocc.sources import RAW_COLUMNS

    (tmp_path / "src" / "face").mkdir(parents=True)
    (tmp_path / "src" / "face" / "noext").write_bytes(_jpeg(astronaut))
    store = RawStore(tmp_path / "raw", CLASSES)
    store_folder(store, list_folder([tmp_path / "src"]))
    write_rows(tmp_path / "raw" / "manifest.csv", store.rows, RAW_COLUMNS)
    (row,) = read_rows(tmp_path / "raw" / "manifest.csv")
    assert row["outcome"] == "ok" and row["file"].endswith(".jpg")  # the suffix from the content


# --- models and cards: one line naming the file and the reason, exit 2, never a model run with wrong labels


def _card_edit(model_dir, tmp_path, name, **changes):
    import shutil

    edited = tmp_path / name
    shutil.copytree(model_dir, edited)
    card = json.loads((edited / "card.json").read_text())
    card.update(changes)
    (edited / "card.json").write_text(json.dumps(card))
    return edited


@pytest.mark.parametrize("changes, reason", [
    ({"classes": ["face", "masked", "sunglasses"]}, "tensor classifier.1.weight is [4, 1280] in the file, [3, 1280]"),
    ({"classes": ["a", "b", "c", "d", "e"]}, "tensor classifier.1.weight is [4, 1280] in the file, [5, 1280]"),
    ({"classes": "face"}, "classes must be a list of class names"),
    ({"classes": ["face", "face", "masked", "x"]}, "distinct names"),
    ({"input_size": "abc"}, "input_size must be a whole number"),
    ({"input_size": 0}, "input_size must be a whole number"),
    ({"crop": {"size": -5, "margin": 0.2}}, "crop needs size >= 16 px"),
    ({"crop": {"size": 112, "margn": 0.2}}, "crop must hold size and margin only"),
    ({"variant": "fx_int8", "variant_info": {}}, "must say its quantization engine"),
    ({"std": [0, 1, 1]}, "std above 0"),
])
def test_a_card_that_does_not_fit_its_model_is_refused_in_one_line(model_dir, tmp_path, astronaut, capsys, changes,
                                                                   reason):
    edited = _card_edit(model_dir, tmp_path, "edited", **changes)
    (tmp_path / "a.jpg").write_bytes(_jpeg(astronaut))
    assert cli.main(["predict", str(tmp_path / "a.jpg"), "--model", str(edited)]) == cli.EXIT_REFUSED
    captured = capsys.readouterr()
    (line,) = captured.err.splitlines()
    assert line.startswith(f"faceocc: {edited}") and reason in line, line
    assert captured.out == ""


def test_an_onnx_model_of_another_input_size_than_its_card_is_refused(model_dir, tmp_path, capsys):
    from faceocc.classifier import Classifier
    from faceocc.onnx_models import ONNX_FILE, export

    classifier = Classifier.load(model_dir)
    onnx_dir = _card_edit(model_dir, tmp_path, "onnx", input_size=96, variant="onnx_fp32")
    (onnx_dir / "model.safetensors").unlink()
    export(classifier.model, 64, onnx_dir / ONNX_FILE)  # made at 64 px, its card says 96
    assert cli.main(["predict", str(tmp_path), "--model", str(onnx_dir)]) == cli.EXIT_REFUSED
    (line,) = capsys.readouterr().err.splitlines()
    assert "model.onnx: inputs [('input', ['batch', 3, 64, 64])] are not the card's one input" in line


# --- settings: a bad value is one line naming the key, exit status 2, before any work


@pytest.mark.parametrize("section, value, message", [
    ("crop", {"batch_size": 0}, "crop.batch_size: 0 is out of range: must be >= 1"),
    ("crop", {"threads": 0}, "crop.threads: 0 is out of range: must be >= 1"),
    ("crop", {"geometry": {"size": 0}}, "crop.geometry.size: 0 is out of range: must be >= 16 and <= 1024"),
    ("crop", {"device": "gpu"}, "crop.device: 'gpu' is not auto, cpu, cuda or cuda:N"),
    ("crop", {"bach_size": 4}, "crop: unknown key(s) ['bach_size']"),
    ("scrape", {"web": {"per_host_interval_s": -1}}, "scrape.web.per_host_interval_s: -1.0 is out of range"),
    ("train", {"common": {"lr": 0}}, "train.common.lr: 0.0 is out of range: must be > 0"),
    ("train", {"backbones": {"mobilenet_v2": {"batch_size": 0}}},
     "train.backbones.mobilenet_v2.batch_size: 0 is out of range: must be >= 1"),
])
def test_a_bad_setting_stops_a_stage_with_one_line_and_exit_status_2(tmp_path, capsys, section, value, message):
    import yaml

    from stages import crop, scrape, train

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({section: value}))
    main = {"crop": crop.main, "scrape": scrape.main, "train": train.main}[section]
    args = {"crop": ["--raw", "r", "--out", "o", "--metrics", "m"],
            "scrape": ["--out", "o", "--cache", "c", "--metrics", "m"],
            "train": ["--balance", "b", "--split", "s", "--crops", "c", "--backbone", "mobilenet_v2", "--out", "o",
                      "--live", "l"]}[section]
    with pytest.raises(SystemExit) as stopped:
        main([*args, "--params", str(params)])
    assert stopped.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line == f"{params}: {message}" or line.startswith(f"{params}: {message}"), line
    assert not (tmp_path / "o").exists()


def test_an_output_path_that_cannot_be_written_is_refused_before_any_work(model_dir, tmp_path, astronaut, capsys):
    (tmp_path / "a.jpg").write_bytes(_jpeg(astronaut))
    (tmp_path / "taken").write_text("a file where a folder should be")
    photos = str(tmp_path / "a.jpg")
    for argv in (["predict", photos, "--jsonl", str(tmp_path)],            # a folder where a file should be
                 ["predict", photos, "--annotate", str(tmp_path / "taken")],
                 ["sort", str(tmp_path), str(tmp_path.parent / "elsewhere" / "x"), "--decisions", str(tmp_path)],
                 ["video", photos, photos, "--out", str(tmp_path / "taken")]):
        assert cli.main([*argv, "--model", str(model_dir)]) == cli.EXIT_REFUSED, argv
        line = capsys.readouterr().err.splitlines()[-1]
        assert line.startswith("faceocc: ") and ("cannot write it" in line or "not a folder" in line), line


def test_score_reports_a_fifo_and_a_dangling_link_in_a_class_folder(model_dir, tmp_path, astronaut, capsys):
    (tmp_path / "photos" / "face" / "deeper").mkdir(parents=True)
    (tmp_path / "photos" / "face" / "deeper" / "a.jpg").write_bytes(_jpeg(astronaut))  # sub-folders count
    os.mkfifo(tmp_path / "photos" / "face" / "pipe.jpg")
    (tmp_path / "photos" / "face" / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    assert cli.main(["score", str(tmp_path / "photos"), "--model", str(model_dir)]) == cli.EXIT_INPUT_FAILED
    captured = capsys.readouterr()
    assert "| face | 1 | 1 |" in captured.out  # the unreadable two are named, not scored
    assert "pipe.jpg: unreadable file: not a regular file (a FIFO)" in captured.err
    assert "gone.jpg: unreadable file: No such file or directory" in captured.err


def test_a_video_output_opencv_cannot_write_is_an_error_not_a_silently_missing_file(astronaut, model_dir, tmp_path,
                                                                                    capsys):
    clip = _clip(tmp_path / "clip.mp4", astronaut, frames=3)
    rc = cli.main(["video", str(clip), "--out", str(tmp_path / "clip.annotated.nosuchformat"), "--model",
                   str(model_dir)])
    summary = json.loads(capsys.readouterr().err.strip().splitlines()[-1].split("faceocc video: ", 1)[1])
    assert rc == cli.EXIT_INPUT_FAILED and summary["error"].startswith("cannot write ") and "output" not in summary


@pytest.mark.parametrize("option, value", [("--detect-every", "0"), ("--detect-max-side", "0"),
                                           ("--max-frames", "-1"), ("--detect-every", "five")])
def test_an_out_of_range_video_option_is_a_usage_error(model_dir, tmp_path, capsys, option, value):
    with pytest.raises(SystemExit) as stopped:
        cli.main(["video", str(tmp_path / "clip.mp4"), option, value, "--model", str(model_dir)])
    assert stopped.value.code == 2 and f"argument {option}: " in capsys.readouterr().err
