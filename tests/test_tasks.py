"""The task switch: one `task` param moves scrape, crop, dedup, curate, split and balance from the occlusion
classes to mask wearing, reading PascalVOC boxes; the CLI picks the task's model and draws its colours."""

from __future__ import annotations

import io
import json
import re
import typing

import numpy as np
import pytest
import yaml
from conftest import run_data_stages, write_untrained_model
from PIL import Image

from faceocc import cli, inference
from faceocc.annotate import colour_of, draw_predictions
from faceocc.end_to_end import annotated_test_faces, score_photos
from faceocc.images import encode_png
from faceocc.manifest import read_rows
from tools.release import markdown, release_params
from faceocc.splitting import (
    OUT_OF_DOMAIN,
    assign_splits,
    assign_with_holdout,
    group_items,
)
from faceocc.tasks import MASK_WEARING, OCCLUSION4, TASKS, TaskName, read_task_file, task_named
from stages import crop, scrape, split

MASK_CLASSES = ("with_mask", "without_mask", "mask_weared_incorrect")
TRAIN_ONLY = ["*_Mask.jpg", "*_Mask_*.jpg"]
# the two annotated faces of the crowd photo, each painted a colour of its own so a crop shows where it was cut
CORRECT_BOX, INCORRECT_BOX = (40, 40, 120, 136), (200, 60, 264, 140)


def test_the_typed_task_choice_lists_every_task():
    assert set(typing.get_args(TaskName)) == set(TASKS)
    with pytest.raises(ValueError, match="unknown task 'masks'"):
        task_named("masks")


def test_each_tasks_masked_classes_are_its_own_and_leave_the_bare_face_out():
    from faceocc.tasks import MASK_WEARING, OCCLUSION4, TASKS

    for task in TASKS.values():
        assert task.masked_classes and set(task.masked_classes) < set(task.classes)
    assert "face" not in OCCLUSION4.masked_classes and "sunglasses" not in OCCLUSION4.masked_classes
    assert "without_mask" not in MASK_WEARING.masked_classes


def test_a_sources_other_spellings_map_onto_the_tasks_classes():
    assert MASK_WEARING.label_of("mask_worn_incorrectly") == "mask_weared_incorrect"
    assert MASK_WEARING.label_of("without_mask") == "without_mask"
    assert all(target in MASK_WEARING.classes for target in MASK_WEARING.aliases.values())


def test_mask_wearing_is_drawn_green_red_blue_as_the_source_drew_it():
    def dominant(label):
        return int(np.argmax(colour_of(label, MASK_CLASSES)))

    assert [dominant(c) for c in MASK_CLASSES] == [1, 0, 2]
    assert all(set(t.colours) == set(t.classes) for t in TASKS.values())


