"""Classification metrics from label indices: accuracy, macro-F1, per-class precision/recall/F1, confusion."""

from __future__ import annotations

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
