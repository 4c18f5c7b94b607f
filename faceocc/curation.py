"""Curation: quality filters and the reviewed overrides file (the source's manual folder-sorting, made data).

`curation/overrides.csv` lives in git; each row names a crop (`<source id>_<k>` as printed on the review sheets),
a whole source image (its 16-hex id or full sha256) and says what to do, and why:

    id,action,label,reason
    3f2a9c0d1e4b5a6c_0,relabel,mask_sunglasses,dark lenses under the mask's top edge
    77e1d0c2b3a49f10,exclude,,a drawing and not a photo
    0c1d2e3f4a5b6c7d_1,include,,small but clearly a masked face

`relabel` also settles a label conflict the dedup stage reported; `include` keeps a crop the filters would drop.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from faceocc.images import load_rgb
from faceocc.sheets import captioned_grid

CURATED_COLUMNS = ("crop_id", "source_id", "label", "original_label", "file", "outcome", "detail", "face_px",
                   "probability", "sharpness", "cluster", "phash")
OUTCOMES = ("kept", "excluded_by_override", "label_conflict", "too_small", "low_probability", "blurry")
ACTIONS = ("exclude", "relabel", "include")
OVERRIDE_COLUMNS = ("id", "action", "label", "reason")
_CROP_ID = re.compile(r"^[0-9a-f]{16}_\d+$")
_SOURCE_ID = re.compile(r"^[0-9a-f]{16}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class OverrideError(ValueError):
    """The overrides file is malformed; str(err) names the file, line and reason."""


@dataclass(frozen=True)
class Override:
    id: str           # crop id or 16-hex source id
    action: str
    label: str
    reason: str
    line: int


def read_overrides(path: str | Path, classes: tuple[str, ...]) -> list[Override]:
    """Parse and validate the overrides file; a missing file means no overrides."""
    path = Path(path)
    if not path.exists():
        return []
    overrides, seen = [], {}
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(_without_comments(fh))
        header = next((r for r in reader if r), None)
        if header is None:
            return []
        header = [h.strip() for h in header]
        missing = [c for c in OVERRIDE_COLUMNS if c not in header]
        if missing:
            raise OverrideError(f"{path}: missing column(s) {missing}; expected {list(OVERRIDE_COLUMNS)}")
        for values in reader:
            if not values:
                continue
            line = reader.line_num
            row = dict(zip(header, values))
            raw_id = row.get("id", "").strip().lower()
            action = row.get("action", "").strip().lower()
            label = row.get("label", "").strip()
            where = f"{path}:{line}"
            if _SHA256.match(raw_id):
                raw_id = raw_id[:16]  # a source's full content hash names the same image as its short id
            if not (_CROP_ID.match(raw_id) or _SOURCE_ID.match(raw_id)):
                raise OverrideError(f"{where}: id {row['id']!r} is neither a crop id (<16 hex>_<k>) nor a source id")
            if action not in ACTIONS:
                raise OverrideError(f"{where}: action {row['action']!r} is not one of {list(ACTIONS)}")
            if action == "relabel" and label not in classes:
                raise OverrideError(f"{where}: relabel needs a label from {list(classes)}, got {label!r}")
            if not row.get("reason", "").strip():
                raise OverrideError(f"{where}: give a reason, so a reviewer knows why")
            if raw_id in seen:
                raise OverrideError(f"{where}: {raw_id} already has an override on line {seen[raw_id]}")
            seen[raw_id] = line
            overrides.append(Override(raw_id, action, label, row["reason"].strip(), line))
    return overrides


def _without_comments(lines):
    for line in lines:
        yield "" if line.lstrip().startswith("#") else line


@dataclass(frozen=True)
class QualityFilter:
    min_face_px: float = 32.0      # shorter side of the face box in its source image
    min_probability: float = 0.9   # MTCNN's face probability
    min_sharpness: float = 15.0    # variance of the Laplacian of the 112 px crop


def curate(items: list[dict], overrides: list[Override], quality: QualityFilter) -> tuple[list[dict], list[str]]:
    """Decide each dedup representative's fate. Returns (rows with final label and outcome, unmatched ids).

    Outcome is `kept` or why not: `excluded_by_override`, `label_conflict` (unresolved), `too_small`,
    `low_probability`, `blurry`. `detail` carries the override's reason or the measured value.
    """
    by_crop = {o.id: o for o in overrides if "_" in o.id}
    by_source = {o.id: o for o in overrides if "_" not in o.id}
    used: set[str] = set()
    rows = []
    for item in items:
        override = by_crop.get(item["crop_id"]) or by_source.get(item["source_id"])
        row = {**item, "original_label": item["label"], "detail": ""}
        if override:
            used.add(override.id)
        if override and override.action == "exclude":
            row.update(outcome="excluded_by_override", detail=override.reason)
        elif override and override.action == "relabel":
            row.update(label=override.label, outcome="kept", detail=f"relabelled: {override.reason}")
        elif item["dedup_outcome"] == "label_conflict":
            row.update(outcome="label_conflict", detail="near-duplicate copies carry different labels; "
                                                        "settle it with a relabel or exclude override")
        else:
            row["outcome"] = "kept"
        if row["outcome"] == "kept" and not (override and override.action == "include"):
            row.update(_quality_verdict(item, quality) or {})
        rows.append(row)
    unmatched = sorted({o.id for o in overrides} - used)
    return rows, unmatched


def _quality_verdict(item: dict, quality: QualityFilter) -> dict | None:
    if float(item["face_px"]) < quality.min_face_px:
        return {"outcome": "too_small", "detail": f"face {item['face_px']} px < {quality.min_face_px:g}"}
    if float(item["probability"]) < quality.min_probability:
        return {"outcome": "low_probability", "detail": f"p={item['probability']} < {quality.min_probability:g}"}
    if float(item["sharpness"]) < quality.min_sharpness:
        return {"outcome": "blurry", "detail": f"Laplacian variance {item['sharpness']} < {quality.min_sharpness:g}"}
    return None


@dataclass(frozen=True)
class CurateParams:
    quality: QualityFilter = field(default_factory=QualityFilter)
    sheet_max: int = 240          # crops per class on a review sheet (the first by id)


def review_sheets(rows: list[dict], faces: Path, classes: tuple[str, ...], limit: int) -> dict[str, np.ndarray]:
    """{name: picture}: the kept crops of each class, captioned with the ids overrides.csv takes, and the dropped
    ones by outcome; the first `limit` of each."""
    sheets = {}
    for label in classes:
        kept = sorted((r for r in rows if r["outcome"] == "kept" and r["label"] == label), key=lambda r: r["crop_id"])
        tiles = [(r["crop_id"], load_rgb(faces / r["file"])) for r in kept[:limit]]
        title = f"{label}: {len(kept)} kept" + (f", first {limit} shown" if len(kept) > limit else "")
        sheets[label] = captioned_grid(tiles, title)
    dropped = sorted((r for r in rows if r["outcome"] != "kept"), key=lambda r: (r["outcome"], r["crop_id"]))
    tiles = [(r["crop_id"], load_rgb(faces / r["file"])) for r in dropped[:limit]]
    sheets["dropped"] = captioned_grid(tiles, f"dropped: {len(dropped)} (by outcome)")
    return sheets


def metrics(rows: list[dict], classes: tuple[str, ...], overrides: int, unmatched: int) -> dict:
    outcomes = Counter(r["outcome"] for r in rows)
    kept_by_label = Counter(r["label"] for r in rows if r["outcome"] == "kept")
    return {"candidates": len(rows), "outcomes": {k: outcomes.get(k, 0) for k in OUTCOMES},
            "kept_per_label": {c: kept_by_label.get(c, 0) for c in classes},
            "overrides": overrides, "overrides_unmatched": unmatched,
            "relabelled": sum(r["label"] != r["original_label"] for r in rows)}
