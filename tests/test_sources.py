"""The folder and PascalVOC sources: which face of a crop is the labelled one, and which photos belong together."""

import io
import json

import numpy as np
from PIL import Image

from faceocc.manifest import read_rows
from faceocc.sources import RawStore, folder_crops, list_folder, photo_series, store_folder, store_voc
from stages import scrape


def _jpeg(image: np.ndarray, path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=92)
    path.write_bytes(buf.getvalue())


def test_a_crops_csv_gives_each_crop_its_face_box_in_its_own_pixels_and_its_photo_as_identity(tmp_path, astronaut):
    # two crops of one photo (the second shrunk from 400 to 200 px) and a file the csv does not name
    _jpeg(astronaut[:400, :400], tmp_path / "sunglasses" / "ilc__p__200_150.jpg")
    _jpeg(np.ascontiguousarray(astronaut[50:450, 100:500][::2, ::2]), tmp_path / "sunglasses" / "ilc__p__300_250.jpg")
    _jpeg(astronaut[:100, :100], tmp_path / "sunglasses" / "other.jpg")
    (tmp_path / "crops.csv").write_text(
        "file,class,source_repo,source_path,face_box_xyxy,crop_box_xyxy\n"
        "sunglasses/ilc__p__200_150.jpg,sunglasses,owner/repo,JPEGImages/p.jpg,200 150 300 250,0 0 400 400\n"
        "sunglasses/ilc__p__300_250.jpg,sunglasses,owner/repo,JPEGImages/p.jpg,300 250 360 310,100 50 500 450\n")
    store = RawStore(tmp_path / "raw", ("face", "sunglasses"))
    store_folder(store, list_folder([tmp_path]), folder_crops(tmp_path))
    rows = {r["origin"].rsplit("/", 1)[1]: r for r in store.rows}
    assert json.loads(rows["ilc__p__200_150.jpg"]["annotation"]) == [{"box": [200.0, 150.0, 300.0, 250.0]}]
    assert json.loads(rows["ilc__p__300_250.jpg"]["annotation"]) == [{"box": [100.0, 100.0, 130.0, 130.0]}]
    assert rows["ilc__p__200_150.jpg"]["identity"] == rows["ilc__p__300_250.jpg"]["identity"] \
        == "owner/repo/JPEGImages/p.jpg"
    assert "annotation" not in rows["other.jpg"] and "identity" not in rows["other.jpg"]


def test_photos_of_one_shoot_form_a_series_and_a_stranger_stays_alone(tmp_path, astronaut, faceless):
    _jpeg(astronaut, tmp_path / "a.jpg")
    shifted = np.clip(astronaut.astype(int) + 12, 0, 255).astype(np.uint8)
    shifted[200:260, 180:300] = 0  # the same shot with something moved in front of the face
    _jpeg(shifted, tmp_path / "b.jpg")
    _jpeg(faceless, tmp_path / "c.jpg")
    (tmp_path / "d.jpg").write_bytes(b"not a picture")
    paths = sorted(tmp_path.glob("*.jpg"))
    series = photo_series(paths, max_bits=12)
    assert series == {tmp_path / "a.jpg": tmp_path / "a.jpg", tmp_path / "b.jpg": tmp_path / "a.jpg",
                      tmp_path / "c.jpg": tmp_path / "c.jpg"}
    assert photo_series(paths, max_bits=0)[tmp_path / "b.jpg"] == tmp_path / "b.jpg"


def _voc(root, stem: str, image: np.ndarray, label: str) -> None:
    _jpeg(image, root / "images" / f"{stem}.jpg")
    h, w = image.shape[:2]
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / f"{stem}.xml").write_text(
        f"<annotation><filename>{stem}.jpg</filename><size><width>{w}</width><height>{h}</height><depth>3</depth>"
        f"</size><object><name>{label}</name><bndbox><xmin>150</xmin><ymin>60</ymin><xmax>330</xmax><ymax>280</ymax>"
        "</bndbox></object></annotation>")


def test_the_scrape_names_a_voc_photos_series_as_the_identity_the_split_groups_by(tmp_path, astronaut, faceless):
    root = tmp_path / "voc"
    _voc(root, "shoot1", astronaut, "with_mask")
    shifted = np.clip(astronaut.astype(int) + 12, 0, 255).astype(np.uint8)
    _voc(root, "shoot2", shifted, "mask_weared_incorrect")
    _voc(root, "street", faceless, "without_mask")
    params = tmp_path / "params.yaml"
    params.write_text(json.dumps({"scrape": {"source": "folder", "task": "mask_wearing",
                                             "folder": {"roots": [str(root)]}}}))
    metrics = tmp_path / "scrape.json"
    scrape.main(["--out", str(tmp_path / "raw"), "--cache", str(tmp_path / "cache"), "--metrics", str(metrics),
                 "--params", str(params)])
    identity = {r["origin"].rsplit("/", 1)[1]: r["identity"] for r in read_rows(tmp_path / "raw" / "manifest.csv")}
    assert identity == {"shoot1.xml#0": "voc/shoot1", "shoot2.xml#0": "voc/shoot1", "street.xml#0": "voc/street"}
    assert json.loads(metrics.read_text())["grouping"] == {
        "voc": {"photos": 3, "series_bits": 12, "series_of_two_or_more": 1, "photos_in_them": 2}}


def test_a_voc_filename_pointing_outside_the_images_folder_is_not_read(tmp_path, astronaut):
    _voc(tmp_path / "voc", "p", astronaut[:400, :400], "with_mask")
    _jpeg(astronaut[:400, :400], tmp_path / "secret.jpg")
    xml = tmp_path / "voc" / "annotations" / "p.xml"
    for k, name in enumerate(("../../secret.jpg", str(tmp_path / "secret.jpg"))):
        xml.write_text(xml.read_text().replace("<filename>p.jpg</filename>" if k == 0 else
                                               "<filename>../../secret.jpg</filename>", f"<filename>{name}</filename>"))
        store = RawStore(tmp_path / f"raw{k}", ("with_mask", "without_mask"))
        store_voc(store, tmp_path / "voc", [xml])
        (row,) = store.rows
        assert row["outcome"] == "bad_annotation" and "points outside images/" in row["detail"], row
