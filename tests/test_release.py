"""The out-of-domain hold-out and `make release`: choosing the released model and writing models/release/."""

from __future__ import annotations

import json

import pytest
import yaml
from test_data_quality import make_crops, run_stages

from faceocc import int8_cpu
from tools import release
from faceocc.manifest import read_rows

REQUIREMENT = {"max_size_mb": 15.0, "min_accuracy": 0.9, "max_latency_ms": 6.0}


def test_a_held_out_source_leaves_train_val_and_test_with_its_whole_group(tmp_path):
    make_crops(tmp_path)
    metrics = run_stages(tmp_path, split_params={"out_of_domain": ["other__*"]})["split"]
    rows = {r["source_id"]: r for r in read_rows(tmp_path / "split" / "split.csv")}
    held = {f"{n:016x}" for n in (3, 30, 45)}
    assert {rows[s]["split"] for s in held} == {"ood"}
    assert rows[f"{2:016x}"]["split"] == "ood"  # same person as entry 3: the identity group goes with it
    assert {r["split"] for s, r in rows.items() if s not in held | {f"{2:016x}"}} <= {"train", "val", "test"}
    assert metrics["totals"]["ood"] == 4 and metrics["counts"]["ood"]["masked"] == 1
    assert metrics["cross_split_shared_identities"] == 0


def test_without_a_pattern_nothing_is_held_out(tmp_path):
    make_crops(tmp_path)
    metrics = run_stages(tmp_path)["split"]
    assert "ood" not in metrics["totals"]


def _evaluation(backbone, val_f1, latency, size, test_accuracy=0.9, variant="onnx_int8"):
    return {"backbone": backbone, "variant": variant, "size_mb": size, "latency_ms_p50": latency,
            "accuracy": test_accuracy, "val": {"images": 10, "accuracy": val_f1, "macro_f1": val_f1}}


def test_the_release_is_chosen_by_validation_f1_among_models_inside_the_requirement():
    evaluations = [_evaluation("mobilenet_v2", 0.95, 1.3, 2.6, test_accuracy=0.99),
                   _evaluation("efficientnet_lite0", 0.97, 1.4, 3.8, test_accuracy=0.90),
                   _evaluation("resnet18", 0.99, 6.5, 11.3),            # best F1, but too slow
                   _evaluation("mobilenet_v2", 1.0, 0.5, 1.0, variant="fp32")]  # not the released variant
    rows = release.candidates(evaluations, REQUIREMENT)
    assert [r["backbone"] for r in rows] == ["efficientnet_lite0", "mobilenet_v2", "resnet18"]
    assert rows[2]["why_not"] == "latency 6.50 ms >= 6" and not rows[2]["eligible"]
    # Lite0 wins on validation F1 although mobilenet_v2 has the better test accuracy: test never decides
    assert release.choose(rows)["backbone"] == "efficientnet_lite0"


def test_equal_validation_f1_goes_to_the_faster_model():
    rows = release.candidates([_evaluation("a", 0.95, 2.0, 3.0), _evaluation("b", 0.95, 1.0, 3.0)], REQUIREMENT)
    assert release.choose(rows)["backbone"] == "b"


def test_no_model_inside_the_requirement_stops_the_release_and_says_why():
    rows = release.candidates([_evaluation("resnet18", 0.99, 3.0, 44.8)], REQUIREMENT)
    with pytest.raises(SystemExit, match="resnet18: size 44.8 MB >= 15"):
        release.choose(rows)
    with pytest.raises(SystemExit, match="no evaluated candidates"):
        release.choose([])


def test_source_tags_come_from_the_file_name_prefix_or_the_root_folder():
    assert release.source_tag("/data/occlusion4/face/fmd__123.jpg") == "fmd"
    assert release.source_tag("/data/my_photos/masked/IMG_0001.jpg") == "my_photos"
    split_rows = [{"source_id": "a", "split": "train", "label": "face"},
                  {"source_id": "b", "split": "ood", "label": "face"},
                  {"source_id": "c", "split": "train", "label": "face"}]
    raw_rows = [{"id": "a", "origin": "r/face/fmd__1.jpg"}, {"id": "b", "origin": "r/face/fdc__2.jpg"},
                {"id": "c", "origin": "r/face/fmd__3.jpg"}, {"id": "", "origin": "r/face/broken.jpg"}]
    assert release.source_counts(split_rows, raw_rows) == {"fdc": {"ood": {"face": 1}},
                                                           "fmd": {"train": {"face": 2}}}


