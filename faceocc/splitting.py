"""Leakage-safe stratified splits: items that share a source image, an identity or a near-duplicate cluster
form one group, and a group goes to exactly one split.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import PurePath

import numpy as np

from faceocc.dedup import cross_group_pairs
from faceocc.seeding import seeded_key

log = logging.getLogger("split")

SPLITS = ("train", "val", "test")
OUT_OF_DOMAIN = "ood"  # a whole source kept out of training, val and test: the check on photos never seen
SPLIT_COLUMNS = ("crop_id", "source_id", "identity", "label", "file", "split", "group", "phash")


@dataclass(frozen=True)
class SplitParams:
    ratios: tuple[float, float, float] = (0.7, 0.15, 0.15)  # train, val, test
    seed: int = 0
    group_by_identity: bool = True  # keep one person in one split where the source names them (ROF)
    # file-name patterns (fnmatch) of a whole source kept out of train/val/test, e.g. ["fdc__*"]: the split
    # "ood" that evaluate scores separately, a check on a source the model never saw
    out_of_domain: tuple[str, ...] = ()
    # file-name patterns of images that may only train, never be measured on (e.g. MaskedFace-Net's pasted-on
    # masks): their groups all go to train, and the ratios apply to the rest
    train_only: tuple[str, ...] = ()


class SplitLeak(ValueError):
    """Near-duplicates, a source photo or an identity found in two splits after assignment."""


def split_rows(params: SplitParams, classes: tuple[str, ...], items: list[dict], origins: list[str],
               near_max_distance: int) -> tuple[list[dict], dict]:
    """(split.csv rows, the stage's metrics) for the curated `items` (sorted by crop_id, each with its source's
    identity) whose source files are `origins`. SplitLeak when a group straddles two splits after all."""
    keys = ("source_id", "cluster") + (("identity",) if params.group_by_identity else ())
    groups = group_items(items, keys)
    held_out = matching_groups(origins, groups, params.out_of_domain)
    train_only = matching_groups(origins, groups, params.train_only)
    for name, patterns, matched in (("out_of_domain", params.out_of_domain, held_out),
                                    ("train_only", params.train_only, train_only)):
        if patterns and not matched:
            log.warning("%s patterns %s matched no kept item", name, list(patterns))
    splits = assign_with_holdout(items, groups, params.ratios, params.seed, held_out, train_only)
    rows = [{**item, "split": s, "group": g} for item, s, g in zip(items, splits, groups)]
    hashes = np.array([int(r["phash"], 16) for r in rows], dtype=np.uint64)
    pairs = cross_group_pairs(hashes, splits, near_max_distance)
    shared = {key: _shared_across_splits(rows, key) for key in ("source_id", "identity")}
    if pairs["cross"] or any(shared.values()):
        raise SplitLeak(f"split leaks: {pairs['cross']} near-duplicate pairs and {shared} groups cross splits")
    names = SPLITS + ((OUT_OF_DOMAIN,) if params.out_of_domain else ())
    counts = {s: Counter(r["label"] for r in rows if r["split"] == s) for s in names}
    return rows, {
        "counts": {s: {c: counts[s].get(c, 0) for c in classes} for s in names},
        "totals": {s: sum(counts[s].values()) for s in names}, "groups": len(set(groups)),
        "train_only_items": sum(g in train_only for g in groups),
        "cross_split_near_duplicates": pairs["cross"], "near_duplicate_pairs_within_splits": pairs["within"],
        "cross_split_pairs_within_twice_the_threshold": pairs["loose_cross"],
        "cross_split_shared_sources": shared["source_id"], "cross_split_shared_identities": shared["identity"],
        "near_duplicate_max_distance": near_max_distance}


def _shared_across_splits(rows: list[dict], key: str) -> int:
    splits_of: dict[str, set] = {}
    for r in rows:
        if r[key]:
            splits_of.setdefault(r[key], set()).add(r["split"])
    return sum(len(s) > 1 for s in splits_of.values())


def group_items(items: list[dict], keys: tuple[str, ...]) -> list[int]:
    """Group number per item: items sharing a non-empty value of any of `keys` are joined (union-find)."""
    parent = list(range(len(items)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for key in keys:
        first: dict[str, int] = {}
        for i, item in enumerate(items):
            value = str(item.get(key, "") or "")
            if not value:
                continue
            if value in first:
                a, b = find(i), find(first[value])
                if a != b:
                    parent[max(a, b)] = min(a, b)
            else:
                first[value] = i
    roots: dict[int, int] = {}
    return [roots.setdefault(find(i), len(roots)) for i in range(len(items))]


def assign_splits(items: list[dict], groups: list[int], ratios: tuple[float, float, float], seed: int) -> list[str]:
    """Split name per item. Groups are dealt class by class in a seeded order, each to the split furthest below
    its target share of that class's items.

    A group with several labels (a crowd photo: ten correct masks and one worn wrongly) is dealt as the rarest
    of them overall: dealt as its commonest, the rare class's few faces would land wherever the common class
    needed room, and val or test could end up with almost none of them."""
    if len(ratios) != 3 or any(r < 0 for r in ratios) or sum(ratios) <= 0:
        raise ValueError(f"split ratios {ratios} must be three non-negative numbers")
    total = sum(ratios)
    shares = [r / total for r in ratios]
    members: dict[int, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        members[g].append(i)
    overall = Counter(item["label"] for item in items)
    by_class: dict[str, list[int]] = defaultdict(list)
    for g, idx in members.items():
        label = min({items[i]["label"] for i in idx}, key=lambda c: (overall[c], c))  # ties: alphabetical
        by_class[label].append(g)
    split_of_group: dict[int, str] = {}
    for label in sorted(by_class):
        order = sorted(by_class[label], key=lambda g: seeded_key(seed, items[members[g][0]]["crop_id"]))
        size = {g: sum(items[i]["label"] == label for i in members[g]) for g in order}
        class_total = sum(size.values())
        filled = [0, 0, 0]
        for g in order:
            deficits = [shares[s] * class_total - filled[s] for s in range(3)]
            s = max(range(3), key=lambda k: (deficits[k], -k))
            split_of_group[g] = SPLITS[s]
            filled[s] += size[g]
    return [split_of_group[g] for g in groups]


def matching_groups(origins: list[str], groups: list[int], patterns: tuple[str, ...]) -> set[int]:
    """Groups with any member whose origin's file name matches one of `patterns` (fnmatch, case-sensitive).
    The whole group goes: a near-duplicate of a held-out photo left in train would leak it back in."""
    return {g for origin, g in zip(origins, groups)
            if any(fnmatchcase(PurePath(origin).name, p) for p in patterns)}


def assign_with_holdout(items: list[dict], groups: list[int], ratios: tuple[float, float, float], seed: int,
                        held_out: set[int], train_only: set[int] = frozenset()) -> list[str]:
    """assign_splits over the items outside `held_out` and `train_only` groups; the held-out ones get
    OUT_OF_DOMAIN (first, should a group be both), the train-only ones (e.g. synthetic images) `train`."""
    fixed = {g: OUT_OF_DOMAIN for g in held_out}
    fixed.update({g: "train" for g in train_only if g not in fixed})
    kept = [i for i, g in enumerate(groups) if g not in fixed]
    splits = [fixed.get(g, "") for g in groups]
    for i, s in zip(kept, assign_splits([items[i] for i in kept], [groups[i] for i in kept], ratios, seed)):
        splits[i] = s
    return splits
