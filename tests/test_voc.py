"""PascalVOC parsing (bad files, boxes outside the image) and recall of annotated boxes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from faceocc.boxes import iou_matrix
from faceocc.voc import VocError, matched, parse_voc
from stages import mask_detection_recall

GOOD = """<annotation><filename>a.jpg</filename><size><width>200</width><height>100</height><depth>3</depth></size>
<object><name>with_mask</name><bndbox><xmin>10</xmin><ymin>10</ymin><xmax>40</xmax><ymax>50</ymax></bndbox></object>
<object><name>without_mask</name><bndbox><xmin>180</xmin><ymin>-5</ymin><xmax>230</xmax><ymax>30</ymax></bndbox></object>
<object><name>mask_weared_incorrect</name><bndbox><xmin>250</xmin><ymin>10</ymin><xmax>260</xmax><ymax>20</ymax></bndbox></object>
<object><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object>
<object><name>with_mask</name></object>
</annotation>"""


def test_boxes_are_clipped_to_the_image_and_unusable_objects_are_listed(tmp_path):
    (tmp_path / "a.xml").write_text(GOOD)
    note = parse_voc(tmp_path / "a.xml")
    assert (note.filename, note.width, note.height) == ("a.jpg", 200, 100)
    assert [(o.name, o.box, o.clipped) for o in note.objects] == [
        ("with_mask", (10.0, 10.0, 40.0, 50.0), False), ("without_mask", (180.0, 0.0, 200.0, 30.0), True)]
    assert len(note.dropped) == 3 and "no area inside the 200x100 image" in note.dropped[0]
    assert "no <name>" in note.dropped[1] and "missing <xmin>" in note.dropped[2]


@pytest.mark.parametrize("text, reason", [
    ("<annotation><object>", "not a readable VOC XML file"),
    ("", "not a readable VOC XML file"),
    ("<annotation><filename>a.jpg</filename></annotation>", "no usable image size"),
    ("<annotation><size><width>0</width><height>5</height></size></annotation>", "image size 0x5"),
    ("<?xml version='1.0'?><!DOCTYPE a [<!ENTITY x 'xxxxxxxxxx'><!ENTITY y '&x;&x;&x;&x;&x;&x;&x;&x;&x;&x;'>"
     "<!ENTITY z '&y;&y;&y;&y;&y;&y;&y;&y;&y;&y;'>]><annotation><filename>&z;&z;&z;</filename></annotation>",
     "no usable image size"),  # entities expand harmlessly at this size; expat refuses real bombs
])
def test_a_bad_annotation_file_is_one_line_naming_it(tmp_path, text, reason):
    path = tmp_path / "bad name.xml"
    path.write_text(text)
    with pytest.raises(VocError, match=reason) as err:
        parse_voc(path)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)


def test_each_detection_finds_at_most_one_box():
    truth = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]])
    detected = np.array([[0, 0, 10, 10], [100, 100, 120, 120]])
    assert iou_matrix(truth, detected)[0, 0] == pytest.approx(1.0)
    assert matched(truth, detected).tolist() == [True, False, False]
    assert matched(truth, np.empty((0, 4))).tolist() == [False] * 3


def test_stage_counts_recall_per_class_and_size_on_a_real_photo(tmp_path, astronaut, astronaut_face):
    from faceocc.images import encode_png

    (tmp_path / "images").mkdir()
    (tmp_path / "annotations").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(encode_png(astronaut))
    face = astronaut_face.box
    h, w = astronaut.shape[:2]
    (tmp_path / "annotations" / "a.xml").write_text(
        f"<annotation><filename>a.png</filename><size><width>{w}</width><height>{h}</height></size>"
        f"<object><name>without_mask</name><bndbox><xmin>{face[0]:.0f}</xmin><ymin>{face[1]:.0f}</ymin>"
        f"<xmax>{face[2]:.0f}</xmax><ymax>{face[3]:.0f}</ymax></bndbox></object>"
        "<object><name>with_mask</name><bndbox><xmin>0</xmin><ymin>400</ymin><xmax>12</xmax><ymax>412</ymax>"
        "</bndbox></object></annotation>")
    (tmp_path / "annotations" / "broken.xml").write_text("<annotation>")
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"mask_detection_recall": {"root": str(tmp_path)}}))
    mask_detection_recall.main(["--metrics", str(tmp_path / "m.json"), "--out", str(tmp_path / "m.md"),
                                "--params", str(params)])
    figures = json.loads((tmp_path / "m.json").read_text())
    recall = figures["recall"]["with_second_pass"]
    assert recall["without_mask"]["recall"] == 1.0 and recall["with_mask"]["recall"] == 0.0
    assert recall["with_mask 0-20 px"]["boxes"] == 1 and figures["unusable_files"] == 1
    assert "| all | 2 | 50.0% | 50.0% |" in (tmp_path / "m.md").read_text()


def test_stage_without_the_data_says_skipped(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"mask_detection_recall": {"root": str(tmp_path / "absent")}}))
    mask_detection_recall.main(["--metrics", str(tmp_path / "m.json"), "--out", str(tmp_path / "m.md"),
                                "--params", str(params)])
    assert "skipped" in json.loads((tmp_path / "m.json").read_text())
