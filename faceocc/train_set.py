"""The training set the balance stage writes: the train split's real faces, synthetic rare-class faces drawn onto
real faces of other classes, then the chosen strategy's re-sampling with augmented copies (faceocc/balancing.py
holds the strategies, the augmenter and the renderer this puts together).

Each item is a row of train.csv: its id, label, kind (original / synthetic / augmented), the folder its file is
under (`crop`: the crop stage's faces; `balance`: this output) and the real face it came from.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm import tqdm

from faceocc.atomic import write_bytes
from faceocc.balancing import (AugmentConfig, SyntheticRecipe, augment, build_augmenter, match_resolution,
                               plan_counts, render_synthetic, source_side)
from faceocc.config import ConfigError
from faceocc.faces import LANDMARK_NAMES
from faceocc.images import encode_png, load_rgb
from faceocc.occlusion import RENDERS
from faceocc.seeding import item_seed, seeded_order
from faceocc.sheets import bar_chart, contact_sheet
from faceocc.transplant import TRANSPLANTS, transplant

TRAIN_COLUMNS = ("id", "label", "kind", "root", "file", "origin", "recipe")
COUNT_COLUMNS = ("bar", "label", "step", "count")
COUNT_STEPS = ("train_split", "with_synthetic", "balanced")


@dataclass(frozen=True)
class SyntheticParams:
    enabled: bool = True
    recipes: tuple[SyntheticRecipe, ...] = (
        SyntheticRecipe("mask_sunglasses", "masked", "sunglasses", 400),
        SyntheticRecipe("mask_sunglasses", "sunglasses", "masked", 400),
    )


@dataclass(frozen=True)
class BalanceParams:
    strategy: Literal["none", "undersample", "oversample"] = "oversample"
    target: int = 0                # oversample: the per-class goal; 0 = the median class count
    augment_ratio: int = 3         # oversample: at most this many augmented copies per image (1:3)
    seed: int = 0
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    synthetic: SyntheticParams = field(default_factory=SyntheticParams)


def check_recipes(params: BalanceParams, classes: tuple[str, ...]) -> None:
    """ConfigError for a recipe that names a class outside the task or a render the renderer lacks."""
    for recipe in params.synthetic.recipes if params.synthetic.enabled else ():  # disabled: another task's, maybe
        if recipe.label not in classes or recipe.source not in classes:
            raise ConfigError(f"balance.synthetic.recipes: {recipe} names a class outside {list(classes)}")
        if recipe.render not in RENDERS:
            raise ConfigError(f"balance.synthetic.recipes: render must be one of {list(RENDERS)}, "
                              f"got {recipe.render!r}")
        if recipe.donor and recipe.donor not in classes:
            raise ConfigError(f"balance.synthetic.recipes: {recipe} names a donor class outside {list(classes)}")
        if recipe.donor and recipe.render not in TRANSPLANTS:
            raise ConfigError(f"balance.synthetic.recipes: a donor can lend {list(TRANSPLANTS)}, "
                              f"not {recipe.render!r}")


@dataclass(frozen=True)
class TrainSet:
    originals: list[dict]   # the train split's crops, as train.csv rows
    synthetic: list[dict]   # every synthetic face drawn, kept or not
    final: list[dict]       # train.csv: what the strategy kept, and its augmented copies


def build(params: BalanceParams, classes: tuple[str, ...], train: list[dict], crop_rows: list[dict], faces: Path,
          out: Path) -> TrainSet:
    """Write the synthetic and augmented images under `out`/images and return the rows. `train` are the split's
    train rows, `crop_rows` the crop stage's (landmarks), `faces` its folder of crops."""
    landmarks = {r["crop_id"]: _points(r, "crop_") for r in crop_rows}
    source_points = {r["crop_id"]: _points(r, "") for r in crop_rows}
    originals = [{"id": r["crop_id"], "label": r["label"], "kind": "original", "root": "crop", "file": r["file"],
                  "origin": r["crop_id"], "recipe": ""} for r in sorted(train, key=lambda r: r["crop_id"])]
    synthetic = (make_synthetic(params, originals, landmarks, source_points, faces, out)
                 if params.synthetic.enabled else [])
    pools = {c: [o for o in originals if o["label"] == c] + [s for s in synthetic if s["label"] == c]
             for c in classes}
    plans = plan_counts({c: len(p) for c, p in pools.items()}, params.strategy, params.target, params.augment_ratio)
    augmenter = build_augmenter(params.augment)
    final = []
    for label in classes:
        pool, plan = pools[label], plans[label]
        real = seeded_order([p["id"] for p in pool if p["kind"] == "original"], params.seed, label)
        made = seeded_order([p["id"] for p in pool if p["kind"] == "synthetic"], params.seed, label)
        by_id = {p["id"]: p for p in pool}
        kept = [by_id[i] for i in (real + made)[: plan.keep]]  # real faces are the last to be cut
        final.extend(kept)
        final.extend(augmented_copies(kept, plan.extra, augmenter, params.seed, faces, out))
    chosen = {r["id"] for r in final}
    for item in synthetic:
        if item["id"] not in chosen:
            (out / item["file"]).unlink()  # drawn, then cut by undersampling: not part of the output
    final.sort(key=lambda r: (r["label"], r["kind"], r["id"]))
    return TrainSet(originals, synthetic, final)