def test_release_params_point_the_scrape_at_the_folders_and_hold_the_source_out(tmp_path):
    params = yaml.safe_load((release.Path(release.__file__).parents[1] / "params.yaml").read_text())
    out = release.release_params(params, [str(tmp_path / "a"), str(tmp_path / "b")], ["fdc__*"])
    assert out["scrape"]["source"] == "folder" and out["split"]["out_of_domain"] == ["fdc__*"]
    assert out["scrape"]["folder"]["roots"] == [str(tmp_path / "a"), str(tmp_path / "b")]
    assert params["scrape"]["source"] == "demo" and params["split"]["out_of_domain"] == []  # not changed in place
    # curation keeps every face the finder reports on real photos; the occlusion4 release trains the attribute
    # head; the one-stage detector sees real photos at 512 px for 10 epochs; nothing else changes
    assert out["curate"]["quality"] == {**params["curate"]["quality"], "min_probability": 0.7}
    assert out["train"]["common"] == {**params["train"]["common"], "head": "attributes"}
    assert out["detect_train"] == {**params["detect_train"], "side": 512, "epochs": 10}
    changed = ("scrape", "split", "curate", "train", "detect_train")
    assert {k: v for k, v in out.items() if k not in changed} == {k: v for k, v in params.items() if k not in changed}


def test_the_workspace_copy_rewrites_only_changed_files_and_drops_deleted_modules(tmp_path):
    repo, work = tmp_path / "repo", tmp_path / "work"
    for rel, text in {"dvc.yaml": "stages: {}\n", "stages/a.py": "A = 1\n", "faceocc/b.py": "B = 1\n",
                      "faceocc/__pycache__/b.cpython-311.pyc": "x", "curation/overrides.csv": "id\n",
                      "README.md": "not part of the pipeline\n"}.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    assert sorted(release.copy_pipeline(repo, work)) == ["curation/overrides.csv", "dvc.yaml", "faceocc/b.py",
                                                         "stages/a.py"]
    assert release.copy_pipeline(repo, work) == []
    (repo / "stages" / "a.py").write_text("A = 2\n")
    (repo / "faceocc" / "b.py").unlink()
    assert sorted(release.copy_pipeline(repo, work)) == ["faceocc/b.py", "stages/a.py"]
    assert (work / "stages" / "a.py").read_text() == "A = 2\n" and not (work / "faceocc" / "b.py").exists()
    assert not (work / "README.md").exists() and not (work / "faceocc" / "__pycache__").exists()


def test_a_missing_data_folder_is_named(tmp_path):
    with pytest.raises(SystemExit, match="nowhere: not a folder"):
        release.main(["--data", str(tmp_path / "nowhere"), "--work", str(tmp_path / "w")])


def test_the_released_model_card_reads_back(tmp_path):
    record = {
        "model": {"backbone": "mobilenet_v2", "variant": "onnx_int8", "size_mb": 2.6, "latency_ms_p50": 1.26,
                  "cpu": "Test CPU"},
        "chosen_by": "validation macro-F1", "candidates": release.candidates(
            [_evaluation("mobilenet_v2", 0.97, 1.26, 2.6), _evaluation("resnet18", 0.9, 9.0, 11.3)], REQUIREMENT),
        "data": {"roots": ["photos"], "out_of_domain_patterns": ["fdc__*"],
                 "sources": {"fmd": {"train": {"face": 5}, "test": {"face": 2}}, "fdc": {"ood": {"face": 3}}},
                 "split_totals": {"train": 5, "test": 2, "ood": 3}, "balance": {"strategy": "oversample"}},
        "test": {"test_images": 2, "accuracy": 1.0, "macro_f1": 1.0,
                 "per_class": {"face": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2},
                               "masked": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}}},
        "out_of_domain": {"images": 3, "accuracy": 2 / 3, "macro_f1": 0.8,
                          "per_class": {"face": {"precision": 1.0, "recall": 0.667, "f1": 0.8, "support": 3},
                                        "masked": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}}},
    }
    text = release.markdown(record, REQUIREMENT)
    assert "Out-of-domain check" in text and "out-of-domain accuracy 66.7%" in text
    assert "| resnet18 | 11.3 | 9.00 | 0.9000 | 0.9000 | no: latency 9.00 ms >= 6 |" in text
    assert "| source | train: F/M | test: F/M | ood: F/M |" in text and "M = masked" in text
    assert "| fdc | 0/0 | 0/0 | 3/0 |" in text and "| fmd | 5/0 | 2/0 | 0/0 |" in text
    assert "| mobilenet_v2 | 90.0% | — | — | — |" in text  # test figures beside the choice, for the record
    json.dumps(record)  # release.json is plain JSON