def _jpeg(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _voc(filename: str, width: int, height: int, objects: list[tuple]) -> str:
    parts = [f"<annotation><filename>{filename}</filename><size><width>{width}</width><height>{height}</height>"
             "<depth>3</depth></size>"]
    for name, box in objects:
        inner = f"<name>{name}</name>" if name else ""
        if box is not None:
            inner += "<bndbox>" + "".join(f"<{t}>{v}</{t}>" for t, v in zip(("xmin", "ymin", "xmax", "ymax"), box)) \
                     + "</bndbox>"
        parts.append(f"<object>{inner}</object>")
    return "".join(parts) + "</annotation>"


@pytest.fixture
def mask_sources(tmp_path, astronaut):
    """A PascalVOC folder (a crowd photo with three classes, and the broken files such folders hold) and a
    labelled folder of MaskedFace-Net-style files that spell the incorrect class their own way."""
    voc = tmp_path / "mask_detection"
    (voc / "images").mkdir(parents=True)
    (voc / "annotations").mkdir()
    rng = np.random.default_rng(0)
    crowd = rng.integers(90, 160, (240, 320, 3), dtype=np.uint8)
    for (x1, y1, x2, y2), colour in ((CORRECT_BOX, (20, 200, 20)), (INCORRECT_BOX, (20, 20, 200))):
        crowd[y1:y2, x1:x2] = colour
    Image.fromarray(crowd).save(voc / "images" / "crowd.png")
    (voc / "annotations" / "crowd.xml").write_text(_voc("crowd.png", 320, 240, [
        ("with_mask", CORRECT_BOX), ("mask_weared_incorrect", INCORRECT_BOX),
        ("without_mask", (290, 10, 302, 22)),       # 12 px: too small to classify
        ("without_mask", (300, 200, 400, 300)),     # reaches outside the image: clipped to 20 x 40
        ("", (1, 1, 30, 30)), ("with_mask", None),  # no name, no box: dropped with a reason each
    ]))
    (voc / "annotations" / "broken.xml").write_text("<annotation><size><width>10")
    (voc / "annotations" / "lost.xml").write_text(_voc("lost.jpg", 50, 50, [("with_mask", (1, 1, 40, 40))]))
    Image.fromarray(crowd[:100, :100]).save(voc / "images" / "resized.png")
    (voc / "annotations" / "resized.xml").write_text(_voc("resized.png", 320, 240, [("with_mask", CORRECT_BOX)]))

    wearing = tmp_path / "maskedfacenet_wearing"
    (wearing / "mask_worn_incorrectly").mkdir(parents=True)
    (wearing / "with_mask").mkdir()
    (wearing / "mask_worn_incorrectly" / "00001_Mask_Chin.jpg").write_bytes(_jpeg(astronaut))
    (wearing / "with_mask" / "00002_Mask.jpg").write_bytes(_jpeg(np.ascontiguousarray(astronaut[:, ::-1])))
    return voc, wearing


def _mask_wearing_params(path, roots) -> str:
    # the scrape alone names the task: the later stages read it from their inputs
    path.write_text(yaml.safe_dump({
        "scrape": {"task": "mask_wearing", "source": "folder", "folder": {"roots": [str(r) for r in roots]}},
        "crop": {"batch_size": 4, "threads": 1, "device": "cpu", "finder": {"min_face_px": 16}},
        "dedup": {},
        "curate": {"quality": {"min_face_px": 16, "min_sharpness": 0.0}},
        "split": {"train_only": TRAIN_ONLY},
        "balance": {"synthetic": {"enabled": False}},  # its occlusion recipes stay, unused
    }))
    return str(path)


def test_switching_the_task_runs_the_dag_on_mask_wearing_with_voc_boxes_cut_as_annotated(tmp_path, mask_sources):
    params = _mask_wearing_params(tmp_path / "params.yaml", mask_sources)
    r = str(tmp_path)
    scrape.main(["--out", f"{r}/scrape", "--cache", f"{r}/cache", "--metrics", f"{r}/scrape.json", "--params", params])
    raw = read_rows(tmp_path / "scrape" / "manifest.csv")
    by_origin = {row["origin"].split("/")[-1]: row for row in raw}
    assert by_origin["crowd.xml#0"]["label"] == "with_mask"
    assert by_origin["crowd.xml#1"]["label"] == "mask_weared_incorrect"
    assert by_origin["00001_Mask_Chin.jpg"]["label"] == "mask_weared_incorrect"  # the folder's own spelling
    assert {by_origin[f"crowd.xml#{k}"]["identity"] for k in range(4)} == {"mask_detection/crowd"}
    assert by_origin["broken.xml"]["outcome"] == "bad_annotation"
    assert by_origin["lost.xml"]["outcome"] == "image_missing"
    assert by_origin["resized.xml"]["outcome"] == "size_mismatch"
    dropped = [row["detail"] for row in raw if row["outcome"] == "annotation_dropped"]
    assert len(dropped) == 2 and all("\n" not in d for d in dropped)
    assert json.loads((tmp_path / "scrape.json").read_text())["stored_per_label"] == {
        "with_mask": 2, "without_mask": 2, "mask_weared_incorrect": 2}

    crop.main(["--raw", f"{r}/scrape", "--out", f"{r}/crop", "--metrics", f"{r}/crop.json", "--params", params])
    crops = {row["source_id"]: row for row in read_rows(tmp_path / "crop" / "crops.csv")}
    for k, colour_channel in ((0, 1), (1, 2)):  # green face, blue face: each crop is centred on its own box
        row = crops[by_origin[f"crowd.xml#{k}"]["id"]]
        assert row["detection_pass"] == "0" and row["landmarks"] == "template" and float(row["probability"]) == 1
        centre = np.asarray(Image.open(tmp_path / "crop" / "faces" / row["file"]))[56, 56]
        assert int(np.argmax(centre)) == colour_channel and centre.max() > 150
    outcomes = {row["id"]: row["outcome"] for row in read_rows(tmp_path / "crop" / "outcomes.csv")}
    assert outcomes[by_origin["crowd.xml#2"]["id"]] == "too_small"
    assert outcomes[by_origin["00001_Mask_Chin.jpg"]["id"]] == "kept"  # the folder's photos are still detected
    assert crops[by_origin["00001_Mask_Chin.jpg"]["id"]]["landmarks"] == "retinaface"  # the default finder's
    summary = json.loads((tmp_path / "crop.json").read_text())["by_label"]["all"]
    assert summary["annotated_images"] == 4 and summary["detection_rate_first_pass"] == 1.0  # 2 of 2 detected

    metrics = run_data_stages(tmp_path, params)
    rows = read_rows(tmp_path / "split" / "split.csv")
    of = {row["source_id"]: row["split"] for row in rows}
    assert of[by_origin["00001_Mask_Chin.jpg"]["id"]] == of[by_origin["00002_Mask.jpg"]["id"]] == "train"
    crowd_splits = {of[by_origin[f"crowd.xml#{k}"]["id"]] for k in (0, 1, 3)}
    assert len(crowd_splits) == 1  # one photo's faces stay in one split
    assert set(metrics["split"]["counts"]["train"]) == set(MASK_CLASSES) and metrics["split"]["train_only_items"] == 2
    assert set(metrics["balance"]["after"]) == set(MASK_CLASSES)

    # the scrape recorded the task and the crop carried it forward: no later stage names it
    assert read_task_file(tmp_path / "scrape") == read_task_file(tmp_path / "crop") == MASK_WEARING
    # an input without its task.json (an output of before the task travelled with the data) is refused in one line
    (tmp_path / "scrape" / "task.json").unlink()
    with pytest.raises(SystemExit):
        split.main(["--curated", f"{r}/curate", "--dedup", f"{r}/dedup", "--raw", f"{r}/scrape", "--out",
                    f"{r}/split2", "--metrics", f"{r}/split2.json", "--params", params])
    assert not (tmp_path / "split2").exists()


def test_ignoring_annotations_sends_every_image_to_the_detector(tmp_path, mask_sources):
    params = tmp_path / "params.yaml"
    _mask_wearing_params(params, mask_sources)
    data = yaml.safe_load(params.read_text())
    data["crop"]["annotations"] = "ignore"
    params.write_text(yaml.safe_dump(data))
    r = str(tmp_path)
    scrape.main(["--out", f"{r}/scrape", "--cache", f"{r}/cache", "--metrics", f"{r}/s.json", "--params", str(params)])
    crop.main(["--raw", f"{r}/scrape", "--out", f"{r}/crop", "--metrics", f"{r}/crop.json", "--params", str(params)])
    summary = json.loads((tmp_path / "crop.json").read_text())["by_label"]["all"]
    assert summary["annotated_images"] == 0 and summary["outcomes"]["no_face"] == 4  # painted squares: no face


def test_a_stage_refuses_the_old_class_list_key_by_name(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"split": {"classes": ["face"]}}))
    with pytest.raises(SystemExit) as stopped:
        split.main(["--curated", r"x", "--dedup", "x", "--raw", "x", "--out", "x", "--metrics", "x",
                    "--params", str(params)])
    assert stopped.value.code == 2 and "split: unknown key(s) ['classes']" in capsys.readouterr().err


