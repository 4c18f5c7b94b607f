"""CSV manifests: one row per item, written atomically, read back as plain dicts."""

from __future__ import annotations

import csv
import hashlib
import io
import os
from typing import Iterable, Sequence

from faceocc.atomic import write_text


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def short_id(sha256: str) -> str:
    """64 bits of the content hash: collision odds stay negligible far beyond a million images."""
    return sha256[:16]


def write_rows(path: str | os.PathLike, rows: Iterable[dict], columns: Sequence[str]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="raise", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k, "")) for k in columns})
    write_text(path, buf.getvalue())


def read_rows(path: str | os.PathLike) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _cell(value) -> str:
    # fixed precision keeps manifests byte-stable across runs (DVC hashes them)
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)
