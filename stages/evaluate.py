"""Stage `evaluate@<backbone>`: the test split through the same `Classifier` the CLI uses; accuracy, macro-F1,
per-class figures (with each class's average precision and ROC AUC against the rest), a confusion matrix (DVC plot +
PNG) and model size in metrics.json; latency and throughput on this machine in speed.json; per-class
precision-recall and ROC curves (DVC plots + curves.png) and a gallery of the test crops it got wrong (errors.png).

Beside the test figures (top level, the stable schema): `val` (what a release chooses by, so that choosing never
looks at test) and, when the split holds one, `out_of_domain` (a whole source kept out of training, with its
own confusion matrix in metrics.json). The scoring: faceocc/evaluation.py."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceocc.atomic import stage_output, write_bytes, write_metrics
from faceocc.benchmark import cpu_name, onnx_latency, torch_latency
from faceocc.classifier import Classifier, OnnxClassifier
from faceocc.evaluation import curves_image, errors_image, evaluate
from faceocc.images import encode_png
from faceocc.manifest import read_rows, write_rows
from faceocc.sheets import confusion_image
from faceocc.workspace import SPLIT_CSV
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
    parser.add_argument("--out", required=True, type=Path,
                        help="folder: metrics.json, speed.json, confusion.csv/png, pr.csv, roc.csv, curves.png, "
                             "errors.png")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    setup_logging()
    p = load_params("evaluate", EvaluateParams, args.params)
    classifier = Classifier.load(args.model)
    classes, card = classifier.classes, classifier.card
    size_mb = round((args.model / classifier.weights_file).stat().st_size / 1e6, 3)
    ev = evaluate(classifier, read_rows(args.split / SPLIT_CSV), args.crops, size_mb)
    timing = (p.latency_runs, p.warmup_runs, p.throughput_batch, p.throughput_threads)
    views = 2 if card.mirror_average else 1  # what predict_proba runs per face
    speed = (onnx_latency(classifier.path, card.input_size, *timing, views=views)
             if isinstance(classifier, OnnxClassifier) else
             torch_latency(classifier.model, card.input_size, *timing, views=views))
    title = f"{card.backbone} {card.variant} test"
    with stage_output(args.out) as tmp:
        tmp.mkdir()
        # what the model does, the same on any machine; the timings, which differ per run, in a file of their own
        # so that `dvc metrics diff` across commits shows the first without drowning in the second
        write_metrics(tmp / "metrics.json", ev.figures)
        write_metrics(tmp / "speed.json", speed)
        write_rows(tmp / "confusion.csv", [{"actual": classes[a], "predicted": classes[b]}
                                           for a, b in zip(ev.test.y_true, ev.test.y_pred)], ("actual", "predicted"))
        write_bytes(tmp / "confusion.png",
                    encode_png(confusion_image(np.array(ev.figures["confusion"]), classes, title)))
        write_rows(tmp / "pr.csv", ev.curves["pr"], ("class", "step", "recall", "precision"))
        write_rows(tmp / "roc.csv", ev.curves["roc"], ("class", "step", "fpr", "tpr"))
        write_bytes(tmp / "curves.png", encode_png(curves_image(ev.curves, classes, title)))
        write_bytes(tmp / "errors.png", encode_png(errors_image(ev.test, args.crops, classes, title)))
    ood = ev.figures.get("out_of_domain")
    log.info("%s %s: accuracy %.4f, macro-F1 %.4f (val %.4f%s), %.2f ms/face on %s, %.2f MB", card.backbone,
             card.variant, ev.figures["accuracy"], ev.figures["macro_f1"], ev.figures["val"]["macro_f1"],
             f", out-of-domain accuracy {ood['accuracy']:.4f}" if ood else "", speed["latency_ms_p50"], cpu_name(),
             size_mb)


if __name__ == "__main__":
    main()
