"""Stage entry points run in-process on tiny generated inputs, as `dvc repro` would run them."""

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from faceocc.manifest import read_rows
from stages import crop, scrape
from stages._common import data_root

ROOT = Path(__file__).resolve().parents[1]


def write_params(path, **sections):
    path.write_text(yaml.safe_dump(sections))
    return str(path)


def run_scrape(out: str, metrics: str, params: str, tmp_path) -> None:
    scrape.main(["--out", out, "--cache", str(tmp_path / "web_cache"), "--metrics", metrics, "--params", params])


def _jpeg(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=92)
    return buf.getvalue()


@pytest.fixture
def labelled_folder(tmp_path, astronaut, faceless):
    """A folder source with the odd files real data sets hold."""
    root = tmp_path / "photos"
    for label in ("face", "masked", "not_a_class"):
        (root / label).mkdir(parents=True)
    (root / "face" / "portrait.jpg").write_bytes(_jpeg(astronaut))
    (root / "face" / "portrait_copy.jpg").write_bytes(_jpeg(astronaut))  # same bytes: stored once
    (root / "face" / "scene.jpg").write_bytes(_jpeg(faceless))
    (root / "face" / "tiny.png").write_bytes(_png(np.full((8, 8, 3), 90, np.uint8)))
    (root / "face" / "notes.txt").write_text("not an image")
    (root / "masked" / "truncated.jpg").write_bytes(_jpeg(astronaut)[:3000])
    (root / "masked" / "fake.png").write_bytes(b"<html>404</html>")
    cmyk = io.BytesIO()
    Image.fromarray(astronaut).convert("CMYK").save(cmyk, format="JPEG")
    (root / "masked" / "cmyk.jpg").write_bytes(cmyk.getvalue())
    rgba = io.BytesIO()
    Image.fromarray(astronaut).convert("RGBA").save(rgba, format="PNG")
    (root / "masked" / "alpha.png").write_bytes(rgba.getvalue())
    (root / "not_a_class" / "x.jpg").write_bytes(_jpeg(faceless[:50, :50]))
    grey = io.BytesIO()
    Image.fromarray(astronaut).convert("L").save(grey, format="JPEG")
    (root / "masked" / "grey.jpg").write_bytes(grey.getvalue())
    # stored lying on its side with an EXIF tag telling viewers to turn it upright (phone photos do this)
    exif = Image.Exif()
    exif[0x0112] = 8  # rotate 90 degrees counter-clockwise to view
    sideways = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(np.rot90(astronaut, k=-1))).save(sideways, format="JPEG", exif=exif)
    (root / "masked" / "exif_rotated.jpg").write_bytes(sideways.getvalue())
    return root


def _png(image):
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def test_folder_scrape_then_crop_gives_every_file_an_outcome(tmp_path, labelled_folder):
    params = write_params(
        tmp_path / "params.yaml",
        scrape={"source": "folder", "folder": {"roots": [str(labelled_folder)]}},
        crop={"batch_size": 4, "threads": 1, "device": "cpu"},
    )
    raw, crops = tmp_path / "raw", tmp_path / "crop"
    run_scrape(str(raw), str(tmp_path / "scrape.json"), params, tmp_path)

    rows = read_rows(raw / "manifest.csv")
    by_name = {r["origin"].split("/")[-1]: r for r in rows}
    assert len(rows) == 12  # every file, whatever became of it
    assert by_name["notes.txt"]["outcome"] == "not_an_image"  # by content: the suffix says nothing
    assert by_name["fake.png"]["outcome"] == "not_an_image"
    assert by_name["portrait_copy.jpg"]["outcome"] == "duplicate"
    assert by_name["x.jpg"]["outcome"] == "unknown_label"
    assert json.loads((tmp_path / "scrape.json").read_text())["stored_per_label"] == {
        "face": 3, "masked": 5, "sunglasses": 0, "mask_sunglasses": 0}

    (tmp_path / ".crop.killed.tmp" / "crop").mkdir(parents=True)  # what a SIGKILLed crop run leaves
    crop.main(["--raw", str(raw), "--out", str(crops), "--metrics", str(tmp_path / "crop.json"),
               "--samples", str(tmp_path / "samples.png"), "--misses", str(tmp_path / "misses.png"),
               "--params", params])
    assert not (tmp_path / ".crop.killed.tmp").exists()
    outcomes = {r["file"].split("/")[-1]: r["outcome"] for r in read_rows(crops / "outcomes.csv")}
    stored = {r["file"].split("/")[-1]: r["origin"].split("/")[-1] for r in rows if r["file"]}
    named = {stored[k]: v for k, v in outcomes.items()}
    assert named["portrait.jpg"] == "kept"
    assert named["cmyk.jpg"] == "kept" and named["alpha.png"] == "kept" and named["grey.jpg"] == "kept"
    assert named["exif_rotated.jpg"] == "kept"
    assert named["scene.jpg"] == "no_face" and named["tiny.png"] == "no_face"
    assert named["truncated.jpg"].startswith("decode_error: corrupt image")

    crop_rows = read_rows(crops / "crops.csv")
    assert len(crop_rows) == 5
    for row in crop_rows:
        image = Image.open(crops / "faces" / row["file"])
        assert image.size == (112, 112)
        assert 0 < float(row["crop_nose_x"]) < 112 and 0 < float(row["crop_nose_y"]) < 112
        # upright, the EXIF-rotated one included: eyes above the mouth
        assert float(row["crop_left_eye_y"]) < float(row["crop_mouth_left_y"])
    metrics = json.loads((tmp_path / "crop.json").read_text())
    assert metrics["by_label"]["face"]["outcomes"] == {"kept": 1, "no_face": 2, "too_small": 0, "decode_error": 0,
                                                         "detect_error": 0}
    assert metrics["by_label"]["masked"]["detection_rate_after_second_pass"] == 1.0  # 4 of 4 decodable
    assert Image.open(tmp_path / "samples.png").size[0] > 0
    # the gallery of misses: the two photos without a face (scene.jpg, tiny.png), not the corrupt one
    misses = np.asarray(Image.open(tmp_path / "misses.png").convert("RGB"))
    tiles = [misses[24:136, i * 112:(i + 1) * 112] for i in range(3)]
    assert misses.shape[0] == 24 + 112 + 14 and [bool((t < 250).any()) for t in tiles] == [True, True, False]
    # a second run writes the same metrics byte for byte (no throughput or machine facts), so a re-run of
    # the DAG leaves dvc.lock and the committed reports alone
    crop.main(["--raw", str(raw), "--out", str(tmp_path / "crops_again"), "--metrics",
               str(tmp_path / "crop_again.json"), "--params", params])
    assert (tmp_path / "crop_again.json").read_bytes() == (tmp_path / "crop.json").read_bytes()