def step_counts(made: TrainSet) -> dict[str, Counter]:
    """Faces per class after each step: the train split, with the synthetic faces, balanced."""
    return {"train_split": Counter(o["label"] for o in made.originals),
            "with_synthetic": Counter(o["label"] for o in made.originals + made.synthetic),
            "balanced": Counter(r["label"] for r in made.final)}


def metrics(made: TrainSet, classes: tuple[str, ...]) -> dict:
    counts = step_counts(made)
    kinds = Counter(r["kind"] for r in made.final)
    return {"before": {c: counts["train_split"][c] for c in classes},
            "with_synthetic": {c: counts["with_synthetic"][c] for c in classes},
            "after": {c: counts["balanced"][c] for c in classes},
            "kinds": {k: kinds.get(k, 0) for k in ("original", "synthetic", "augmented")},
            "synthetic_drawn": len(made.synthetic)}


def count_rows(classes: tuple[str, ...], counts: dict[str, Counter]) -> list[dict]:
    """One row per class and step. `bar` names each bar on its own: DVC's bar templates stack rows that share a
    y value, so a y of `label` alone drew face as 7 + 7 + 7 = 21."""
    return [{"bar": f"{label}: {number}. {step}", "label": label, "step": step, "count": counts[step][label]}
            for label in classes for number, step in enumerate(COUNT_STEPS, 1)]


def count_chart(made: TrainSet, classes: tuple[str, ...], strategy: str) -> np.ndarray:
    counts = step_counts(made)
    return bar_chart({c: [counts[s][c] for s in COUNT_STEPS] for c in classes},
                     ["train split", "+ synthetic", f"after {strategy}"], f"training images per class ({strategy})")


def _points(row: dict, prefix: str) -> np.ndarray:
    return np.array([[float(row[f"{prefix}{n}_x"]), float(row[f"{prefix}{n}_y"])] for n in LANDMARK_NAMES])


def sample_sheet(final: list[dict], faces: Path, out: Path) -> np.ndarray:
    """What the generated training images look like: a band per synthetic recipe, one of augmented copies."""
    bands = []
    recipes = sorted({r["recipe"] for r in final if r["kind"] == "synthetic"})
    for recipe in [*recipes, "augment"]:
        chosen = [r for r in final if r["recipe"] == recipe][:8]
        if chosen:
            images = [load_rgb((faces if r["root"] == "crop" else out) / r["file"]) for r in chosen]
            bands.append((f"{recipe} ({chosen[0]['kind']})", images))
    return contact_sheet(bands or [("no synthetic or augmented images", [])], tile=96)


def make_synthetic(params: BalanceParams, originals: list[dict], landmarks: dict, source_points: dict, faces: Path,
                   out: Path) -> list[dict]:
    """Occluders drawn onto real training faces of other classes, or moved there from real faces of the recipe's
    donor class; each source face used at most once per recipe, donors in turn; each result blurred back to the
    detail its face had in the source photo."""
    made = []
    by_id = {o["id"]: o for o in originals}
    for recipe in params.synthetic.recipes:
        tag = recipe.tag
        sources = seeded_order([o["id"] for o in originals if o["label"] == recipe.source], params.seed,
                               tag)[: recipe.count]
        donors = seeded_order([o["id"] for o in originals if o["label"] == recipe.donor], params.seed,
                              f"donors_{tag}") if recipe.donor else []
        if recipe.donor and not donors:
            continue  # no train face of the donor class (a tiny split): nothing to move
        for k, source_id in enumerate(tqdm(sources, desc=f"balance: {tag}", unit="img")):
            image = load_rgb(faces / by_id[source_id]["file"])
            source_px = source_side(source_points[source_id], landmarks[source_id], image.shape[0])
            if recipe.donor:
                donor_id = donors[k % len(donors)]
                moved = transplant(image, landmarks[source_id], load_rgb(faces / by_id[donor_id]["file"]),
                                   landmarks[donor_id], recipe.render)
                drawn = match_resolution(moved, source_px) if source_px else moved
            else:
                drawn = render_synthetic(image, landmarks[source_id], recipe.render,
                                         item_seed(params.seed, tag, source_id), source_px)
            item_id = f"{source_id}_syn_{tag}"
            file = f"images/{recipe.label}/{item_id}.png"
            write_bytes(out / file, encode_png(drawn))
            made.append({"id": item_id, "label": recipe.label, "kind": "synthetic", "root": "balance", "file": file,
                         "origin": source_id, "recipe": tag})
    return made


def augmented_copies(kept: list[dict], extra: int, augmenter, seed: int, faces: Path, out: Path) -> list[dict]:
    """`extra` augmented images, cycling over the kept items so each gets at most ceil(extra / len) copies."""
    copies = []
    for k in range(extra):
        item = kept[k % len(kept)]
        copy_no = k // len(kept)
        image = load_rgb((faces / item["file"]) if item["root"] == "crop" else (out / item["file"]))
        new_id = f"{item['id']}_aug{copy_no}"
        file = f"images/{item['label']}/{new_id}.png"
        write_bytes(out / file, encode_png(augment(augmenter, image, item_seed(seed, "augment", item["id"], copy_no))))
        copies.append({"id": new_id, "label": item["label"], "kind": "augmented", "root": "balance", "file": file,
                       "origin": item["origin"], "recipe": "augment"})
    return copies
