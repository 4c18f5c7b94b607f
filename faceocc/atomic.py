"""Atomic writes: a reader (or an interrupted run) never sees a half-written output."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling path; on success rename it over `final` (file or directory)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    target = tmp / final.name
    try:
        yield target
        if final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        os.replace(target, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def stage_output(final: str | os.PathLike) -> Iterator[Path]:
    """`atomic_path` for a stage's declared output, after removing what a killed run of the stage left beside
    it (a SIGKILL skips every `finally`). DVC runs one stage of a repository at a time, so nothing else is
    writing there."""
    remove_stale_temps(final)
    with atomic_path(final) as target:
        yield target


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj) -> None:
    # sorted keys and a trailing newline keep `git diff` / `dvc metrics diff` readable
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_metrics(path: str | os.PathLike, figures: dict) -> None:
    """A DVC metrics file: the numbers of `figures` only (booleans as 0 / 1; strings, such as names of a model,
    a method or the CPU, left out), so that `dvc metrics show / diff` list figures. The stage's report says the
    rest."""
    write_json(path, numbers_only(figures) or {})


def numbers_only(value):
    """`value` without its strings and None, recursively; a dict or list left empty by that is dropped too."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, dict):
        kept = {k: numbers_only(v) for k, v in value.items()}
        kept = {k: v for k, v in kept.items() if v is not None}
        return kept or None
    if isinstance(value, (list, tuple)):  # positions mean something (a confusion row): a gap stays a null
        kept = [numbers_only(v) for v in value]
        return kept if any(v is not None for v in kept) else None
    return None


def remove_stale_temps(final: str | os.PathLike) -> int:
    """Delete temporaries an interrupted (killed) writer of `final` left beside it; returns how many.

    Call only where no other process writes `final` at the same time, e.g. at the start of a stage.
    """
    final = Path(final)
    stale = list(final.parent.glob(f".{final.name}.*.tmp")) if final.parent.is_dir() else []
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return len(stale)
