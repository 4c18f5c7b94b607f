"""End to end on photos labelled by their folder: found and right per class, with or without a face box."""

from __future__ import annotations

import json

import numpy as np
from conftest import write_untrained_model

from faceocc import cli
from faceocc.end_to_end import LabelledPhoto, labelled_photos, score_labelled_photos
from faceocc.images import encode_png

CLASSES = ("face", "masked", "sunglasses", "mask_sunglasses")


def _photo(path, size=(100, 200)):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_png(np.full((*size, 3), 90, np.uint8)))
    return path


def _record(box, label):
    return {"box": list(box), "label": label}


def test_a_photo_without_a_box_is_judged_by_its_largest_face_and_a_miss_counts_as_not_found(tmp_path):
    photos = [LabelledPhoto(str(_photo(tmp_path / f"{n}.png")), label) for n, label in
              (("a", "face"), ("b", "face"), ("c", "masked"), ("d", "masked"))]
    answers = {  # records come largest face first, as FacePredictor gives them
        "a.png": [_record((0, 0, 50, 50), "face"), _record((60, 60, 70, 70), "masked")],
        "b.png": [_record((0, 0, 50, 50), "sunglasses")],
        "c.png": [{"path": "c.png", "label": None, "reason": "no_face"}],
        "d.png": [_record((0, 0, 50, 50), "masked")]}
    result = score_labelled_photos(photos, lambda image, path: answers[path.rsplit("/", 1)[1]], CLASSES)
    assert (result["photos"], result["faces"], result["found"], result["right"]) == (4, 4, 3, 2)
    assert result["per_class"]["face"] == {"faces": 2, "found": 2, "right": 1, "found_share": 1.0, "recall": 0.5,
                                           "recall_of_found": 0.5}
    assert result["per_class"]["masked"]["found"] == 1 and result["per_class"]["masked"]["right"] == 1
    assert result["macro_recall"] == 0.5  # face 0.5, masked 0.5; classes without photos left out
    assert result["confusion_of_found"][0] == [1, 0, 1, 0]


def test_with_a_box_only_the_detection_on_that_face_counts(tmp_path):
    path = str(_photo(tmp_path / "crowd.png"))
    photo = LabelledPhoto(path, "sunglasses", box=(100, 20, 160, 80))
    bystander_first = [_record((0, 0, 90, 90), "face"), _record((102, 22, 158, 82), "sunglasses")]
    assert score_labelled_photos([photo], lambda i, p: bystander_first, CLASSES)["right"] == 1
    only_bystander = bystander_first[:1]
    result = score_labelled_photos([photo], lambda i, p: only_bystander, CLASSES)
    assert result["found"] == 0 and result["right"] == 0


def test_an_unreadable_photo_is_a_problem_not_a_crash_and_the_rest_is_scored(tmp_path):
    bad = tmp_path / "face" / "bad.jpg"
    bad.parent.mkdir()
    bad.write_bytes(b"not a jpeg")
    good = LabelledPhoto(str(_photo(tmp_path / "face" / "good.png")), "face")
    result = score_labelled_photos([LabelledPhoto(str(bad), "face"), good],
                                   lambda i, p: [_record((0, 0, 9, 9), "face")], CLASSES)
    assert result["faces"] == 1 and result["right"] == 1
    assert len(result["problems"]) == 1 and result["problems"][0].startswith(f"{bad}: not an image")


def test_a_crops_csv_places_the_face_box_in_the_shrunk_crop_and_patterns_pick_a_source(tmp_path):
    # the crop covers source pixels 100..500 x 50..450 and was shrunk from 400 to 200 px
    _photo(tmp_path / "sunglasses" / "ilc__p__200_150.jpg", size=(200, 200))
    _photo(tmp_path / "sunglasses" / "ztj__q.jpg")
    _photo(tmp_path / "elsewhere" / "ilc__r.jpg")  # not a class folder
    (tmp_path / "sunglasses" / "ilc__notes.txt").write_text("decoded by content, so scored (as unreadable)")
    (tmp_path / "crops.csv").write_text(
        "file,class,face_box_xyxy,crop_box_xyxy\n"
        "sunglasses/ilc__p__200_150.jpg,sunglasses,200 150 300 250,100 50 500 450\n")
    photos = labelled_photos(tmp_path, CLASSES, "ilc__*")
    assert [p.path.rsplit("/", 1)[1] for p in photos] == ["ilc__notes.txt", "ilc__p__200_150.jpg"]
    photos = [p for p in photos if p.path.endswith(".jpg")]
    assert photos[0].box_in(200, 200) == (50.0, 50.0, 100.0, 100.0)
    assert [p.box for p in labelled_photos(tmp_path, CLASSES, "ztj__*")] == [None]


def test_faceocc_score_prints_found_and_right_per_class_and_writes_the_json(tmp_path, astronaut, faceless, capsys):
    model = write_untrained_model(tmp_path, CLASSES)
    (tmp_path / "photos" / "face").mkdir(parents=True)
    (tmp_path / "photos" / "face" / "astronaut.png").write_bytes(encode_png(astronaut))
    (tmp_path / "photos" / "masked").mkdir()
    (tmp_path / "photos" / "masked" / "coffee.png").write_bytes(encode_png(faceless))
    (tmp_path / "photos" / "cats").mkdir()
    out = tmp_path / "score.json"
    assert cli.main(["score", str(tmp_path / "photos"), "--model", str(model), "--json", str(out)]) == 0
    captured = capsys.readouterr()
    assert "| face | 1 | 1 |" in captured.out and "| masked | 1 | 0 | 0 |" in captured.out
    assert "photos/cats: not one of the model's classes, not scored" in captured.err
    result = json.loads(out.read_text())
    assert (result["faces"], result["found"]) == (2, 1) and result["finder"]["detector"]["name"]


def test_faceocc_score_names_a_folder_that_is_not_one(tmp_path, capsys):
    model = write_untrained_model(tmp_path, CLASSES)
    assert cli.main(["score", str(tmp_path / "nowhere"), "--model", str(model)]) == cli.EXIT_REFUSED
    assert "nowhere: not a folder" in capsys.readouterr().err


def test_faceocc_score_exits_1_when_a_photo_is_unreadable_and_names_it(tmp_path, astronaut, capsys):
    model = write_untrained_model(tmp_path, CLASSES)
    (tmp_path / "photos" / "face").mkdir(parents=True)
    (tmp_path / "photos" / "face" / "astronaut.png").write_bytes(encode_png(astronaut))
    (tmp_path / "photos" / "face" / "cut.jpg").write_bytes(b"\xff\xd8\xff")
    assert cli.main(["score", str(tmp_path / "photos"), "--model", str(model)]) == 1
    captured = capsys.readouterr()
    assert "| face | 1 | 1 |" in captured.out and "cut.jpg: corrupt image" in captured.err
