"""Seeded choices that depend on an item's identity, not on the order items happen to be processed in."""

from __future__ import annotations

import hashlib


def _digest(seed: int, *parts) -> bytes:
    return hashlib.sha256(":".join(str(p) for p in (seed, *parts)).encode()).digest()


def seeded_key(seed: int, *parts) -> str:
    """A sort key: sorting by it is a seeded shuffle that each item keeps wherever it appears."""
    return _digest(seed, *parts).hex()


def seeded_order(ids: list[str], seed: int, salt: str = "") -> list[str]:
    return sorted(ids, key=lambda i: seeded_key(seed, salt, i))


def item_seed(seed: int, *parts) -> int:
    """A 32-bit RNG seed from the run seed and an item's identity."""
    return int.from_bytes(_digest(seed, *parts)[:4], "little")
