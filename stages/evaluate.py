"""Stage `evaluate@<backbone>`: the test split through the same `Classifier` the CLI uses; accuracy, macro-F1,
per-class figures, a confusion matrix (DVC plot + PNG), latency, throughput and model size.

Beside the test figures (top level, the stable schema): `val` (what a release chooses by, so that choosing never
looks at test) and, when the split holds one, `out_of_domain` (a whole source kept out of training, with its
own confusion matrix in metrics.json)."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceocc.atomic import stage_output, write_bytes, write_json
from faceocc.benchmark import onnx_latency, torch_latency
from faceocc.classifier import Classifier, OnnxClassifier
from faceocc.images import encode_png, load_rgb
from faceocc.manifest import read_rows, write_rows
from faceocc.metrics import summary
from faceocc.sheets import confusion_image
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
    parser.add_argument("--out", required=True, type=Path, help="folder: metrics.json, confusion.csv/png")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    setup_logging()
    params = load_params("evaluate", EvaluateParams, args.params)
    classifier = Classifier.load(args.model)
    classes = classifier.classes
    split_rows = read_rows(args.split / "split.csv")
    scored = {name: score(classifier, [r for r in split_rows if r["split"] == name], args.crops)
              for name in ("test", "val", OUT_OF_DOMAIN)}
    rows, y_true, y_pred = scored["test"]
    result = summary(y_true, y_pred, classes)
    val = summary(*scored["val"][1:], classes)
    ood_rows, ood_true, ood_pred = scored[OUT_OF_DOMAIN]
    ood = summary(ood_true, ood_pred, classes) if ood_rows else None
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
        write_json(tmp / "metrics.json", {"backbone": classifier.card.backbone, "variant": variant,
                                          "test_images": len(rows), "size_mb": size_mb, **result, **speed,
                                          "val": {"images": len(scored["val"][0]), "accuracy": val["accuracy"],
                                                  "macro_f1": val["macro_f1"]},
                                          **({"out_of_domain": {"images": len(ood_rows), **ood}} if ood else {})})
        write_rows(tmp / "confusion.csv", [{"actual": classes[a], "predicted": classes[p]}
                                           for a, p in zip(y_true, y_pred)], ("actual", "predicted"))
        write_bytes(tmp / "confusion.png", encode_png(confusion_image(np.array(result["confusion"]), classes,
                                                                      f"{classifier.card.backbone} {variant} test")))
    log.info("%s %s: accuracy %.4f, macro-F1 %.4f (val %.4f%s), %.2f ms/face, %.2f MB", classifier.card.backbone,
             variant, result["accuracy"], result["macro_f1"], val["macro_f1"],
             f", out-of-domain accuracy {ood['accuracy']:.4f}" if ood else "", speed["latency_ms_p50"], size_mb)


def score(classifier, rows: list[dict], crops: Path) -> tuple[list[dict], np.ndarray, np.ndarray]:
    """(rows, true class indices, predicted class indices) for one split's rows."""
    classes = classifier.classes
    images = [load_rgb(crops / "faces" / r["file"]) for r in rows]
    y_true = np.array([classes.index(r["label"]) for r in rows], int)
    y_pred = classifier.predict_proba(images).argmax(axis=1) if rows else np.empty(0, int)
    return rows, y_true, y_pred


if __name__ == "__main__":
    main()
