"""dedup -> curate -> split -> balance: clusters, conflicts, overrides, leakage-free splits, balancing counts."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from conftest import run_data_stages
from PIL import Image

from faceocc.balancing import match_resolution, plan_counts, source_side
from faceocc.cropping import CropGeometry, crop_face
from faceocc.curation import OverrideError, QualityFilter, curate, read_overrides
from faceocc.dedup import (
    align_face,
    cluster,
    hamming,
    near_pairs,
    perceptual_hash,
    pixel_hash,
)
from faceocc.faces import LANDMARK_NAMES
from faceocc.batch_cropping import CROP_COLUMNS
from faceocc.manifest import read_rows, write_rows
from faceocc.sources import RAW_COLUMNS
from faceocc.splitting import assign_splits, group_items
from faceocc.tasks import OCCLUSION4, write_task_file

CLASSES = ("face", "masked", "sunglasses", "mask_sunglasses")
# where a 112 px crop of an upright face has its landmarks (what the crop stage records)
CROP_LANDMARKS = ((38.0, 46.0), (74.0, 46.0), (56.0, 66.0), (42.0, 86.0), (70.0, 86.0))


def blob_image(seed: int, size: int = 112) -> np.ndarray:
    """A smooth random picture: structurally unlike any other seed's, as two different photos are."""
    coarse = np.random.default_rng(seed).integers(0, 255, (6, 6, 3), dtype=np.uint8)
    return cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)


def resized(image, side=70):
    return cv2.resize(cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA), image.shape[:2][::-1],
                      interpolation=cv2.INTER_LINEAR)


def reencoded(image, quality=45):
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def shifted_crop(image, landmarks, px=4):
    """A crop box a few pixels off, as MTCNN gives for another copy of a photo; the landmarks follow the face."""
    h, w = image.shape[:2]
    scale = w / (w - px)
    return cv2.resize(image[px:, px:], (w, h), interpolation=cv2.INTER_LINEAR), (np.asarray(landmarks) - px) * scale


def test_resized_reencoded_and_slightly_cropped_copies_are_near_duplicates_and_strangers_are_not(astronaut_face,
                                                                                                    astronaut):
    crop, landmarks = crop_face(astronaut, astronaut_face, CropGeometry())
    shifted, shifted_landmarks = shifted_crop(crop, landmarks)
    copies = [(resized(crop), landmarks), (reencoded(crop), landmarks), (shifted, shifted_landmarks),
              (reencoded(shifted), shifted_landmarks)]
    strangers = [(blob_image(s), CROP_LANDMARKS) for s in range(2, 40)]
    hashes = [perceptual_hash(align_face(im, lm)) for im, lm in [(crop, landmarks), *copies, *strangers]]
    labels = cluster(np.array(hashes, np.uint64), 4)
    assert set(labels[:5]) == {labels[0]}
    assert len(set(labels[5:])) == len(strangers) and labels[0] not in set(labels[5:])


def test_the_index_finds_exactly_the_pairs_an_all_pairs_comparison_finds():
    rng = np.random.default_rng(3)
    base = rng.integers(0, 2**63, 1500, dtype=np.uint64)
    near = base[:400] ^ (np.uint64(1) << rng.integers(0, 63, 400).astype(np.uint64))
    far = base[:200] ^ np.uint64(0b1011011101)  # 7 bits away
    hashes = np.concatenate([base, near, far, base[:5]])  # and a few exact repeats
    for distance in (0, 3, 6, 8, 11):
        i, j = np.triu_indices(len(hashes), 1)
        brute = np.stack([i, j], axis=1)[hamming(hashes[i], hashes[j]) <= distance]
        assert np.array_equal(near_pairs(hashes, distance), brute), distance


def test_pixel_hash_ignores_container_bytes():
    image = blob_image(5)
    png_a, png_b = io.BytesIO(), io.BytesIO()
    Image.fromarray(image).save(png_a, "PNG", compress_level=1)
    Image.fromarray(image).save(png_b, "PNG", compress_level=9)
    assert png_a.getvalue() != png_b.getvalue()
    decoded = [np.asarray(Image.open(io.BytesIO(b.getvalue()))) for b in (png_a, png_b)]
    assert pixel_hash(decoded[0]) == pixel_hash(decoded[1])


