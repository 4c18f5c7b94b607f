"""Cross-validation over train + val (`python -m tools.crossval`): folds, settings, the decision-rule fit, and
a small run end to end."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pytest
import yaml
from test_data_quality import make_crops, run_stages

from tools import crossval
from faceocc.finder import FinderSettings
from faceocc.manifest import read_rows


def test_folds_keep_each_group_whole_and_spread_a_rare_class_over_every_fold():
    rng = np.random.default_rng(0)
    groups = [g for g in range(120) for _ in range(rng.integers(1, 4))]
    labels = ["rare" if g % 12 == 0 else "common" for g in groups]
    folds = crossval.assign_folds(labels, groups, 5, seed=0)
    fold_of_group = defaultdict(set)
    for g, f in zip(groups, folds):
        fold_of_group[g].add(f)
    assert all(len(f) == 1 for f in fold_of_group.values()) and set(folds) == set(range(5))
    rare_per_fold = [sum(1 for f, lab in zip(folds, labels) if f == k and lab == "rare") for k in range(5)]
    assert min(rare_per_fold) >= 1
    assert folds == crossval.assign_folds(labels, groups, 5, seed=0)  # a seed gives one assignment


def test_too_few_groups_for_the_folds_is_refused():
    with pytest.raises(ValueError, match="3 groups cannot fill 5 folds"):
        crossval.assign_folds(["a", "b", "a"], [0, 1, 2], 5, seed=0)


def test_each_fold_scores_one_fold_stops_on_the_next_and_trains_on_the_rest():
    folds = [0, 1, 2, 3, -1, 0]
    assert crossval.fold_splits(folds, 0, 4) == ["test", "val", "train", "train", "train", "test"]
    assert crossval.fold_splits(folds, 3, 4) == ["val", "train", "train", "test", "train", "val"]


def test_settings_change_balance_and_train_keys_and_refuse_typos_and_other_stages():
    params = {"balance": {"target": 600, "synthetic": {"enabled": False}}, "train": None}
    changed = crossval.apply_settings(params, ["balance.synthetic.enabled=true", "train.common.seed=3"])
    assert changed["balance"]["synthetic"]["enabled"] is True and changed["train"]["common"]["seed"] == 3
    assert params["balance"]["synthetic"]["enabled"] is False  # the input is left alone
    crossval.check_params(changed)
    with pytest.raises(ValueError, match=r"balance: unknown key\(s\) \['targte'\]"):
        crossval.check_params(crossval.apply_settings(params, ["balance.targte=5"]))
    with pytest.raises(ValueError, match="only balance and train settings"):
        crossval.apply_settings(params, ["crop.finder.min_face_px=16"])
    with pytest.raises(ValueError, match="KEY.PATH=VALUE"):
        crossval.apply_settings(params, ["balance.target"])
    with pytest.raises(ValueError, match="'target' is a value"):
        crossval.apply_settings(params, ["balance.target.x=1"])


def test_a_fitted_logit_bias_recovers_a_class_the_model_under_calls():
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1, 2], [200, 60, 40])
    # the rare class's faces get a probability just under the common class's: argmax never calls it
    probs = np.full((300, 3), 0.05)
    probs[np.arange(300), labels] = 0.6
    probs[labels == 2, 0] = 0.62 + rng.uniform(0, 0.03, 40)
    probs /= probs.sum(axis=1, keepdims=True)
    classes = ("a", "b", "c")
    plain = crossval.scores(labels, probs.argmax(axis=1), np.arange(300) % 5, classes)
    assert plain["pooled"]["per_class"]["c"]["recall"] == 0.0
    bias = crossval.fit_log_bias(labels, probs, classes, np.arange(-1.0, 1.01, 0.25))
    assert bias[0] == 0.0 and bias[2] > 0
    adjusted = crossval.scores(labels, crossval.adjusted(probs, bias), np.arange(300) % 5, classes)
    assert adjusted["pooled"]["per_class"]["c"]["recall"] == 1.0 and adjusted["pooled"]["macro_f1"] == 1.0
    # fitted on four folds, applied to the fifth: the same systematic shift is found without seeing the fold
    folds = np.arange(300) % 5
    crossed = crossval.cross_fitted_predictions(labels, probs, folds, classes, np.arange(-1.0, 1.01, 0.25))
    assert (crossed == labels).all()


def _tiny_training_workspace(tmp_path, data) -> dict:
    """The workspace params.yaml with one quick epoch of training, and the crop stage's settings files."""
    params = yaml.safe_load((data / "params.yaml").read_text())
    params["train"] = {"common": {"epochs": 1, "input_size": 48, "batch_size": 16, "pretrained": "none",
                                  "threads": 1}}
    (tmp_path / "ws" / "params.yaml").write_text(yaml.safe_dump(params))
    (data / "crop" / "geometry.json").write_text(json.dumps({"size": 112, "margin": 0.2}))
    (data / "crop" / "finder.json").write_text(json.dumps(FinderSettings().to_dict()))
    return params


