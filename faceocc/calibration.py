"""Calibration crops for post-training quantization: a seeded subset of the real train crops, preprocessed exactly
as evaluation preprocesses, so the activation ranges INT8 learns are the ones inference will see."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from faceocc.classifier import ModelCard, preprocess
from faceocc.images import load_rgb
from faceocc.manifest import read_rows
from faceocc.seeding import seeded_order
from faceocc.workspace import FACES, SPLIT_CSV


def calibration_ids(split_csv: str | Path, count: int, seed: int) -> list[str]:
    """`count` train-split crop ids in a seeded order that does not depend on the CSV's row order."""
    train = sorted(r["crop_id"] for r in read_rows(split_csv) if r["split"] == "train")
    return seeded_order(train, seed, "calibration")[:count]


def split_batch(split_dir: str | Path, crops_dir: str | Path, card: ModelCard, *, split: str = "train",
                ids: list[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """(NCHW float32 batch, labels) for the crops of one split (or the given crop ids of it), in the given order."""
    rows = {r["crop_id"]: r for r in read_rows(Path(split_dir) / SPLIT_CSV) if r["split"] == split}
    chosen = ids if ids is not None else sorted(rows)
    images = [load_rgb(Path(crops_dir) / FACES / rows[i]["file"]) for i in chosen]
    batch = preprocess(images, card.input_size, card.mean, card.std).numpy() if images else \
        np.empty((0, 3, card.input_size, card.input_size), np.float32)
    return batch, [rows[i]["label"] for i in chosen]