def test_a_crowd_photo_is_dealt_as_its_rarest_class_so_val_and_test_get_their_share():
    items = []
    for g in range(20):  # twenty photos: five correct masks and one worn wrongly in each
        items += [{"crop_id": f"p{g}_{k}", "source_id": f"p{g}", "label": "with_mask"} for k in range(5)]
        items.append({"crop_id": f"p{g}_x", "source_id": f"p{g}", "label": "mask_weared_incorrect"})
    items += [{"crop_id": f"s{k}", "source_id": f"s{k}", "label": "with_mask"} for k in range(200)]
    groups = group_items(items, ("source_id",))
    splits = assign_splits(items, groups, (0.6, 0.2, 0.2), seed=0)
    rare = [s for item, s in zip(items, splits) if item["label"] == "mask_weared_incorrect"]
    assert [rare.count(s) for s in ("train", "val", "test")] == [12, 4, 4]


def test_train_only_groups_go_to_train_and_a_held_out_group_stays_out():
    items = [{"crop_id": f"c{k}", "label": "with_mask"} for k in range(30)]
    groups = list(range(30))
    splits = assign_with_holdout(items, groups, (0.6, 0.2, 0.2), 0, held_out={0}, train_only={0, 1, 2})
    assert splits[0] == OUT_OF_DOMAIN and splits[1] == splits[2] == "train"
    assert {"val", "test"} <= set(splits[3:])


