"""Raw image store: every source's images kept once per content hash, with a provenance row per item.

Labelled folders and PascalVOC folders are read here; the web sources (ROF manifests, HTML galleries) arrive
through `acquire.py`.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from faceocc.atomic import write_bytes
from faceocc.images import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    FORMAT_SUFFIX,
    IMAGE_SUFFIXES,
    ImageDecodeError,
    decode_rgb,
    encode_png,
    load_rgb,
    read_capped,
    sniff_format,
    sniff_other,
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


def list_folder(roots: Sequence[str | os.PathLike]) -> Iterator[tuple[str, Path, str | None]]:
    """(label, path, problem) for every entry under <root>/<label>/, recursively, in a stable order; `problem`
    is why it cannot be read (a dangling link, a FIFO, an empty folder...) or None. An entry outside a label
    folder (a file at the root, a hidden folder) comes with label '' and the reason it is not read.

    Several roots may share label names (e.g. occlusion4/ and occlusion4_extra/): their files pool.
    """
    from faceocc.inputs import list_inputs

    for root in roots:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"scrape.folder: {root} is not a directory")
        for child in sorted(root.iterdir()):
            if child.name in FOLDER_METADATA and child.is_file():
                yield "", child, FOLDER_METADATA[child.name]
            elif not child.is_dir():
                yield "", child, "not in a label folder (a file directly under the root; put it in <root>/<label>/)"
            elif child.name.startswith("."):
                yield "", child, "hidden folder, not read as a label"
            else:
                for entry in list_inputs([child]):
                    yield child.name, entry.path, entry.problem


# files a folder root may hold beside its label folders, and what they are
FOLDER_METADATA = {"crops.csv": "metadata: the face boxes of this folder's crops (read, not an item)",
                   "README.md": "metadata: the folder's description (not an item)"}


class RawStore:
    """Writes raw images under `images/` named by content hash, each stored once, and collects manifest rows."""

    def __init__(self, out_dir: str | os.PathLike, classes: Sequence[str]):
        self.out_dir = Path(out_dir)
        self.classes = tuple(classes)
        self.rows: list[dict] = []
        self._seen: dict[str, dict] = {}        # content hash -> the row of the copy stored
        self._copies: dict[str, list[dict]] = {}  # content hash -> every row of those bytes

    def add(self, data: bytes, label: str, source: str, origin: str, suffix: str, **extra: str) -> dict:
        sha = content_hash(data)
        row = {"id": short_id(sha), "sha256": sha, "label": label, "source": source, "origin": origin,
               "file": "", "outcome": "ok", "detail": "", **extra}
        if label not in self.classes:
            row.update(outcome="unknown_label", detail=f"label {label!r} is not one of {list(self.classes)}")
            log.warning("%s: %s", origin, row["detail"])
        elif sha in self._seen:
            first = self._seen[sha]
            if label != first["label"] or first["outcome"] == "label_conflict":
                # which label is right is a person's call: no copy goes on until the source is fixed
                row.update(outcome="label_conflict", detail=f"same bytes as {first['origin']} labelled "
                           f"{first['label']}; give the picture one label")
                log.warning("%s: %s", origin, row["detail"])
                if first["outcome"] != "label_conflict":
                    (self.out_dir / first["file"]).unlink(missing_ok=True)
                    for earlier in self._copies[sha]:  # the stored one and its same-label duplicates
                        earlier.update(outcome="label_conflict", file="", detail=f"same bytes as {origin} "
                                       f"labelled {label}; give the picture one label")
            else:
                row.update(outcome="duplicate", detail=f"same bytes as {first['origin']} ({first['label']})")
        else:
            row["file"] = f"images/{row['id']}{suffix.lower()}"
            write_bytes(self.out_dir / row["file"], data)
            self._seen[sha] = row
        self._copies.setdefault(sha, []).append(row)
        self.rows.append(row)
        return row

    def skip(self, label: str, source: str, origin: str, outcome: str, detail: str, quiet: bool = False,
             **extra: str) -> None:
        if not quiet:
            log.warning("%s: %s (%s)", origin, outcome, detail)
        self.rows.append({"id": "", "sha256": "", "label": label, "source": source, "origin": origin,
                          "file": "", "outcome": outcome, "detail": detail, **extra})


def store_folder(store: RawStore, files: Iterable[tuple[str, Path, str | None]],
                 crops: Mapping[Path, "CropOrigin"] = {}, max_pixels: int = DEFAULT_MAX_PIXELS,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:
    """Every entry as a raw item of its label, a file taken by its content, whatever its name; an entry that
    cannot be one gets a row saying why. A file `crops` names (a crops.csv row) was cut around one face of a
    larger photo: that face's box is its annotation, so the crop stage cuts the labelled face and not the largest
    bystander, and the photo is its identity, so the split keeps the crops of one photo together."""
    for label, path, problem in files:
        origin = str(path)
        if problem is not None:
            outcome = ("metadata" if problem.startswith("metadata") else
                       "unreadable" if label and problem.startswith(("dangling", "not a regular", "unreadable"))
                       else "not_read")
            store.skip(label, "folder", origin, outcome, problem, quiet=outcome == "metadata")
            continue
        try:
            data = read_capped(path, max_bytes)
        except ImageDecodeError as err:
            outcome = "too_large" if str(err).startswith("too large") else "unreadable"
            store.skip(label, "folder", origin, outcome, str(err).removeprefix("unreadable file: "))
            continue
        image_format = sniff_format(data)
        if image_format is None:
            other = sniff_other(data)
            reason = "empty file" if not data else f"not an image: {other or 'no image signature'}"
            store.skip(label, "folder", origin, "not_an_image", f"{reason} (suffix {path.suffix or '(none)'!r})")
            continue
        suffix = path.suffix.lower() if path.suffix.lower() in IMAGE_SUFFIXES else FORMAT_SUFFIX[image_format]
        extra = {}
        cut = crops.get(path)
        if cut is not None:
            extra["identity"] = cut.photo
            try:  # the box in the pixels the crop stage will see: as decoded, after any EXIF rotation
                height, width = decode_rgb(data, max_pixels).shape[:2]
                box = box_in_crop(cut.face, cut.frame, width, height)
                extra["annotation"] = json.dumps([{"box": [round(v, 2) for v in box]}], separators=(",", ":"))
            except ImageDecodeError:
                pass  # stored as it is: the crop stage names the file and why it cannot be read
        store.add(data, label, "folder", origin, suffix, **extra)


@dataclass(frozen=True)
class CropOrigin:
    """Where a file of a crops folder was cut from (a crops.csv row, as shared/datasets/occlusion4_more has):
    the labelled face and the crop, both boxes (x1, y1, x2, y2) in the source photo's pixels, and that photo."""
    face: tuple[float, float, float, float]
    frame: tuple[float, float, float, float]
    photo: str


