"""One model scored on the splits the evaluate stage reports: the test split's figures (with each class's average
precision and ROC AUC against the rest), val's (what a release chooses by) and the out-of-domain source's, and
the pictures of them (curves, the crops it got wrong)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceocc.images import load_rgb
from faceocc.metrics import class_curves, summary
from faceocc.sheets import captioned_grid, line_chart
from faceocc.splitting import OUT_OF_DOMAIN
from faceocc.workspace import FACES


@dataclass(frozen=True)
class Scored:
    """One split's rows, their true class indices and the model's class probabilities, row by row."""

    rows: list[dict]
    y_true: np.ndarray
    probabilities: np.ndarray

    @property
    def y_pred(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)


@dataclass(frozen=True)
class Evaluation:
    test: Scored
    figures: dict            # metrics.json: the test figures at the top, `val` and `out_of_domain` beside them
    curves: dict             # class_curves of the test split: pr / roc rows and the areas


def score(classifier, rows: list[dict], crops: Path) -> Scored:
    classes = classifier.classes
    images = [load_rgb(crops / FACES / r["file"]) for r in rows]
    y_true = np.array([classes.index(r["label"]) for r in rows], int)
    probabilities = classifier.predict_proba(images) if rows else np.empty((0, len(classes)))
    return Scored(rows, y_true, probabilities)


def evaluate(classifier, split_rows: list[dict], crops: Path, size_mb: float) -> Evaluation:
    classes = classifier.classes
    scored = {name: score(classifier, [r for r in split_rows if r["split"] == name], crops)
              for name in ("test", "val", OUT_OF_DOMAIN)}
    test, val, ood = scored["test"], scored["val"], scored[OUT_OF_DOMAIN]
    result = summary(test.y_true, test.y_pred, classes)
    curves = class_curves(test.y_true, test.probabilities, classes)
    for name, areas in curves["areas"].items():
        result["per_class"][name].update(areas)
    val_figures = summary(val.y_true, val.y_pred, classes)
    figures = {"test_images": len(test.rows), "size_mb": size_mb, **result,
               "val": {"images": len(val.rows), "accuracy": val_figures["accuracy"],
                       "macro_f1": val_figures["macro_f1"]}}
    if ood.rows:
        figures["out_of_domain"] = {"images": len(ood.rows), **summary(ood.y_true, ood.y_pred, classes)}
    return Evaluation(test, figures, curves)


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


def errors_image(test: Scored, crops: Path, classes: tuple[str, ...], title: str, limit: int = 60) -> np.ndarray:
    """The test crops the model got wrong, most confident first, each captioned actual > predicted (probability)."""
    y_pred, p = test.y_pred, test.probabilities
    wrong = sorted(np.flatnonzero(y_pred != test.y_true), key=lambda i: -p[i, y_pred[i]])
    tiles = [(f"{classes[test.y_true[i]][:6]}>{classes[y_pred[i]][:6]} {p[i, y_pred[i]]:.2f}",
              load_rgb(crops / FACES / test.rows[i]["file"])) for i in wrong[:limit]]
    shown = f", the {limit} most confident shown" if len(wrong) > limit else ""
    return captioned_grid(tiles, f"{title}: {len(wrong)} of {len(test.rows)} crops wrong{shown}")
