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
    """Split name per item. Groups are dealt class by class (a group counts for its most common label) in a
    seeded order, each to the split furthest below its target share of that class."""
    if len(ratios) != 3 or any(r < 0 for r in ratios) or sum(ratios) <= 0:
        raise ValueError(f"split ratios {ratios} must be three non-negative numbers")
    total = sum(ratios)
    shares = [r / total for r in ratios]
    members: dict[int, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        members[g].append(i)
    by_class: dict[str, list[int]] = defaultdict(list)
    for g, idx in members.items():
        label = Counter(items[i]["label"] for i in idx).most_common()
        label = min(name for name, n in label if n == label[0][1])  # ties: alphabetical, not random
        by_class[label].append(g)
    split_of_group: dict[int, str] = {}
    for label in sorted(by_class):
        order = sorted(by_class[label], key=lambda g: seeded_key(seed, items[members[g][0]]["crop_id"]))
        class_total = sum(len(members[g]) for g in order)
        filled = [0, 0, 0]
        for g in order:
            deficits = [shares[s] * class_total - filled[s] for s in range(3)]
            s = max(range(3), key=lambda k: (deficits[k], -k))
            split_of_group[g] = SPLITS[s]
            filled[s] += len(members[g])
    return [split_of_group[g] for g in groups]


def held_out_groups(origins: list[str], groups: list[int], patterns: tuple[str, ...]) -> set[int]:
    """Groups with any member whose origin's file name matches one of `patterns` (fnmatch, case-sensitive).
    The whole group goes: a near-duplicate of a held-out photo left in train would leak it back in."""
    return {g for origin, g in zip(origins, groups)
            if any(fnmatchcase(PurePath(origin).name, p) for p in patterns)}


def assign_with_holdout(items: list[dict], groups: list[int], ratios: tuple[float, float, float], seed: int,
                        held_out: set[int]) -> list[str]:
    """assign_splits over the items outside `held_out` groups; the held-out ones get OUT_OF_DOMAIN."""
    kept = [i for i, g in enumerate(groups) if g not in held_out]
    splits = [OUT_OF_DOMAIN] * len(items)
    for i, s in zip(kept, assign_splits([items[i] for i in kept], [groups[i] for i in kept], ratios, seed)):
        splits[i] = s
    return splits
