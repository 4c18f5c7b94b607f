"""COCO mean average precision of found-and-labelled faces: the figures pycocotools gives on cases worked by hand."""

import numpy as np
import pytest

from faceocc.detection_map import AnnotatedPhoto, Detection, coco_map, detections_of, voc_photos

CLASSES = ("with_mask", "without_mask", "mask_weared_incorrect")


def _photo(*faces, ignored=()):
    return AnnotatedPhoto("p.png", tuple(b for b, _ in faces), tuple(c for _, c in faces), tuple(ignored))


def test_every_face_found_and_labelled_right_is_a_map_of_one_at_every_iou():
    photos = [_photo(((0, 0, 100, 100), "with_mask"), ((200, 0, 300, 100), "without_mask")),
              _photo(((10, 10, 60, 60), "mask_weared_incorrect"))]
    found = [[Detection((0, 0, 100, 100), "with_mask", 0.9), Detection((200, 0, 300, 100), "without_mask", 0.8)],
             [Detection((10, 10, 60, 60), "mask_weared_incorrect", 0.7)]]
    result = coco_map(photos, found, CLASSES)
    assert (result["map50"], result["map50_95"]) == (1.0, 1.0)
    assert {c: v["faces"] for c, v in result["per_class"].items()} == dict.fromkeys(CLASSES, 1)
    assert result["map50_by_size"] == {"medium": 1.0, "large": 1.0}  # 50 px: medium; 100 px: large


def test_a_face_found_with_the_wrong_label_costs_both_classes():
    photos = [_photo(((0, 0, 100, 100), "with_mask")), _photo(((0, 0, 100, 100), "without_mask"))]
    found = [[Detection((0, 0, 100, 100), "without_mask", 0.9)],   # a masked face called unmasked
             [Detection((0, 0, 100, 100), "without_mask", 0.8)]]
    result = coco_map(photos, found, CLASSES)
    assert result["per_class"]["with_mask"]["ap50"] == 0.0
    # without_mask: the false one ranks first, so the one true face is found at precision 1/2
    assert result["per_class"]["without_mask"]["ap50"] == 0.5
    assert result["map50"] == 0.25 and "mask_weared_incorrect" not in result["per_class"]


def test_a_false_face_ranked_below_every_true_one_costs_nothing_and_above_them_halves_precision():
    photo = [_photo(((0, 0, 100, 100), "with_mask"))]
    true = Detection((0, 0, 100, 100), "with_mask", 0.8)
    assert coco_map(photo, [[true, Detection((300, 300, 400, 400), "with_mask", 0.5)]], CLASSES)["map50"] == 1.0
    assert coco_map(photo, [[true, Detection((300, 300, 400, 400), "with_mask", 0.9)]], CLASSES)["map50"] == 0.5


def test_a_loose_box_counts_at_the_lenient_ious_only():
    # IoU 0.62: a match at 0.50, 0.55 and 0.60, none of the 7 stricter thresholds
    result = coco_map([_photo(((0, 0, 100, 100), "with_mask"))],
                      [[Detection((0, 0, 100, 62), "with_mask", 0.9)]], CLASSES)
    assert result["map50"] == 1.0 and result["map50_95"] == pytest.approx(0.3)


def test_a_face_the_split_does_not_score_costs_nothing_found_or_missed_with_any_label():
    photos = [_photo(((0, 0, 100, 100), "with_mask"), ignored=[(300, 300, 400, 400), (500, 0, 600, 100)]),
              _photo(((0, 0, 100, 100), "without_mask"))]
    found = [[Detection((0, 0, 100, 100), "with_mask", 0.9),
              Detection((300, 300, 400, 400), "without_mask", 0.95)],  # ranked first, on an ignored face
             [Detection((0, 0, 100, 100), "without_mask", 0.5)]]
    result = coco_map(photos, found, CLASSES)
    assert (result["map50"], result["faces"]) == (1.0, 2)


