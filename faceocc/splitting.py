"""Leakage-safe stratified splits: items that share a source image, an identity or a near-duplicate cluster
form one group, and a group goes to exactly one split.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from fnmatch import fnmatchcase
from pathlib import PurePath

from faceocc.seeding import seeded_key

SPLITS = ("train", "val", "test")
OUT_OF_DOMAIN = "ood"  # a whole source kept out of training, val and test: the check on photos never seen


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
