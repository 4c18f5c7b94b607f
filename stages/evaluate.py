"""Stage `evaluate@<backbone>`: the test split through the same `Classifier` the CLI uses; accuracy, macro-F1,
per-class figures, a confusion matrix (DVC plot + PNG), latency, throughput and model size."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from faceocc.atomic import atomic_path, write_bytes, write_json
from faceocc.benchmark import onnx_latency, torch_latency
from faceocc.classifier import Classifier, OnnxClassifier
from faceocc.images import encode_png, load_rgb
from faceocc.manifest import read_rows, write_rows
from faceocc.metrics import summary
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
    rows = [r for r in read_rows(args.split / "split.csv") if r["split"] == "test"]
    images = [load_rgb(args.crops / "faces" / r["file"]) for r in rows]
    probabilities = classifier.predict_proba(images)
    y_true = np.array([classes.index(r["label"]) for r in rows], int)
    y_pred = probabilities.argmax(axis=1) if len(rows) else np.empty(0, int)
    result = summary(y_true, y_pred, classes)
    timing = (params.latency_runs, params.warmup_runs, params.throughput_batch, params.throughput_threads)
    if isinstance(classifier, OnnxClassifier):
        speed = onnx_latency(classifier.path, classifier.card.input_size, *timing)
    else:
        speed = torch_latency(classifier.model, classifier.card.input_size, *timing)
    size_mb = round((args.model / classifier.weights_file).stat().st_size / 1e6, 3)
    variant = classifier.card.variant

    with atomic_path(args.out) as tmp:
        tmp.mkdir()
        write_json(tmp / "metrics.json", {"backbone": classifier.card.backbone, "variant": variant,
                                          "test_images": len(rows), "size_mb": size_mb, **result, **speed})
        write_rows(tmp / "confusion.csv", [{"actual": classes[a], "predicted": classes[p]}
                                           for a, p in zip(y_true, y_pred)], ("actual", "predicted"))
        write_bytes(tmp / "confusion.png", encode_png(confusion_image(np.array(result["confusion"]), classes,
                                                                      f"{classifier.card.backbone} {variant} test")))
    log.info("%s %s: accuracy %.4f, macro-F1 %.4f, %.2f ms/face, %.2f MB", classifier.card.backbone, variant,
             result["accuracy"], result["macro_f1"], speed["latency_ms_p50"], size_mb)


def confusion_image(matrix: np.ndarray, classes: tuple[str, ...], title: str, cell: int = 90) -> np.ndarray:
    """Rows = actual, columns = predicted; each cell shaded by its share of the row, with the count."""
    n = len(classes)
    left, top = 150, 60
    image = np.full((top + n * cell + 10, left + n * cell + 10, 3), 255, np.uint8)
    cv2.putText(image, title, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(image, "actual \\ predicted", (6, 48), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (80, 80, 80), 1, cv2.LINE_AA)
    totals = matrix.sum(axis=1, keepdims=True).clip(min=1)
    for j, name in enumerate(classes):
        cv2.putText(image, name[:12], (left + j * cell + 4, top - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1,
                    cv2.LINE_AA)
    for i, name in enumerate(classes):
        cv2.putText(image, name, (6, top + i * cell + cell // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                    cv2.LINE_AA)
        for j in range(n):
            share = matrix[i, j] / totals[i, 0]
            shade = int(255 - 200 * share)
            colour = (shade, shade, 255) if i != j else (shade, 255, shade)
            x, y = left + j * cell, top + i * cell
            cv2.rectangle(image, (x, y), (x + cell - 2, y + cell - 2), colour, -1)
            cv2.putText(image, str(int(matrix[i, j])), (x + cell // 3, y + cell // 2 + 6), cv2.FONT_HERSHEY_SIMPLEX,
                        0.6, (0, 0, 0), 1, cv2.LINE_AA)
    return image


if __name__ == "__main__":
    main()