def test_no_detection_at_all_is_a_map_of_zero_not_an_error():
    result = coco_map([_photo(((0, 0, 20, 20), "with_mask"))], [[]], CLASSES)
    assert (result["map50"], result["detections"], result["map50_by_size"]) == (0.0, 0, {"small": 0.0})


def test_records_become_detections_scored_by_finder_and_classifier_together():
    records = [{"path": "p", "box": [1, 2, 3, 4], "detection_score": 0.5, "label": "with_mask",
                "scores": {"with_mask": 0.8, "without_mask": 0.2}},
               {"path": "p", "label": None, "reason": "no face found"},
               {"path": "p", "box": [0, 0, 9, 9], "detection_score": None, "label": "without_mask",
                "scores": {"with_mask": 0.3, "without_mask": 0.7}}]  # a crop classified whole
    assert detections_of(records) == [Detection((1, 2, 3, 4), "with_mask", 0.4),
                                      Detection((0, 0, 9, 9), "without_mask", 0.7)]


def test_voc_photos_score_the_listed_faces_ignore_the_rest_and_name_what_cannot_be_read(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "annotations").mkdir()
    (tmp_path / "images" / "crowd.png").write_bytes(b"not decoded here")
    objects = [("with_mask", (0, 0, 10, 10)), ("mask_weared_incorrect", (20, 0, 30, 10)), ("hat", (40, 0, 50, 10))]
    (tmp_path / "annotations" / "crowd.xml").write_text(
        "<annotation><filename>crowd.png</filename><size><width>64</width><height>16</height><depth>3</depth>"
        "</size>" + "".join(f"<object><name>{n}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
                            f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>" for n, b in objects)
        + "</annotation>")
    (tmp_path / "annotations" / "lost.xml").write_text(
        "<annotation><filename>lost.png</filename><size><width>8</width><height>8</height></size></annotation>")
    faces = {str(tmp_path / "annotations" / "crowd.xml"): [0, 2], str(tmp_path / "annotations" / "lost.xml"): [0],
             str(tmp_path / "annotations" / "missing.xml"): [0]}
    photos, problems = voc_photos(faces, lambda name: name, CLASSES)
    # object 2 is listed but a hat is no class of the task; object 1 is another split's face
    assert photos == [AnnotatedPhoto(str(tmp_path / "images" / "crowd.png"), ((0, 0, 10, 10),), ("with_mask",),
                                     ((20, 0, 30, 10), (40, 0, 50, 10)))]
    assert len(problems) == 2 and "lost.xml: no image 'lost.png'" in problems[0] and "missing.xml" in problems[1]


@pytest.mark.parametrize("path", ["two-stage", "one-stage"])
def test_the_tool_scores_a_workspaces_annotated_and_cropped_test_photos_end_to_end(path, tmp_path, astronaut,
                                                                                astronaut_face):
    import json

    from conftest import write_untrained_model
    from faceocc.images import encode_png
    from faceocc.manifest import write_rows
    from tools import detection_map

    voc = tmp_path / "voc"
    (voc / "images").mkdir(parents=True)
    (voc / "annotations").mkdir()
    (voc / "images" / "a.png").write_bytes(encode_png(astronaut))
    x1, y1, x2, y2 = (round(v) for v in astronaut_face.box)
    (voc / "annotations" / "a.xml").write_text(
        f"<annotation><filename>a.png</filename><size><width>{astronaut.shape[1]}</width><height>"
        f"{astronaut.shape[0]}</height></size><object><name>with_mask</name><bndbox><xmin>{x1}</xmin><ymin>{y1}"
        f"</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object></annotation>")
    ws = tmp_path / "ws"
    (ws / "data" / "scrape").mkdir(parents=True)
    (ws / "data" / "split").mkdir(parents=True)
    (voc / "annotations" / "lost.xml").write_text(  # its photo is gone: named once, the rest still scored
        "<annotation><filename>lost.png</filename><size><width>8</width><height>8</height></size><object><name>"
        "with_mask</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>7</xmax><ymax>7</ymax></bndbox></object>"
        "</annotation>")
    # and a photo without annotations (occlusion4's kind): its face is the box the crop stage cut, its label the
    # photo's
    (ws / "data" / "scrape" / "b.png").write_bytes(encode_png(astronaut))
    (ws / "data" / "scrape" / "c.png").write_bytes(b"truncated")  # unreadable now: named, its face missed
    (ws / "data" / "crop").mkdir()
    write_rows(ws / "data" / "crop" / "crops.csv",
               [{"crop_id": f"{n}_0", "x1": x1, "y1": y1, "x2": x2, "y2": y2} for n in "bc"],
               ("crop_id", "x1", "y1", "x2", "y2"))
    write_rows(ws / "data" / "scrape" / "manifest.csv",
               [{"id": "f0", "origin": f"{voc / 'annotations' / 'a.xml'}#0"},
                {"id": "f1", "origin": f"{voc / 'annotations' / 'lost.xml'}#0"},
                {"id": "b", "file": "b.png", "origin": "b.png"}, {"id": "c", "file": "c.png", "origin": "c.png"}],
               ("id", "file", "origin"))
    write_rows(ws / "data" / "split" / "split.csv",
               [{"source_id": "f0", "split": "test"}, {"source_id": "f1", "split": "test"},
                {"source_id": "b", "crop_id": "b_0", "label": "with_mask", "split": "test"},
                {"source_id": "b", "crop_id": "b_1", "label": "with_mask", "split": "val"},
                {"source_id": "c", "crop_id": "c_0", "label": "with_mask", "split": "test"}],
               ("source_id", "crop_id", "label", "split"))
    (tmp_path / "model").mkdir()
    if path == "two-stage":
        model, flags = write_untrained_model(tmp_path / "model", CLASSES, task="mask_wearing"), []
    else:  # an untrained class branch on CenterFace, as detect_train writes it
        import onnx

        from faceocc.one_stage import class_branch, one_stage_graph
        from faceocc.one_stage_model import GRAPH_FILE, OneStageCard

        model, flags = tmp_path / "model", ["--one-stage"]
        onnx.save(one_stage_graph(class_branch(len(CLASSES), 16)), str(model / GRAPH_FILE))
        OneStageCard("mask_wearing", CLASSES, side=512, threshold=0.5, min_face=10).write(model)
    out = tmp_path / "record.json"
    assert detection_map.main(["--workspace", str(ws), "--model", str(model), *flags, "--json", str(out)]) == 1
    record = json.loads(out.read_text())
    assert record["path"] == path
    assert (record["photos"], record["faces"], record["found_right"]["found"]) == (3, 3, 2)
    # an untrained head labels the face anything, the same in both readable photos: the one scored class has an
    # AP exactly when both are right
    assert record["found_right"]["right"] in (0, 2) and (record["map50"] > 0) == (record["found_right"]["right"] > 0)
    assert record["photo_long_side_p50"] == max(astronaut.shape[:2])  # of the photos that could be read
    assert len(record["problems"]) == 2 and "lost.xml: no image 'lost.png'" in record["problems"][0]
    assert "c.png" in record["problems"][1]


def test_a_photo_scaled_to_a_long_side_gets_its_boxes_back_in_its_own_pixels():
    from tools.detection_map import at_long_side

    seen = []

    def whole_image(image, path):  # a "detector" that boxes the whole image it is given
        seen.append(image.shape[:2])
        return [{"path": path, "box": [0.0, 0.0, float(image.shape[1]), float(image.shape[0])], "label": "a"},
                {"path": path, "label": None, "reason": "too_small"}]

    photo = np.zeros((300, 1200, 3), np.uint8)
    records = at_long_side(whole_image, 640)(photo, "p.png")
    assert seen == [(160, 640)]
    assert records[0]["box"] == pytest.approx([0, 0, 1200, 300])
    assert records[1] == {"path": "p.png", "label": None, "reason": "too_small"}
