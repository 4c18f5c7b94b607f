"""Stage `split`: stratified train/val/test whose groups (source image, identity, near-duplicate cluster)
never straddle two splits; the cross-split near-duplicate count is measured, not assumed."""

from __future__ import annotations

import argparse
import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceocc.atomic import stage_output, write_metrics
from faceocc.dedup import hamming, near_pairs
from faceocc.manifest import read_rows, write_rows
from faceocc.splitting import (
    OUT_OF_DOMAIN,
    SPLITS,
    assign_with_holdout,
    group_items,
    matching_groups,
)
from faceocc.tasks import HasTask, TaskName, check_labels
from stages._common import load_params, setup_logging

log = logging.getLogger("split")

SPLIT_COLUMNS = ("crop_id", "source_id", "identity", "label", "file", "split", "group", "phash")


@dataclass(frozen=True)
class SplitParams(HasTask):
    task: TaskName = "occlusion4"   # faceocc/tasks.py: the class list (and its colours) this run is about
    ratios: tuple[float, float, float] = (0.7, 0.15, 0.15)  # train, val, test
    seed: int = 0
    group_by_identity: bool = True  # keep one person in one split where the source names them (ROF)
    # file-name patterns (fnmatch) of a whole source kept out of train/val/test, e.g. ["fdc__*"]: the split
    # "ood" that evaluate scores separately, a check on a source the model never saw
    out_of_domain: tuple[str, ...] = ()
    # file-name patterns of images that may only train, never be measured on (e.g. MaskedFace-Net's pasted-on
    # masks): their groups all go to train, and the ratios apply to the rest
    train_only: tuple[str, ...] = ()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--curated", required=True, type=Path, help="the curate stage's output folder")
    parser.add_argument("--dedup", required=True, type=Path, help="the dedup stage's output (its settings)")
    parser.add_argument("--raw", required=True, type=Path, help="the scrape stage's output (identities)")
    parser.add_argument("--out", required=True, type=Path, help="output: split.csv")
    parser.add_argument("--metrics", required=True, type=Path)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    setup_logging()
    params = load_params("split", SplitParams, args.params)
    near = json.loads((args.dedup / "settings.json").read_text())

    raw = {r["id"]: r for r in read_rows(args.raw / "manifest.csv") if r["id"]}
    items = [{**r, "identity": raw[r["source_id"]].get("identity", "")}
             for r in read_rows(args.curated / "items.csv") if r["outcome"] == "kept"]
    items.sort(key=lambda r: r["crop_id"])
    check_labels((r["label"] for r in items), params.task, "split")
    keys = ("source_id", "cluster") + (("identity",) if params.group_by_identity else ())
    groups = group_items(items, keys)
    origins = [raw[r["source_id"]]["origin"] for r in items]
    held_out = matching_groups(origins, groups, params.out_of_domain)
    train_only = matching_groups(origins, groups, params.train_only)
    for name, patterns, matched in (("out_of_domain", params.out_of_domain, held_out),
                                    ("train_only", params.train_only, train_only)):
        if patterns and not matched:
            log.warning("%s patterns %s matched no kept item", name, list(patterns))
    splits = assign_with_holdout(items, groups, params.ratios, params.seed, held_out, train_only)
    rows = [{**item, "split": s, "group": g} for item, s, g in zip(items, splits, groups)]

    hashes = np.array([int(r["phash"], 16) for r in rows], dtype=np.uint64)
    # Pairs at twice the threshold are not a failure, a pointer for reviewers: e.g. the same photo with and
    # without a drawn-on mask, in two classes, that ended up in different splits. The strict pairs are a subset.
    loose = 2 * near["max_distance"]
    loose_pairs = near_pairs(hashes, loose) if len(rows) else np.empty((0, 2), np.int64)
    pairs = loose_pairs[hamming(hashes[loose_pairs[:, 0]], hashes[loose_pairs[:, 1]]) <= near["max_distance"]]
    cross = int(sum(splits[a] != splits[b] for a, b in pairs))
    loose_cross = int(sum(splits[a] != splits[b] for a, b in loose_pairs))
    shared = {key: _shared_across_splits(rows, key) for key in ("source_id", "identity")}
    if cross or any(shared.values()):
        raise SystemExit(f"split leaks: {cross} near-duplicate pairs and {shared} groups cross splits")

    with stage_output(args.out) as tmp:
        tmp.mkdir()
        write_rows(tmp / "split.csv", rows, SPLIT_COLUMNS)
    names = SPLITS + ((OUT_OF_DOMAIN,) if params.out_of_domain else ())
    counts = {s: Counter(r["label"] for r in rows if r["split"] == s) for s in names}
    write_metrics(args.metrics, {
        "counts": {s: {c: counts[s].get(c, 0) for c in params.classes} for s in names},
        "totals": {s: sum(counts[s].values()) for s in names}, "groups": len(set(groups)),
        "train_only_items": sum(g in train_only for g in groups),
        "cross_split_near_duplicates": cross, "near_duplicate_pairs_within_splits": len(pairs) - cross,
        "cross_split_pairs_within_twice_the_threshold": loose_cross,
        "cross_split_shared_sources": shared["source_id"], "cross_split_shared_identities": shared["identity"],
        "near_duplicate_max_distance": near["max_distance"]})
    log.info("%s; %d groups; cross-split near-duplicate pairs: %d",
             {s: dict(counts[s]) for s in names}, len(set(groups)), cross)


def _shared_across_splits(rows: list[dict], key: str) -> int:
    splits_of: dict[str, set] = {}
    for r in rows:
        if r[key]:
            splits_of.setdefault(r[key], set()).add(r["split"])
    return sum(len(s) > 1 for s in splits_of.values())


if __name__ == "__main__":
    main()