def read_crops_csv(path: str | os.PathLike) -> dict[str, CropOrigin]:
    """{file (relative to the csv's folder): CropOrigin} from a crops.csv (columns file, face_box_xyxy,
    crop_box_xyxy, and source_repo / source_path naming the photo); a row without both boxes gives none."""
    origins = {}
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            try:
                face = tuple(float(v) for v in row["face_box_xyxy"].split())
                frame = tuple(float(v) for v in row["crop_box_xyxy"].split())
            except (KeyError, AttributeError, ValueError):
                continue
            if len(face) == 4 and len(frame) == 4 and frame[2] > frame[0] and frame[3] > frame[1]:
                photo = "/".join(v for v in (row.get("source_repo"), row.get("source_path")) if v) or row["file"]
                origins[row.get("file") or ""] = CropOrigin(face, frame, photo)
    return origins


def box_in_crop(face: tuple, frame: tuple, width: int, height: int) -> tuple[float, float, float, float]:
    """The `face` box (photo pixels) in the pixels of a crop of the photo's `frame`, decoded at `width` x `height`
    (the crop may have been shrunk after it was cut)."""
    fx1, fy1, fx2, fy2 = frame
    sx, sy = width / (fx2 - fx1), height / (fy2 - fy1)
    x1, y1, x2, y2 = face
    return ((x1 - fx1) * sx, (y1 - fy1) * sy, (x2 - fx1) * sx, (y2 - fy1) * sy)