def test_strategies_give_the_stated_counts():
    counts = {"face": 900, "masked": 400, "sunglasses": 300, "mask_sunglasses": 50}
    none = plan_counts(counts, "none")
    assert {c: (p.keep, p.extra) for c, p in none.items()} == {c: (n, 0) for c, n in counts.items()}
    under = plan_counts(counts, "undersample")
    assert {c: (p.keep, p.extra) for c, p in under.items()} == {c: (50, 0) for c in counts}
    over = plan_counts(counts, "oversample", target=400, augment_ratio=3)
    assert {c: (p.keep, p.extra) for c, p in over.items()} == {
        "face": (400, 0),              # majority cut to the target
        "masked": (400, 0),            # at the target: kept
        "sunglasses": (300, 100),      # grown to the target
        "mask_sunglasses": (50, 150),  # grown, but never more than 1:3
    }
    median = plan_counts(counts, "oversample")  # target 0: the median class count (350)
    assert median["face"].keep == 350 and median["sunglasses"].keep == 300 and median["sunglasses"].extra == 50


def test_overrides_exclude_relabel_include_and_settle_conflicts(tmp_path):
    path = tmp_path / "overrides.csv"
    path.write_text("# comment lines are allowed\nid,action,label,reason\n"
                    "aaaaaaaaaaaaaaaa_0,exclude,,a drawing\n"
                    "bbbbbbbbbbbbbbbb_0,relabel,mask_sunglasses,lenses under the mask edge\n"
                    + "c" * 64 + ",include,,small but clear\n"
                    "dddddddddddddddd_0,relabel,masked,conflict settled\n"
                    "eeeeeeeeeeeeeeee_0,exclude,,no longer exists\n")
    overrides = read_overrides(path, CLASSES)
    base = {"face_px": "100", "probability": "0.99", "sharpness": "80", "dedup_outcome": "kept"}
    items = [{**base, "crop_id": "aaaaaaaaaaaaaaaa_0", "source_id": "aaaaaaaaaaaaaaaa", "label": "face"},
             {**base, "crop_id": "bbbbbbbbbbbbbbbb_0", "source_id": "bbbbbbbbbbbbbbbb", "label": "masked"},
             {**base, "crop_id": "cccccccccccccccc_1", "source_id": "cccccccccccccccc", "label": "face",
              "face_px": "12"},
             {**base, "crop_id": "dddddddddddddddd_0", "source_id": "dddddddddddddddd", "label": "face",
              "dedup_outcome": "label_conflict"},
             {**base, "crop_id": "ffffffffffffffff_0", "source_id": "ffffffffffffffff", "label": "face",
              "dedup_outcome": "label_conflict"},
             {**base, "crop_id": "0000000000000000_0", "source_id": "0000000000000000", "label": "face",
              "face_px": "12"}]
    rows, unmatched = curate(items, overrides, QualityFilter(min_face_px=40))
    got = {r["crop_id"][:4]: (r["outcome"], r["label"]) for r in rows}
    assert got == {"aaaa": ("excluded_by_override", "face"), "bbbb": ("kept", "mask_sunglasses"),
                   "cccc": ("kept", "face"), "dddd": ("kept", "masked"), "ffff": ("label_conflict", "face"),
                   "0000": ("too_small", "face")}
    assert unmatched == ["eeeeeeeeeeeeeeee_0"]


@pytest.mark.parametrize("line, message", [
    ("xyz,exclude,,why", "neither a crop id"),
    ("aaaaaaaaaaaaaaaa_0,delete,,why", "action 'delete'"),
    ("aaaaaaaaaaaaaaaa_0,relabel,cat,why", "relabel needs a label"),
    ("aaaaaaaaaaaaaaaa_0,exclude,,", "give a reason"),
])
def test_a_malformed_override_names_its_line(tmp_path, line, message):
    path = tmp_path / "overrides.csv"
    path.write_text(f"id,action,label,reason\n{line}\n")
    with pytest.raises(OverrideError, match=rf"overrides.csv:2: .*{message}"):
        read_overrides(path, CLASSES)


def test_groups_never_straddle_splits_and_classes_are_stratified():
    items = []
    for k in range(200):
        label = CLASSES[k % 4]
        items.append({"crop_id": f"{k:016x}_0", "source_id": f"{k // 2:016x}", "label": label,
                      "identity": f"person{k // 10}" if k < 100 else "", "cluster": str(k)})
    groups = group_items(items, ("source_id", "cluster", "identity"))
    splits = assign_splits(items, groups, (0.7, 0.15, 0.15), seed=0)
    by_key: dict[tuple, set] = {}
    for item, s in zip(items, splits):
        for key in ("source_id", "identity"):
            if item[key]:
                by_key.setdefault((key, item[key]), set()).add(s)
    assert all(len(v) == 1 for v in by_key.values())
    for label in CLASSES:
        mine = [s for item, s in zip(items, splits) if item["label"] == label]
        assert 0.55 <= mine.count("train") / len(mine) <= 0.85 and mine.count("test") >= 3
    assert assign_splits(items, groups, (0.7, 0.15, 0.15), seed=0) == splits
    assert assign_splits(items, groups, (0.7, 0.15, 0.15), seed=1) != splits