def test_demo_scrape_is_byte_identical_across_runs(tmp_path):
    params = write_params(tmp_path / "params.yaml",
                          scrape={"demo": {"images_per_class": 1, "image_size": 128, "faceless_images": 1}})
    for run in ("a", "b"):
        run_scrape(str(tmp_path / run), str(tmp_path / f"{run}.json"), params, tmp_path)
    a, b = read_rows(tmp_path / "a" / "manifest.csv"), read_rows(tmp_path / "b" / "manifest.csv")
    assert len(a) == 5 and a == b
    assert {r["source"] for r in a} == {"demo"}


def test_outputs_are_replaced_whole_never_merged(tmp_path, labelled_folder):
    params = write_params(tmp_path / "params.yaml",
                          scrape={"source": "folder", "folder": {"roots": [str(labelled_folder)]}})
    out = tmp_path / "raw"
    out.mkdir()
    (out / "stale.txt").write_text("left over from an earlier run")
    run_scrape(str(out), str(tmp_path / "m.json"), params, tmp_path)
    assert not (out / "stale.txt").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".raw.")]  # no temp dirs left behind


def test_a_typo_in_params_fails_naming_the_key(tmp_path, capsys):
    params = write_params(tmp_path / "params.yaml", scrape={"sorce": "demo"})
    with pytest.raises(SystemExit) as stopped:
        run_scrape(str(tmp_path / "o"), str(tmp_path / "m.json"), params, tmp_path)
    assert stopped.value.code == 2
    assert "scrape: unknown key(s) ['sorce']" in capsys.readouterr().err


def test_a_missing_folder_root_ends_the_scrape_with_one_line_naming_it(tmp_path, capsys):
    params = write_params(tmp_path / "params.yaml",
                          scrape={"source": "folder", "folder": {"roots": [str(tmp_path / "nowhere")]}})
    with pytest.raises(SystemExit) as stopped:
        run_scrape(str(tmp_path / "o"), str(tmp_path / "m.json"), params, tmp_path)
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(f"scrape.folder.roots: {tmp_path / 'nowhere'} is not a directory")
    assert not (tmp_path / "o").exists()


def test_a_root_outside_the_project_is_read_from_the_project_dvc_names(tmp_path, monkeypatch):
    """A queued experiment runs in a copy under .dvc/tmp/exps; DVC_ROOT names the project it was queued from."""
    copy = tmp_path / "project" / ".dvc" / "tmp" / "exps" / "standalone" / "tmp1"
    copy.mkdir(parents=True)
    monkeypatch.chdir(copy)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "project"))
    assert (copy / data_root("../shared/photos")).resolve() == tmp_path / "shared" / "photos"
    assert data_root("data/own") == Path("data/own")  # inside the project: the experiment's own copy
    assert data_root(tmp_path / "abs") == tmp_path / "abs"
    monkeypatch.delenv("DVC_ROOT")
    assert data_root("../shared/photos") == Path("../shared/photos")  # run by hand: the working directory


def test_stage_logs_keep_named_info_and_drop_info_third_parties_put_on_the_root_logger():
    script = ("import logging; from stages._common import setup_logging; setup_logging(); "
              "logging.info('Quantization parameters for tensor x'); logging.getLogger('train').info('epoch 1'); "
              "logging.warning('a warning on the root logger')")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stderr.splitlines() == ["INFO train: epoch 1", "WARNING root: a warning on the root logger"]