def folder_crops(root: str | os.PathLike) -> dict[Path, CropOrigin]:
    """{path: CropOrigin} of a folder root's crops.csv; empty when it has none."""
    root = Path(root)
    csv_path = root / "crops.csv"
    if not csv_path.is_file():
        return {}
    return {root / rel: origin for rel, origin in read_crops_csv(csv_path).items()}


def photo_series(paths: Iterable[Path], max_bits: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> dict[Path, Path]:
    """{photo: the first photo (in `paths` order) of its series}: photos whose whole-picture perceptual hashes
    differ by at most `max_bits` are one series, e.g. a stock shoot of one model with the mask in different places.
    Such photos are not near-duplicates (dedup compares face crops at a few bits), yet a split that puts one in
    train and its sibling in test measures memory. A photo that does not decode is a series of its own."""
    from faceocc.dedup import cluster, perceptual_hash  # imagehash and OpenCV: only for the VOC sources

    hashed, hashes = [], []
    for path in paths:
        try:
            hashes.append(perceptual_hash(load_rgb(path, max_pixels)))
            hashed.append(path)
        except ImageDecodeError:
            continue
    first: dict[int, Path] = {}
    labels = cluster(hashes, max_bits)
    series = {}
    for path, label in zip(hashed, labels):
        series[path] = first.setdefault(int(label), path)
    return series


def voc_files(root: str | os.PathLike) -> list[Path]:
    return sorted((Path(root) / "annotations").glob("*.xml"))


def store_voc(store: RawStore, root: str | os.PathLike, xml_files: Iterable[Path], label_of=lambda name: name,
              context: float = 1.0, max_pixels: int = DEFAULT_MAX_PIXELS,
              series: Mapping[Path, Path] = {}) -> None:
    """Every annotated face of a PascalVOC folder as a raw item of its own.

    A raw item carries one label, and a crowd photo holds faces of several classes, so each object is stored as
    the region around its box (the box's long side plus `context` of it on every side, clipped to the image),
    with the box in that region's pixels as its annotation: the crop stage cuts the annotated face instead of
    searching for one. The photo's name is the items' identity, so the split keeps a photo's faces together; with
    `series` (photo_series), the name of the first photo of its series, so the split keeps a series together.
    """
    root = Path(root)
    for xml in xml_files:
        origin = str(xml)
        try:
            ann = parse_voc(xml)
        except VocError as err:
            store.skip("", "voc", origin, "bad_annotation", str(err).removeprefix(f"{xml}: "))
            continue
        if ann.filename and not _inside(root / "images" / ann.filename, root / "images"):
            store.skip("", "voc", origin, "bad_annotation",
                       f"<filename> {ann.filename!r} points outside images/ (not read)")
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
        identity = f"{root.name}/{series.get(image_path, image_path).stem}"
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


def _inside(path: Path, folder: Path) -> bool:
    """Whether `path`, links and `..` resolved, lies inside `folder`: an annotation names a file, never a path."""
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(folder))


def voc_image(root: Path, xml: Path, filename: str) -> Path | None:
    named = root / "images" / filename if filename else None
    if named is not None and named.is_file():
        return named
    # files re-encoded after annotation keep the XML's stem but not always its <filename>
    same_stem = sorted(p for p in (root / "images").glob(f"{xml.stem}.*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return same_stem[0] if same_stem else None
