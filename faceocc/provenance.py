"""Where a model came from: the faceocc version, the date, and the source commit (with uncommitted changes
flagged), recorded in a release's release.json and printed by `faceocc --version`."""

from __future__ import annotations

import datetime
import subprocess
from importlib import metadata
from pathlib import Path


def version() -> str:
    """The installed faceocc's version (pyproject.toml), or "unknown" when run from a tree never installed."""
    try:
        return metadata.version("faceocc")
    except metadata.PackageNotFoundError:
        return "unknown"


def source_commit(repo: Path) -> dict:
    """The repository's HEAD and whether tracked files differ from it; empty values outside a git checkout."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": "", "uncommitted_changes": None}
    changes = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "uncommitted_changes": bool(changes)}


def provenance(repo: Path, today: datetime.date | None = None) -> dict:
    """What release.json records about its making."""
    return {"faceocc_version": version(), "date": (today or datetime.datetime.now(datetime.UTC).date()).isoformat(),
            **source_commit(repo)}