@pytest.mark.parametrize("task_name", ["occlusion4", "mask_wearing"])
def test_each_tasks_release_params_parse_in_every_stage_they_change(task_name, tmp_path):
    """A release must not fail minutes in on a renamed key: every section it writes loads into its stage's
    settings, the way each stage reads it."""
    import importlib
    from pathlib import Path

    from faceocc.tasks import task_named
    from stages._common import load_params

    root = Path(__file__).resolve().parents[1]
    params = yaml.safe_load((root / "params.yaml").read_text())
    out = release.release_params(params, [str(tmp_path)], [], task_named(task_name))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(out))
    for section in out:
        module = importlib.import_module(f"stages.{section}")
        cls = next(v for k, v in vars(module).items() if k.lower() == f"{section.replace('_', '')}params")
        load_params(section, cls, str(tmp_path / "params.yaml"))


def _confusion_record(per_class_order: list[str]) -> dict:
    # counts in the model's class order (face, masked, sunglasses, mask_sunglasses) with a distinct support each
    support = {"face": 103, "masked": 83, "sunglasses": 80, "mask_sunglasses": 6}
    matrix = [[99, 2, 2, 0], [0, 82, 1, 0], [0, 0, 80, 0], [0, 2, 1, 3]]
    figures = {"confusion": matrix, "per_class": {c: {"support": support[c]} for c in per_class_order}}
    return {"model": {"backbone": "efficientnet_lite0", "variant": "onnx_int8"}, "test": figures,
            "out_of_domain": None}


def test_confusion_pictures_are_labelled_in_the_cards_class_order_not_the_records_sorted_one():
    card_order = ("face", "masked", "sunglasses", "mask_sunglasses")
    record = _confusion_record(sorted(card_order))  # release.json's per-class tables come sorted by name
    pictures = release.confusion_pictures(record, card_order)
    assert list(pictures) == ["confusion_test.png"] and pictures["confusion_test.png"].startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="does not match the classes"):
        release.confusion_pictures(record, tuple(sorted(card_order)))  # mask_sunglasses' row would hold masked's 83


def test_the_end_to_end_photos_of_a_folder_release_are_every_decoded_photo_of_the_held_out_source(tmp_path):
    rows = [{"origin": "/d/occlusion4/face/fdc__1.jpg", "file": "images/a.jpg", "label": "face", "outcome": "ok"},
            {"origin": "/d/occlusion4/masked/fdc__2.jpg", "file": "images/b.jpg", "label": "masked", "outcome": "ok"},
            {"origin": "/d/occlusion4/masked/fdc__3.jpg", "file": "", "label": "masked", "outcome": "decode_error"},
            {"origin": "/d/occlusion4/face/fmd__4.jpg", "file": "images/c.jpg", "label": "face", "outcome": "ok"}]
    photos = release.out_of_domain_photos(rows, ["fdc__*"], tmp_path)
    assert [(p.path, p.label, p.box) for p in photos] == [
        (str(tmp_path / "images/a.jpg"), "face", None), (str(tmp_path / "images/b.jpg"), "masked", None)]


def _variant_evaluation(backbone: str, variant: str, test_acc: float, ood_acc: float | None = None) -> dict:
    per_class = {"face": {"precision": 1.0, "recall": test_acc, "f1": 1.0, "support": 10}}
    return {"backbone": backbone, "variant": variant, "size_mb": 3.0, "latency_ms_p50": 1.0, "test_images": 100,
            "accuracy": test_acc, "macro_f1": test_acc, "per_class": per_class,
            "val": {"accuracy": 0.9, "macro_f1": 0.9, "images": 10},
            "out_of_domain": None if ood_acc is None else {"accuracy": ood_acc, "macro_f1": ood_acc, "images": 5,
                                                         "per_class": per_class}}


