"""Raw image store: every source's images kept once per content hash, with a provenance row per item.

Labelled folders are read here; the web sources (ROF manifests, HTML galleries) arrive through `acquire.py`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from faceocc.atomic import write_bytes
from faceocc.images import IMAGE_SUFFIXES
from faceocc.manifest import content_hash, short_id

log = logging.getLogger(__name__)

# identity: the person where a source says (ROF); found_on: the manifest record or page that named a URL;
# annotation: the source's own face boxes and landmarks (JSON), kept when they fit the downloaded image.
RAW_COLUMNS = ("id", "sha256", "label", "source", "origin", "file", "outcome", "detail", "identity", "found_on",
               "annotation")


def list_folder(roots: Sequence[str | os.PathLike]) -> Iterator[tuple[str, Path]]:
    """(label, path) for every file under <root>/<label>/, recursively, in a stable order.

    Several roots may share label names (e.g. occlusion4/ and occlusion4_extra/): their files pool.
    """
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"scrape.folder: {root} is not a directory")
        for label_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for path in sorted(label_dir.rglob("*")):
                if path.is_file() and not path.name.startswith("."):
                    yield label_dir.name, path


class RawStore:
    """Writes raw images under `images/` named by content hash, each stored once, and collects manifest rows."""

    def __init__(self, out_dir: str | os.PathLike, classes: Sequence[str]):
        self.out_dir = Path(out_dir)
        self.classes = tuple(classes)
        self.rows: list[dict] = []
        self._seen: dict[str, dict] = {}

    def add(self, data: bytes, label: str, source: str, origin: str, suffix: str, **extra: str) -> dict:
        sha = content_hash(data)
        row = {"id": short_id(sha), "sha256": sha, "label": label, "source": source, "origin": origin,
               "file": "", "outcome": "ok", "detail": "", **extra}
        if label not in self.classes:
            row.update(outcome="unknown_label", detail=f"label {label!r} is not one of {list(self.classes)}")
            log.warning("%s: %s", origin, row["detail"])
        elif sha in self._seen:
            first = self._seen[sha]
            row.update(outcome="duplicate", detail=f"same bytes as {first['origin']} ({first['label']})")
        else:
            row["file"] = f"images/{row['id']}{suffix.lower()}"
            write_bytes(self.out_dir / row["file"], data)
            self._seen[sha] = row
        self.rows.append(row)
        return row

    def skip(self, label: str, source: str, origin: str, outcome: str, detail: str, quiet: bool = False,
             **extra: str) -> None:
        if not quiet:
            log.warning("%s: %s (%s)", origin, outcome, detail)
        self.rows.append({"id": "", "sha256": "", "label": label, "source": source, "origin": origin,
                          "file": "", "outcome": outcome, "detail": detail, **extra})


def store_folder(store: RawStore, files: Iterable[tuple[str, Path]]) -> None:
    for label, path in files:
        origin = str(path)
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            store.skip(label, "folder", origin, "not_an_image_file", f"suffix {path.suffix or '(none)'!r}")
            continue
        try:
            data = path.read_bytes()
        except OSError as err:
            store.skip(label, "folder", origin, "unreadable", str(err.strerror or err))
            continue
        store.add(data, label, "folder", origin, path.suffix)
