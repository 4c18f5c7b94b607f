"""Stage `evaluate@<backbone>`: the test split through the same `Classifier` the CLI uses; accuracy, macro-F1,
per-class figures (with each class's average precision and ROC AUC against the rest), a confusion matrix (DVC plot +
PNG) and model size in metrics.json; latency and throughput on this machine in speed.json; per-class
precision-recall and ROC curves (DVC plots + curves.png) and a gallery of the test crops it got wrong (errors.png).

Beside the test figures (top level, the stable schema): `val` (what a release chooses by, so that choosing never
looks at test) and, when the split holds one, `out_of_domain` (a whole source kept out of training, with its
own confusion matrix in metrics.json)."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceocc.atomic import stage_output, write_bytes, write_metrics
from faceocc.benchmark import cpu_name, onnx_latency, torch_latency
from faceocc.classifier import Classifier, OnnxClassifier
from faceocc.images import encode_png, load_rgb
from faceocc.manifest import read_rows, write_rows
from faceocc.metrics import class_curves, summary
from faceocc.sheets import captioned_grid, confusion_image, line_chart
from faceocc.splitting import OUT_OF_DOMAIN
from stages._common import load_params, setup_logging

log = logging.getLogger("evaluate")


@dataclass(frozen=True)
class EvaluateParams:
    latency_runs: int = 200        # batch-1 timings on one thread, after the warm-up
    warmup_runs: int = 20
    throughput_batch: int = 32
    throughput_threads: int = 2


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, type=Path, help="a model directory written by train")
    parser.add_argument("--split", required=True, type=Path, help="the split stage's output")
    parser.add_argument("--crops", required=True, type=Path, help="the crop stage's output (images)")
    parser.add_argument("--out", required=True, type=Path, help="folder: metrics.json, speed.json, confusion.csv/png")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    setup_logging()
    params = load_params("evaluate", EvaluateParams, args.params)
    classifier = Classifier.load(args.model)
    classes = classifier.classes
    split_rows = read_rows(args.split / "split.csv")
    scored = {name: score(classifier, [r for r in split_rows if r["split"] == name], args.crops)
              for name in ("test", "val", OUT_OF_DOMAIN)}
    rows, y_true, probabilities = scored["test"]
    y_pred = probabilities.argmax(axis=1)
    result = summary(y_true, y_pred, classes)
    curves = class_curves(y_true, probabilities, classes)
    for name, areas in curves["areas"].items():
        result["per_class"][name].update(areas)
    val = summary(scored["val"][1], scored["val"][2].argmax(axis=1), classes)
    ood_rows, ood_true, ood_probabilities = scored[OUT_OF_DOMAIN]
    ood = summary(ood_true, ood_probabilities.argmax(axis=1), classes) if ood_rows else None
    timing = (params.latency_runs, params.warmup_runs, params.throughput_batch, params.throughput_threads)
    views = 2 if classifier.card.mirror_average else 1  # what predict_proba runs per face
    if isinstance(classifier, OnnxClassifier):
        speed = onnx_latency(classifier.path, classifier.card.input_size, *timing, views=views)
    else:
        speed = torch_latency(classifier.model, classifier.card.input_size, *timing, views=views)
    size_mb = round((args.model / classifier.weights_file).stat().st_size / 1e6, 3)
    variant = classifier.card.variant

    with stage_output(args.out) as tmp:
        tmp.mkdir()
        # what the model does, the same on any machine; the timings, which differ per run, in a file of their own
        # so that `dvc metrics diff` across commits shows the first without drowning in the second
        write_metrics(tmp / "metrics.json", {"test_images": len(rows), "size_mb": size_mb, **result,
                                          "val": {"images": len(scored["val"][0]), "accuracy": val["accuracy"],
                                                  "macro_f1": val["macro_f1"]},
                                          **({"out_of_domain": {"images": len(ood_rows), **ood}} if ood else {})})
        write_metrics(tmp / "speed.json", speed)
        write_rows(tmp / "confusion.csv", [{"actual": classes[a], "predicted": classes[p]}
                                           for a, p in zip(y_true, y_pred)], ("actual", "predicted"))
        title = f"{classifier.card.backbone} {variant} test"
        write_bytes(tmp / "confusion.png", encode_png(confusion_image(np.array(result["confusion"]), classes, title)))
        write_rows(tmp / "pr.csv", curves["pr"], ("class", "step", "recall", "precision"))
        write_rows(tmp / "roc.csv", curves["roc"], ("class", "step", "fpr", "tpr"))
        write_bytes(tmp / "curves.png", encode_png(curves_image(curves, classes, title)))
        write_bytes(tmp / "errors.png", encode_png(errors_image(rows, y_true, probabilities, args.crops, classes,
                                                                title)))
    log.info("%s %s: accuracy %.4f, macro-F1 %.4f (val %.4f%s), %.2f ms/face on %s, %.2f MB",
             classifier.card.backbone, variant, result["accuracy"], result["macro_f1"], val["macro_f1"],
             f", out-of-domain accuracy {ood['accuracy']:.4f}" if ood else "", speed["latency_ms_p50"], cpu_name(),
             size_mb)


def score(classifier, rows: list[dict], crops: Path) -> tuple[list[dict], np.ndarray, np.ndarray]:
    """(rows, true class indices, class probabilities) for one split's rows."""
    classes = classifier.classes
    images = [load_rgb(crops / "faces" / r["file"]) for r in rows]
    y_true = np.array([classes.index(r["label"]) for r in rows], int)
    probabilities = classifier.predict_proba(images) if rows else np.empty((0, len(classes)))
    return rows, y_true, probabilities


def curves_image(curves: dict, classes: tuple[str, ...], title: str) -> np.ndarray:
    """Precision-recall and ROC curves of each class against the rest, side by side, areas in the legend."""
    def series(kind: str, x: str, y: str, area: str) -> dict:
        return {f"{c} ({curves['areas'][c][area]:.3f})": ([r[x] for r in curves[kind] if r["class"] == c],
                                                          [r[y] for r in curves[kind] if r["class"] == c])
                for c in classes if c in curves["areas"]}
    pr = line_chart(series("pr", "recall", "precision", "average_precision"), f"{title}: precision-recall (AP)",
                    "recall", "precision")
    roc = line_chart(series("roc", "fpr", "tpr", "roc_auc"), f"{title}: ROC (AUC)", "false positive rate",
                     "true positive rate")
    return np.hstack([pr, roc])


def errors_image(rows: list[dict], y_true: np.ndarray, probabilities: np.ndarray, crops: Path,
                 classes: tuple[str, ...], title: str, limit: int = 60) -> np.ndarray:
    """The test crops the model got wrong, most confident first, each captioned actual > predicted (probability)."""
    y_pred = probabilities.argmax(axis=1)
    wrong = sorted(np.flatnonzero(y_pred != y_true), key=lambda i: -probabilities[i, y_pred[i]])
    tiles = [(f"{classes[y_true[i]][:6]}>{classes[y_pred[i]][:6]} {probabilities[i, y_pred[i]]:.2f}",
              load_rgb(crops / "faces" / rows[i]["file"])) for i in wrong[:limit]]
    shown = f", the {limit} most confident shown" if len(wrong) > limit else ""
    return captioned_grid(tiles, f"{title}: {len(wrong)} of {len(rows)} crops wrong{shown}")


if __name__ == "__main__":
    main()