def test_the_summary_names_every_int8_variant_more_than_a_point_below_its_fp32_origin():
    evaluations = [_variant_evaluation("lite0", "fp32", 0.95, 0.90),
                   _variant_evaluation("lite0", "fx_int8", 0.91, 0.90),
                   _variant_evaluation("lite0", "onnx_fp32", 0.95, 0.90),
                   _variant_evaluation("lite0", "onnx_int8", 0.945, 0.895)]
    summary = release.summary(evaluations)
    lite0 = summary["models"]["lite0"]
    assert lite0["fx_int8"]["accuracy_change_pt_vs"] == {"origin": "fp32", "test": -4.0, "val": 0.0,
                                                         "out_of_domain": 0.0}
    assert lite0["onnx_int8"]["test"]["recall"] == {"face": 0.945}
    assert summary["int8_more_than_1pt_below_fp32"] == [
        {"backbone": "lite0", "variant": "fx_int8", "origin": "fp32", "worst_drop_pt": 4.0, "on": "test",
         "net_faces": 4, "of": 100}]
    table = "\n".join(release.int8_lines(summary))
    assert "| lite0 | fx_int8 | fp32 | **-4.0** | +0.0 | +0.0 |" in table
    assert "| lite0 | onnx_int8 | onnx_fp32 | -0.5 | +0.0 | -0.5 |" in table
    assert "lite0 fx_int8 (4.0 points on test: 4 of 100 faces, net)" in table


def test_quantization_notes_say_the_fx_engines_and_onnx_weights_bits():
    assert release.quantization_note("fx_int8", {"engine": "x86"}) == "FX, x86 engine, 7-bit activations"
    assert release.quantization_note("fx_int8", {"engine": "onednn"}) == "FX, onednn engine, 8-bit activations"
    assert release.quantization_note("onnx_int8", {"activations": "QUInt8", "reduce_range": True}) == \
        "ONNX Runtime, QUInt8 activations, 7-bit weights"
    assert release.quantization_note("onnx_int8", {"activations": "QUInt8", "weights": "QUInt8"}) == \
        "ONNX Runtime, QUInt8 activations, 8-bit QUInt8 weights"
    assert release.quantization_note("fp32", {}) is None


def test_a_release_says_how_each_int8_variant_was_quantized_and_why_one_lost(tmp_path):
    evaluations = [_variant_evaluation("lite0", variant, acc, 0.90) for variant, acc in
                   (("fp32", 0.95), ("fx_int8", 0.91), ("onnx_fp32", 0.95), ("onnx_int8", 0.95))]
    cards = {"fx_int8": {"engine": "x86", "per_channel": True},
             "onnx_int8": {"activations": "QUInt8", "per_channel": True, "reduce_range": False}}
    from faceocc.classifier import CARD_FILE, ModelCard

    for variant, info in cards.items():
        model_dir = tmp_path / "models" / variant / "lite0"
        model_dir.mkdir(parents=True)
        card = ModelCard(backbone="efficientnet_lite0", classes=("face", "masked"), input_size=224,
                         mean=(0.5,) * 3, std=(0.5,) * 3, variant=variant, variant_info=info)
        (model_dir / CARD_FILE).write_text(card.to_json())
    notes = release.quantization_notes(tmp_path, evaluations)
    assert notes[("lite0", "fx_int8")]["quantized"] == "FX, x86 engine, 7-bit activations"
    # 8-bit ONNX weights saturate only on a CPU without VNNI: the note follows this machine's flags
    assert bool(notes[("lite0", "onnx_int8")]["saturates_here"]) == int8_cpu.saturates()
    summary = release.summary(evaluations, notes)
    assert summary["models"]["lite0"]["fx_int8"]["quantized"] == "FX, x86 engine, 7-bit activations"
    text = "\n".join(release.int8_lines(summary))
    assert "| lite0 | fx_int8 | fp32 | **-4.0** | +0.0 | +0.0 | FX, x86 engine, 7-bit activations |" in text
    assert ("| lite0 | onnx_int8 | onnx_fp32 | +0.0 | +0.0 | +0.0 "
            "| ONNX Runtime, QUInt8 activations, 8-bit weights |") in text
    assert "lite0 fx_int8 (4.0 points on test: 4 of 100 faces, net; FX, x86 engine, 7-bit activations)" in text
    assert "The x86 engine's 7-bit activations" in text