def test_a_small_cross_validation_scores_every_measured_face_once_with_models_that_never_saw_it(tmp_path):
    data = tmp_path / "ws" / "data"
    make_crops(data)
    run_stages(data, split_params={"train_only": ["other__*"]})
    params = _tiny_training_workspace(tmp_path, data)
    out = tmp_path / "cv"
    argv = ["--workspace", str(tmp_path / "ws"), "--backbone", "mobilenet_v2", "--out", str(out), "--folds", "3",
            "--set", "train.common.seed=1"]
    crossval.main(argv)

    split = read_rows(data / "split" / "split.csv")
    oof = read_rows(out / "oof.csv")
    measured = [r for r in split if r["split"] in ("train", "val")]
    train_only = {f"{n:016x}_0" for n in (3, 30, 45)} | {f"{2:016x}_0"}  # the "other" source and its identity group
    assert sorted(r["crop_id"] for r in oof) == sorted(r["crop_id"] for r in measured if r["crop_id"] not in train_only)
    assert not {r["crop_id"] for r in split if r["split"] == "test"} & {r["crop_id"] for r in oof}
    for fold in range(3):
        fold_rows = read_rows(out / f"fold{fold}" / "split" / "split.csv")
        scored = {r["group"] for r in fold_rows if r["split"] == "test"}
        assert scored and not scored & {r["group"] for r in fold_rows if r["split"] in ("train", "val")}
        assert {r["crop_id"] for r in fold_rows if r["split"] == "train"} >= train_only
    probs = np.array([[float(r[f"p_{c}"]) for c in ("face", "masked", "sunglasses", "mask_sunglasses")] for r in oof])
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    record = json.loads((out / "crossval.json").read_text())
    assert record["scored"] == len(oof) and record["settings"] == ["train.common.seed=1"]
    assert set(record["results"]) == {"argmax", "argmax, mirror averaged", "logit-adjusted, cross-fitted",
                                      "logit-adjusted, fitted on all folds"}
    assert yaml.safe_load((out / "params.yaml").read_text())["train"]["common"]["seed"] == 1
    assert (out / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    wrong = sum(r["label"] != max(("face", "masked", "sunglasses", "mask_sunglasses"), key=lambda c: float(r[f"p_{c}"]))
                for r in oof)
    assert (out / "misses.png").exists() == (wrong > 0)

    # a second run resumes: finished folds are not trained again, and the figures are the same
    model = out / "fold0" / "models" / "mobilenet_v2" / "model.safetensors"
    stamp, first = model.stat().st_mtime_ns, (out / "oof.csv").read_bytes()
    crossval.main(argv)
    assert model.stat().st_mtime_ns == stamp and (out / "oof.csv").read_bytes() == first
    with pytest.raises(SystemExit, match="holds a run with other settings"):
        crossval.main(argv[:-1] + ["train.common.seed=2"])
    params["balance"]["target"] = 30  # the workspace's own params changed since: the kept folds are stale
    (tmp_path / "ws" / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(SystemExit, match="workspace params"):
        crossval.main(argv)


def test_a_source_is_left_out_whole_with_its_cross_source_duplicates_unless_a_class_would_starve():
    labels = ["face"] * 6 + ["masked"] * 6 + ["face", "masked"]
    sources = ["a"] * 12 + ["b", "b"]
    groups = list(range(13)) + [0]  # the last item, from b, is a near duplicate of a's first: it stays with a
    folds, order, skipped = crossval.source_folds(labels, groups, sources, min_class_train=3,
                                                  classes=("face", "masked"))
    assert order == ["b"] and folds == [-2] * 12 + [0, -2]
    assert skipped == {"a": "without it, training would keep 1 face, 0 masked"}
    assert crossval.source_folds(labels, groups, sources, 3, ("face", "masked"), min_source_faces=2)[2]["b"] == \
        "1 faces, fewer than 2"


def test_leaving_a_source_out_scores_it_stops_on_a_fifth_of_the_rest_and_trains_on_the_others():
    folds, inner = [0, 0, 1, -2, -2, -1], [2, 3, 0, 0, 1, -1]
    assert crossval.source_fold_splits(folds, inner, 0, 5) == ["test", "test", "val", "val", "train", "train"]
    assert crossval.source_fold_splits(folds, inner, 1, 5) == ["train", "train", "test", "train", "val", "train"]


def test_a_small_leave_one_source_out_run_scores_only_the_source_it_left_out(tmp_path):
    data = tmp_path / "ws" / "data"
    make_crops(data)
    run_stages(data)
    _tiny_training_workspace(tmp_path, data)
    out = tmp_path / "loso"
    crossval.main(["--workspace", str(tmp_path / "ws"), "--backbone", "mobilenet_v2", "--out", str(out),
                   "--folds", "3", "--by-source", "--min-class-train", "2", "--min-source-faces", "2"])
    split = {r["crop_id"]: r for r in read_rows(data / "split" / "split.csv")}
    raw = {r["id"]: r["origin"] for r in read_rows(data / "scrape" / "manifest.csv")}
    oof = read_rows(out / "oof.csv")
    other = {c for c, r in split.items() if r["split"] in ("train", "val") and "/other__" in raw[r["source_id"]]}
    assert other and {r["crop_id"] for r in oof} == other
    record = json.loads((out / "crossval.json").read_text())
    assert record["by_source"] and list(record["sources"]) == ["other"] and "main" in record["not_left_out"]
    assert record["sources"]["other"]["faces"] == len(other)
    assert "## Each source left out" in (out / "crossval.md").read_text()

    # --only runs the named sources' folds, numbered as in the full run: the same models, the same scores
    only = tmp_path / "only"
    argv = ["--workspace", str(tmp_path / "ws"), "--backbone", "mobilenet_v2", "--out", str(only), "--folds", "3",
            "--by-source", "--min-class-train", "2", "--min-source-faces", "2"]
    crossval.main(argv + ["--only", "other"])
    assert (only / "oof.csv").read_bytes() == (out / "oof.csv").read_bytes()
    assert json.loads((only / "crossval.json").read_text())["only"] == ["other"]
    assert "these sources left out in turn: other" in (only / "crossval.md").read_text()
    with pytest.raises(SystemExit, match="--only main: not a source that is left out"):
        crossval.main([*argv[:5], str(tmp_path / "main"), *argv[6:], "--only", "main"])
    with pytest.raises(SystemExit):
        crossval.main(argv[:-5] + ["--only", "other"])  # without --by-source
