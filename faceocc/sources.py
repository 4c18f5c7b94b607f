"""Raw image store: every source's images kept once per content hash, with a provenance row per item.

Labelled folders and PascalVOC folders are read here; the web sources (ROF manifests, HTML galleries) arrive
through `acquire.py`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from faceocc.atomic import write_bytes
from faceocc.images import (
    DEFAULT_MAX_PIXELS,
    IMAGE_SUFFIXES,
    ImageDecodeError,
    encode_png,
    load_rgb,
)
from faceocc.manifest import content_hash, short_id
from faceocc.voc import VocError, parse_voc

log = logging.getLogger(__name__)

# identity: the person where a source says (ROF); found_on: the manifest record or page that named a URL;
# annotation: the source's own face boxes and landmarks (JSON), kept when they fit the downloaded image.
RAW_COLUMNS = ("id", "sha256", "label", "source", "origin", "file", "outcome", "detail", "identity", "found_on",
               "annotation")


def is_voc_root(root: str | os.PathLike) -> bool:
    """A PascalVOC folder: `annotations/*.xml` beside `images/` (mask_detection's layout), not <label>/ folders."""
    root = Path(root)
    return (root / "images").is_dir() and any((root / "annotations").glob("*.xml"))


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


def voc_files(root: str | os.PathLike) -> list[Path]:
    return sorted((Path(root) / "annotations").glob("*.xml"))


def store_voc(store: RawStore, root: str | os.PathLike, xml_files: Iterable[Path], label_of=lambda name: name,
              context: float = 1.0, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """Every annotated face of a PascalVOC folder as a raw item of its own.

    A raw item carries one label, and a crowd photo holds faces of several classes, so each object is stored as
    the region around its box (the box's long side plus `context` of it on every side, clipped to the image),
    with the box in that region's pixels as its annotation: the crop stage cuts the annotated face instead of
    searching for one. The photo's name is the items' identity, so the split keeps a photo's faces together.
    """
    root = Path(root)
    for xml in xml_files:
        origin = str(xml)
        try:
            ann = parse_voc(xml)
        except VocError as err:
            store.skip("", "voc", origin, "bad_annotation", str(err).removeprefix(f"{xml}: "))
            continue
        image_path = voc_image(root, xml, ann.filename)
        if image_path is None:
            store.skip("", "voc", origin, "image_missing", f"no images/{ann.filename or xml.stem + '.*'}")
            continue
        try:
            image = load_rgb(image_path, max_pixels)
        except ImageDecodeError as err:
            store.skip("", "voc", str(image_path), "decode_error", str(err))
            continue
        if image.shape[:2] != (ann.height, ann.width):
            # the boxes were drawn on another version of the picture: scaling them would only guess
            store.skip("", "voc", origin, "size_mismatch",
                       f"annotation says {ann.width}x{ann.height}, image is {image.shape[1]}x{image.shape[0]}")
            continue
        for reason in ann.dropped:
            store.skip("", "voc", origin, "annotation_dropped", reason)
        identity = f"{root.name}/{image_path.stem}"
        for k, obj in enumerate(ann.objects):
            region, box = face_region(image, obj.box, context)
            store.add(encode_png(region), label_of(obj.name), "voc", f"{origin}#{k}", ".png", identity=identity,
                      annotation=json.dumps([{"box": [round(v, 2) for v in box]}], separators=(",", ":")))


def face_region(image, box: tuple[float, float, float, float], context: float):
    """(region, box in region pixels): the square around `box` with `context` of its long side on each side,
    clipped to the image."""
    x1, y1, x2, y2 = box
    pad = max(x2 - x1, y2 - y1) * context
    h, w = image.shape[:2]
    left, top = max(0, int(x1 - pad)), max(0, int(y1 - pad))
    right, bottom = min(w, round(x2 + pad)), min(h, round(y2 + pad))
    return image[top:bottom, left:right], (x1 - left, y1 - top, x2 - left, y2 - top)


def voc_image(root: Path, xml: Path, filename: str) -> Path | None:
    named = root / "images" / filename if filename else None
    if named is not None and named.is_file():
        return named
    # files re-encoded after annotation keep the XML's stem but not always its <filename>
    same_stem = sorted(p for p in (root / "images").glob(f"{xml.stem}.*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return same_stem[0] if same_stem else None