def _loso_record(by_source: bool = True) -> dict:
    classes = ["face", "sunglasses"]
    return {"by_source": by_source, "backbone": "efficientnet_lite0", "classes": classes, "scored": 12, "folds": 2,
            "results": {"argmax": {"pooled": {"accuracy": 0.75, "macro_f1": 0.7}}},
            "sources": {"mtfl": {"faces": 8, "accuracy": 0.75, "support": {"face": 0, "sunglasses": 8},
                                 "right": {"face": 0, "sunglasses": 6}},
                        "sws": {"faces": 4, "accuracy": 0.75, "support": {"face": 1, "sunglasses": 3},
                                "right": {"face": 1, "sunglasses": 2}}},
            "not_left_out": {"fmd": "without it, training would keep 0 face"}}


def test_the_leave_one_source_out_table_gives_right_of_faces_per_class_and_names_sources_not_left_out():
    table = "\n".join(release.loso_lines(_loso_record()))
    assert "| mtfl | 8 | 75.0% | — | 6 / 8 |" in table and "| sws | 4 | 75.0% | 1 / 1 | 2 / 3 |" in table
    assert "Not left out: fmd (without it, training would keep 0 face)." in table
    assert "the release's recipe)" in table


def test_a_leave_one_source_out_run_of_another_head_than_the_released_models_says_so():
    table = "\n".join(release.loso_lines(_loso_record(), released_head="attributes"))  # the run has no head: softmax
    assert "but the softmax head: the released model's attributes head has not been measured this way yet" in table
    assert "the release's recipe)" in "\n".join(release.loso_lines({**_loso_record(), "head": "attributes"},
                                                                    released_head="attributes"))


def test_only_a_by_source_run_of_the_releases_classes_is_attached(tmp_path):
    out, run = tmp_path / "release", tmp_path / "cv"
    out.mkdir(), run.mkdir()
    (out / "release.json").write_text("{}")
    (out / "card.json").write_text(json.dumps({"classes": ["face", "masked"]}))
    (run / "crossval.json").write_text(json.dumps(_loso_record(by_source=False)))
    with pytest.raises(SystemExit, match="not a --by-source run"):
        release.attach_leave_one_source_out(out, run, REQUIREMENT)
    (run / "crossval.json").write_text(json.dumps(_loso_record()))
    with pytest.raises(SystemExit, match="classes are not the release's"):
        release.attach_leave_one_source_out(out, run, REQUIREMENT)
    assert not (out / release.LOSO_FILE).exists()


def test_a_release_without_data_folders_is_refused_unless_it_only_attaches_a_run():
    with pytest.raises(SystemExit):
        release.main([])


def test_a_release_with_one_real_source_in_train_and_val_says_why_no_source_can_be_left_out():
    sources = {"mask_detection": {"ood": {"with_mask": 9}},
               "mask_wearing_ilc": {"train": {"with_mask": 5}, "val": {"with_mask": 2}, "test": {"with_mask": 2}},
               "maskedfacenet_wearing": {"train": {"with_mask": 4}}}
    text = "\n".join(release.no_loso_lines(sources))
    assert "Not measurable: train and val hold real faces of one source (`mask_wearing_ilc`)" in text
    assert "`maskedfacenet_wearing` in train only" in text and "(`mask_detection`, above)" in text
    two = {**sources, "other": {"train": {"with_mask": 3}, "test": {"with_mask": 1}}}
    assert "Not measured yet: `python -m tools.crossval --by-source" in "\n".join(release.no_loso_lines(two))


def test_the_requirement_names_each_miss_and_checks_accuracy_only_when_given():
    from faceocc.requirement import Requirement, misses

    req = Requirement()
    assert misses(req, 14.9, 5.9, 0.91) == []
    assert misses(req, 15.0, 6.0, 0.90) == ["size 15.0 MB >= 15", "latency 6.00 ms >= 6", "accuracy 90.0% <= 90%"]
    assert misses(req, 2.6, 3.0) == []  # a release's candidates: the test accuracy plays no part
