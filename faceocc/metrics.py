"""Classification metrics from label indices: accuracy, macro-F1, per-class precision/recall/F1, confusion."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np


def confusion(y_true, y_pred, n_classes: int) -> np.ndarray:
    """counts[actual, predicted]."""
    matrix = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(matrix, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return matrix


def per_class(matrix: np.ndarray) -> dict[str, np.ndarray]:
    tp = np.diag(matrix).astype(float)
    predicted, actual = matrix.sum(axis=0), matrix.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(tp), where=total > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": actual}


def summary(y_true, y_pred, classes: tuple[str, ...]) -> dict:
    """accuracy, macro_f1 (over classes present in y_true), and per-class figures, rounded for stable diffs."""
    matrix = confusion(y_true, y_pred, len(classes))
    stats = per_class(matrix)
    present = stats["support"] > 0
    total = matrix.sum()
    return {
        "accuracy": round(float(np.trace(matrix) / total), 4) if total else 0.0,
        "macro_f1": round(float(stats["f1"][present].mean()), 4) if present.any() else 0.0,
        "per_class": {c: {"precision": round(float(stats["precision"][i]), 4),
                          "recall": round(float(stats["recall"][i]), 4), "f1": round(float(stats["f1"][i]), 4),
                          "support": int(stats["support"][i])} for i, c in enumerate(classes)},
        "confusion": matrix.tolist(),
    }


def read_evaluation(metrics: str | Path) -> dict:
    """An evaluate stage's figures, `reports/eval/<backbone>/<variant>/metrics.json` and the speed.json beside it
    (timings are kept apart so that a metrics diff stays readable), as one dict that also names the backbone and
    the variant: the folder names."""
    metrics = Path(metrics)
    figures = json.loads(metrics.read_text())
    speed = metrics.with_name("speed.json")
    if speed.exists():
        figures.update(json.loads(speed.read_text()))
    return {"backbone": metrics.parent.parent.name, "variant": metrics.parent.name, **figures}


def class_curves(y_true, probabilities, classes: Sequence[str], digits: int = 4) -> dict:
    """Each class against the rest, from the predicted probabilities: its precision-recall and ROC curves as rows
    (class, step, x, y) ready for a DVC plot, and the areas (average precision, ROC AUC) per class. A class
    without positives, or without negatives, in `y_true` has neither (scikit-learn computes them)."""
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

    y_true, probabilities = np.asarray(y_true, int), np.asarray(probabilities, float)
    pr_rows, roc_rows, areas = [], [], {}
    for index, name in enumerate(classes):
        positive = y_true == index
        if not positive.any() or positive.all():
            continue
        scores = probabilities[:, index]
        precision, recall, _ = precision_recall_curve(positive, scores)
        fpr, tpr, _ = roc_curve(positive, scores)
        # recall falls along scikit-learn's PR arrays: reversed, both curves run left to right
        pr_rows += [{"class": name, "step": i, "recall": round(float(r), digits), "precision": round(float(p), digits)}
                    for i, (r, p) in enumerate(zip(recall[::-1], precision[::-1]))]
        roc_rows += [{"class": name, "step": i, "fpr": round(float(f), digits), "tpr": round(float(t), digits)}
                     for i, (f, t) in enumerate(zip(fpr, tpr))]
        areas[name] = {"average_precision": round(float(average_precision_score(positive, scores)), digits),
                       "roc_auc": round(float(roc_auc_score(positive, scores)), digits)}
    return {"pr": pr_rows, "roc": roc_rows, "areas": areas}