# -- the four stages on a generated crop folder ---------------------------------------------------------------


OTHER_SOURCE = {3, 30, 45}  # entries from a second source: a face (whose identity shares a group), a masked,
                             # a sunglasses one


def make_crops(root: Path, source_scale: float = 1.0) -> None:
    """A crop-stage output: distinct pictures per class, plus copies a scraped set has. `source_scale`: source
    pixels per crop pixel (0.25: each crop was enlarged 4x from its photo)."""
    faces, crop_rows, raw_rows = root / "crop" / "faces", [], []
    seed = 100
    entries = []  # (label, image, identity, probability, face_px)
    for label, n in (("face", 24), ("masked", 16), ("sunglasses", 14), ("mask_sunglasses", 5)):
        for k in range(n):
            seed += 1
            entries.append((label, blob_image(seed), f"{label}-person{k // 2}" if label == "face" else "", 0.99, 120))
    original = blob_image(7)
    entries += [("face", original, "", 0.999, 200), ("face", resized(original), "", 0.99, 80),
                ("face", reencoded(original), "", 0.98, 200),         # a chain of copies: one cluster
                ("masked", blob_image(8), "", 0.99, 150), ("face", reencoded(blob_image(8)), "", 0.99, 150),
                ("face", blob_image(9), "", 0.99, 20),                # too small
                ("face", blob_image(10), "", 0.5, 150)]               # unsure detection
    for n, (label, image, identity, probability, face_px) in enumerate(entries):
        source_id = f"{n:016x}"
        crop_id = f"{source_id}_0"
        (faces / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(faces / label / f"{crop_id}.png")
        row = {"crop_id": crop_id, "source_id": source_id, "label": label, "file": f"{label}/{crop_id}.png",
               "x1": 10, "y1": 10, "x2": 10 + face_px, "y2": 10 + face_px * 1.2, "probability": probability,
               "detection_pass": 1}
        for name, (x, y) in zip(LANDMARK_NAMES, CROP_LANDMARKS):
            row.update({f"{name}_x": x * source_scale, f"{name}_y": y * source_scale, f"crop_{name}_x": x,
                        f"crop_{name}_y": y})
        crop_rows.append(row)
        # file names carry a source tag as the shared datasets' do; "other" marks one whole source
        tag = "other" if n in OTHER_SOURCE else "main"
        raw_rows.append({"id": source_id, "label": label, "identity": identity, "outcome": "ok",
                         "origin": f"photos/{label}/{tag}__{n}.jpg"})
    write_rows(root / "crop" / "crops.csv", crop_rows, CROP_COLUMNS)
    (root / "scrape").mkdir()
    write_rows(root / "scrape" / "manifest.csv", raw_rows, RAW_COLUMNS)
    for stage in ("scrape", "crop"):  # as the scrape records the task and the crop carries it forward
        write_task_file(root / stage, OCCLUSION4)


def run_stages(root: Path, overrides: str = "id,action,label,reason\n", split_params: dict | None = None,
               **balance_params) -> dict:
    params = root / "params.yaml"
    params.write_text(yaml.safe_dump({"dedup": {}, "curate": {"quality": {"min_sharpness": 0.0}},
                                      "split": split_params or {}, "balance": balance_params}))
    (root / "overrides.csv").write_text(overrides)
    return run_data_stages(root, str(params))


@pytest.fixture
def pipeline(tmp_path):
    make_crops(tmp_path)
    return tmp_path, run_stages(tmp_path)


def test_copies_collapse_to_the_best_copy_and_conflicts_are_reported(pipeline):
    root, metrics = pipeline
    items = {r["crop_id"][:16]: r for r in read_rows(root / "dedup" / "items.csv")}
    chain = [items[f"{n:016x}"] for n in (59, 60, 61)]
    assert {r["cluster"] for r in chain} == {chain[0]["cluster"]} and chain[0]["cluster_size"] == "3"
    assert [r["outcome"] for r in chain] == ["kept", "near_duplicate", "near_duplicate"]  # largest face wins
    conflict = [items[f"{n:016x}"] for n in (62, 63)]
    assert sorted(r["outcome"] for r in conflict) == ["label_conflict", "near_duplicate"]
    assert metrics["dedup"]["label_conflict_clusters"] == 1
    assert metrics["curate"]["outcomes"]["label_conflict"] == 1
    assert metrics["curate"]["outcomes"]["too_small"] == 1 and metrics["curate"]["outcomes"]["low_probability"] == 1
    clusters = read_rows(root / "dedup" / "clusters.csv")
    assert {c["labels"] for c in clusters} == {"face", "face;masked"}
    assert sum(metrics["dedup"]["outcomes"].values()) == 66


def test_split_keeps_identities_together_and_reports_zero_cross_split_duplicates(pipeline):
    root, metrics = pipeline
    rows = read_rows(root / "split" / "split.csv")
    assert metrics["split"]["cross_split_near_duplicates"] == 0
    people: dict[str, set] = {}
    for r in rows:
        if r["identity"]:
            people.setdefault(r["identity"], set()).add(r["split"])
    assert len(people) == 12 and all(len(s) == 1 for s in people.values())
    assert sum(metrics["split"]["totals"].values()) == metrics["curate"]["outcomes"]["kept"] == 60


def test_balance_grows_the_rare_class_with_synthetic_and_augmented_train_images_only(pipeline):
    root, metrics = pipeline
    split_rows = read_rows(root / "split" / "split.csv")
    held_out = {r["crop_id"] for r in split_rows if r["split"] != "train"}
    train_rows = read_rows(root / "balance" / "train.csv")
    assert not {r["origin"] for r in train_rows} & held_out  # nothing derived from val/test
    assert not {r["id"] for r in train_rows} & held_out
    kinds = {r["kind"] for r in train_rows}
    assert kinds == {"original", "synthetic", "augmented"}
    synthetic = [r for r in train_rows if r["kind"] == "synthetic"]
    assert synthetic and {r["label"] for r in synthetic} == {"mask_sunglasses"}
    assert all((root / "balance" / r["file"]).is_file() for r in train_rows if r["root"] == "balance")
    assert len(list((root / "balance" / "images").rglob("*.png"))) == sum(r["root"] == "balance" for r in train_rows)
    assert Image.open(root / "samples.png").size[0] > 0 and Image.open(root / "counts.png").size[0] > 0
    after = metrics["balance"]["after"]
    assert len(set(after.values())) == 1  # oversample to the median: every class at the same count
    # the split's val/test rows are untouched by balancing: only originals, as split.csv lists them
    assert all(r["split"] in ("train", "val", "test") for r in split_rows)


def _detail(image: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())


def test_a_crops_source_side_is_read_from_its_landmarks_in_both_frames():
    crop_points = np.array(CROP_LANDMARKS, float)
    assert source_side(crop_points * 0.25 + 40, crop_points, 112) == pytest.approx(28)
    assert source_side(np.zeros((5, 2)), crop_points, 112) is None  # no spread: no scale to read


def test_matching_resolution_softens_an_enlarged_crop_and_leaves_a_shrunk_one_alone():
    sharp = np.random.default_rng(3).integers(0, 255, (112, 112, 3), dtype=np.uint8)  # detail at every pixel
    assert match_resolution(sharp, 300) is sharp
    soft = match_resolution(sharp, 28)
    assert soft.shape == sharp.shape and _detail(soft) < 0.3 * _detail(sharp)


def test_synthetic_occluders_are_drawn_at_the_detail_of_a_small_source_face(tmp_path):
    synthetic = []
    for run, scale in (("sharp", 1.0), ("small", 0.25)):
        make_crops(tmp_path / run, source_scale=scale)
        run_stages(tmp_path / run)
        rows = [r for r in read_rows(tmp_path / run / "balance" / "train.csv") if r["kind"] == "synthetic"]
        synthetic.append({r["id"]: np.asarray(Image.open(tmp_path / run / "balance" / r["file"])) for r in rows})
    assert synthetic[0].keys() == synthetic[1].keys() and synthetic[0]
    for item_id, sharp in synthetic[0].items():  # the same occluder on the same face, but from a 28 px photo face
        assert _detail(synthetic[1][item_id]) < 0.5 * _detail(sharp)


def test_same_seed_same_bytes_and_another_strategy_other_counts(tmp_path):
    outputs = []
    for run in ("a", "b"):
        make_crops(tmp_path / run)
        run_stages(tmp_path / run)
        folder = tmp_path / run
        outputs.append({str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
                        if p.is_file() and p.suffix in (".csv", ".png") and "sheets" not in p.parts})
    assert outputs[0].keys() == outputs[1].keys() and outputs[0] == outputs[1]

    make_crops(tmp_path / "u")
    metrics = run_stages(tmp_path / "u", strategy="undersample", synthetic={"enabled": False})
    smallest = min(v for v in metrics["balance"]["before"].values() if v)
    assert set(metrics["balance"]["after"].values()) == {smallest}
    assert metrics["balance"]["kinds"] == {"original": 4 * smallest, "synthetic": 0, "augmented": 0}