def test_release_params_switch_the_scrape_to_the_task_and_apply_its_changes():
    params = yaml.safe_load(open("params.yaml"))
    out = release_params(params, ["/data/a"], [], MASK_WEARING)
    assert out["scrape"]["task"] == "mask_wearing"
    assert not [s for s in out if s != "scrape" and "task" in out[s]]  # the task is the data's, read from it
    assert out["curate"]["quality"]["min_probability"] == 0.7  # every release's change (release_params/all.yaml)
    assert out["split"]["train_only"] == TRAIN_ONLY and out["split"]["seed"] == params["split"]["seed"]
    assert out["balance"]["synthetic"] == {"enabled": False, "recipes": []}  # a list is replaced, not merged
    assert out["balance"]["augment"] == params["balance"]["augment"]
    assert release_params(params, ["/data/a"], [], OCCLUSION4)["balance"] == params["balance"]


@pytest.fixture(scope="module")
def mask_model(tmp_path_factory):
    return write_untrained_model(tmp_path_factory.mktemp("mask_model"), MASK_CLASSES, task="mask_wearing")


def test_predict_with_the_mask_wearing_task_scores_its_classes(mask_model, astronaut, tmp_path, capsys):
    photo = tmp_path / "portrait.png"
    photo.write_bytes(encode_png(astronaut))
    assert cli.main(["predict", str(photo), "--task", "mask_wearing", "--model", str(mask_model)]) == 0
    (record,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert set(record["scores"]) == set(MASK_CLASSES)
    drawn = draw_predictions(np.zeros((200, 200, 3), np.uint8),
                             [{"box": [50, 50, 150, 150], "label": "without_mask", "scores": {"without_mask": 0.9}}])
    assert tuple(drawn[150, 100]) == MASK_WEARING.colours["without_mask"]  # the box's bottom edge


def test_a_model_of_another_task_is_refused_naming_both(mask_model, tmp_path, capsys):
    assert cli.main(["predict", str(tmp_path), "--task", "occlusion4", "--model", str(mask_model)]) == 2
    assert re.search("is a mask_wearing model .*not one for --task occlusion4", capsys.readouterr().err)


def test_without_a_released_mask_wearing_model_the_error_says_how_to_build_one(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(inference, "REPO", tmp_path)
    assert cli.main(["predict", str(tmp_path), "--task", "mask_wearing"]) == 2
    assert "make release TASK=mask_wearing" in capsys.readouterr().err


def test_end_to_end_counts_a_face_right_only_when_found_and_labelled_as_annotated(mask_sources):
    voc, _ = mask_sources
    xml = str(voc / "annotations" / "crowd.xml")
    raw = [{"id": "a", "origin": f"{xml}#0"}, {"id": "b", "origin": f"{xml}#1"}, {"id": "c", "origin": f"{xml}#3"},
           {"id": "d", "origin": "/photos/with_mask/00002_Mask.jpg"}]
    split_rows = [{"source_id": s, "split": "test"} for s in "abd"] + [{"source_id": "c", "split": "val"}]
    faces = annotated_test_faces(split_rows, raw)
    assert faces == {xml: [0, 1]}  # VOC objects of the test split only

    def predict(image, path):  # finds both faces, a little off their boxes, and calls both correctly masked
        assert image.shape == (240, 320, 3) and path.endswith("crowd.png")
        return [{"box": [x1 + 4, y1 + 4, x2 + 4, y2 + 4], "label": "with_mask"} for x1, y1, x2, y2 in
                (CORRECT_BOX, INCORRECT_BOX)] + [{"label": None, "reason": "too_small"}]

    result = score_photos(faces, predict, MASK_WEARING.label_of, MASK_CLASSES)
    assert (result["faces"], result["found"], result["right"]) == (2, 2, 1)
    assert result["per_class"]["mask_weared_incorrect"] == {
        "faces": 1, "found": 1, "right": 0, "found_share": 1.0, "recall": 0.0, "recall_of_found": 0.0}
    assert result["confusion_of_found"][2] == [1, 0, 0] and result["macro_recall"] == 0.5

    missed = score_photos(faces, lambda image, path: [], MASK_WEARING.label_of, MASK_CLASSES)
    assert (missed["found"], missed["accuracy"]) == (0, 0.0)


def test_a_mask_wearing_release_readme_says_how_to_use_it_and_shows_the_end_to_end_rows():
    per_class = {c: {"precision": 0.9, "recall": 0.8, "f1": 0.85, "support": 10} for c in MASK_CLASSES}
    e2e = {"photos": 3, "iou": 0.5, "faces": 30, "found": 20, "right": 18, "found_share": 0.6667, "accuracy": 0.6,
           "macro_recall": 0.55, "per_class": {c: {"faces": 10, "found": 7, "right": 6, "recall": 0.6,
                                                    "recall_of_found": 0.857} for c in MASK_CLASSES}}
    record = {"task": "mask_wearing", "chosen_by": "val", "candidates": [], "out_of_domain": None, "end_to_end": e2e,
              "model": {"backbone": "mobilenet_v2", "variant": "onnx_int8", "size_mb": 2.6, "latency_ms_p50": 2.0,
                        "cpu": "x"},
              "test": {"accuracy": 0.9, "macro_f1": 0.85, "test_images": 30, "per_class": per_class},
              "data": {"roots": ["/d"], "split_totals": {"train": 1, "test": 1}, "sources": {}, "balance": {}}}
    text = markdown(record, {"max_size_mb": 15, "max_latency_ms": 6})
    assert text.startswith("# Released mask_wearing model") and "faceocc predict --task mask_wearing" in text
    assert "## End to end on the test photos" in text
    assert "| mask_weared_incorrect | 10 | 7 | 6 | 0.600 | 0.857 |" in text
    assert "(mtcnn at 0.9, faces >= 20 px)" in text and "beside the card's" not in text  # before the finder
    from faceocc.finder import FinderSettings
    from tools.release import FORMER_FINDER

    former = {**e2e, "found": 12, "right": 11, "finder": FORMER_FINDER.to_dict()}
    record["end_to_end"] = {**e2e, "finder": FinderSettings().to_dict(), "beside": former}
    text = markdown(record, {"max_size_mb": 15, "max_latency_ms": 6})
    assert "(retinaface x1+2 at 0.7, faces >= 10 px)" in text
    assert "| card's: retinaface x1+2 at 0.7, faces >= 10 px | 20 | 18 |" in text
    assert "| beside: mtcnn at 0.9, faces >= 20 px | 12 | 11 |" in text
    assert "pasted-on masks" in text and "make release TASK=mask_wearing" in text
    assert "as with_mask/without_mask/mask_weared_incorrect" in text  # WM and WM would not tell them apart


def test_a_release_is_rescored_end_to_end_with_both_finders_only_on_its_own_test_photos(tmp_path, mask_sources):
    from faceocc.classifier import CARD_FILE
    from faceocc.finder import FinderSettings
    from faceocc.manifest import write_rows
    from tools.release import FORMER_FINDER, rescore_end_to_end

    voc, _ = mask_sources
    xml = str(voc / "annotations" / "crowd.xml")
    out, workspace = tmp_path / "release", tmp_path / "ws"
    out.mkdir()
    write_untrained_model(out, MASK_CLASSES, "mask_wearing")
    card = json.loads((out / CARD_FILE).read_text())
    (out / CARD_FILE).write_text(json.dumps({**card, "finder": FORMER_FINDER.to_dict()}))
    per_class = {c: {"precision": 0.9, "recall": 0.8, "f1": 0.85, "support": 10} for c in MASK_CLASSES}
    record = {"task": "mask_wearing", "chosen_by": "val", "candidates": [], "out_of_domain": None,
              "end_to_end": {"photos": 1, "faces": 2},
              "model": {"backbone": "mobilenet_v2", "variant": "onnx_int8", "size_mb": 2.6, "latency_ms_p50": 2.0,
                        "cpu": "x"},
              "test": {"accuracy": 0.9, "macro_f1": 0.85, "test_images": 30, "per_class": per_class},
              "data": {"roots": ["/d"], "split_totals": {"train": 1, "test": 1}, "sources": {}, "balance": {}}}
    (out / "release.json").write_text(json.dumps(record))
    (workspace / "data" / "split").mkdir(parents=True)
    (workspace / "data" / "scrape").mkdir(parents=True)
    write_rows(workspace / "data" / "scrape" / "manifest.csv",
               [{"id": "a", "origin": f"{xml}#0"}, {"id": "b", "origin": f"{xml}#1"}], ("id", "origin"))
    write_rows(workspace / "data" / "split" / "split.csv",
               [{"source_id": "a", "split": "test"}, {"source_id": "b", "split": "test"}], ("source_id", "split"))
    requirement = {"max_size_mb": 15, "max_latency_ms": 6}
    new = rescore_end_to_end(out, workspace, MASK_WEARING, requirement)["end_to_end"]
    assert (new["photos"], new["faces"]) == (1, 2)  # the coloured squares hold no face a detector would find
    assert new["finder"] == FORMER_FINDER.to_dict() and new["beside"]["finder"] == FinderSettings().to_dict()
    assert "| beside: retinaface x1+2 at 0.7, faces >= 10 px | 0 | 0 |" in (out / "README.md").read_text()
    record["end_to_end"] = {"photos": 1, "faces": 3}  # another split's test photos: refused, nothing written
    (out / "release.json").write_text(json.dumps(record))
    with pytest.raises(SystemExit, match="not the release's"):
        rescore_end_to_end(out, workspace, MASK_WEARING, requirement)
    assert json.loads((out / "release.json").read_text())["end_to_end"] == {"photos": 1, "faces": 3}


def test_a_task_file_names_its_task_and_a_missing_unknown_or_reordered_one_is_refused_naming_the_file(tmp_path):
    from faceocc.tasks import TaskFileError, write_task_file

    write_task_file(tmp_path, MASK_WEARING)
    assert read_task_file(tmp_path) == MASK_WEARING
    for text, reason in (('{"task": "masks", "classes": []}', "unknown task 'masks'"),
                         ('{"task": "occlusion4", "classes": ["masked", "face", "sunglasses", "mask_sunglasses"]}',
                          "are not task occlusion4's"),
                         ("not json", "task.json: ")):
        (tmp_path / "task.json").write_text(text)
        with pytest.raises(TaskFileError, match=reason):
            read_task_file(tmp_path)
    (tmp_path / "task.json").unlink()
    with pytest.raises(TaskFileError, match=r"task.json: missing; the scrape stage writes it"):
        read_task_file(tmp_path)


def test_every_task_has_a_release_params_file_and_the_release_reads_only_those():
    from tools.release import RELEASE_PARAMS_DIR

    assert {p.stem for p in RELEASE_PARAMS_DIR.glob("*.yaml")} == {"all", *TASKS}
