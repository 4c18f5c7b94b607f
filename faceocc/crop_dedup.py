"""The dedup stage over the crop stage's output: each crop hashed (landmark-aligned, so detection-box jitter does
not split a cluster), the clusters resolved by faceocc/dedup.py, and a review sheet of the largest clusters."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tqdm import tqdm

from faceocc.dedup import align_face, perceptual_hash, pixel_hash, sharpness
from faceocc.faces import LANDMARK_NAMES
from faceocc.images import ImageDecodeError, load_rgb
from faceocc.manifest import read_rows
from faceocc.sheets import contact_sheet
from faceocc.workspace import CROPS_CSV, FACES

log = logging.getLogger("dedup")


@dataclass(frozen=True)
class DedupParams:
    hash: Literal["phash", "dhash", "ahash", "whash"] = "phash"  # imagehash's 64-bit hashes
    align: bool = True             # hash the landmark-aligned crop (removes detection-box jitter)
    max_distance: int = 4          # Hamming bits; pairs at or below are near duplicates
    sheet_clusters: int = 16       # the largest clusters drawn in the review sheet


def hash_crops(crops: Path, params: DedupParams) -> tuple[list[dict], list[str]]:
    """(one item per readable crop of crops.csv: its hashes and quality fields, the crop ids that could not be
    read)."""
    items, unreadable = [], []
    for row in tqdm(read_rows(crops / CROPS_CSV), desc="dedup: hashing", unit="crop"):
        try:
            image = load_rgb(crops / FACES / row["file"])
        except ImageDecodeError as err:
            log.warning("%s: unreadable crop (%s)", row["file"], err)
            unreadable.append(row["crop_id"])
            continue
        items.append({"crop_id": row["crop_id"], "source_id": row["source_id"], "label": row["label"],
                      "file": row["file"], "phash": perceptual_hash(hashed_view(image, row, params.align), params.hash),
                      "pixel_sha256": pixel_hash(image),
                      "face_px": face_px(row),
                      "probability": float(row["probability"]), "sharpness": round(sharpness(image), 2)})
    return items, unreadable


def metrics(rows: list[dict], clusters: list[dict], unreadable: list[str], max_distance: int) -> dict:
    outcomes = Counter(r["outcome"] for r in rows)
    by_label = {}
    for label in sorted({r["label"] for r in rows}):
        mine = [r for r in rows if r["label"] == label]
        by_label[label] = {"crops": len(mine), "kept": sum(r["outcome"] == "kept" for r in mine),
                           "duplicates_dropped": sum(r["outcome"].endswith("duplicate") for r in mine)}
    return {"crops": len(rows) + len(unreadable), "unreadable": len(unreadable),
            "outcomes": {k: outcomes.get(k, 0)
                         for k in ("kept", "label_conflict", "exact_duplicate", "near_duplicate")},
            "clusters_with_duplicates": len(clusters), "largest_cluster": max((c["size"] for c in clusters), default=1),
            "label_conflict_clusters": sum(c["conflict"] for c in clusters), "by_label": by_label,
            "max_distance": max_distance}


def hashed_view(image, crop_row: dict, align: bool):
    if not align:
        return image
    landmarks = [(float(crop_row[f"crop_{n}_x"]), float(crop_row[f"crop_{n}_y"])) for n in LANDMARK_NAMES]
    return align_face(image, landmarks)


def face_px(crop_row: dict) -> float:
    """The shorter side of the face box in source pixels."""
    return round(min(float(crop_row["x2"]) - float(crop_row["x1"]), float(crop_row["y2"]) - float(crop_row["y1"])), 1)


def cluster_sheet(faces_dir: Path, rows: list[dict], clusters: list[dict], limit: int):
    """Bands of the largest clusters, representative first, so a reviewer sees what was merged."""
    files = {r["crop_id"]: r["file"] for r in rows}
    bands = []
    for c in sorted(clusters, key=lambda c: (-c["size"], c["cluster"]))[:limit]:
        ids = c["members"].split()
        title = f"cluster {c['cluster']}: {c['size']} crops, labels {c['labels']}" + (
            "  LABEL CONFLICT" if c["conflict"] else "") + f"; kept {c['representative']}"
        bands.append((title, [load_rgb(faces_dir / files[i]) for i in ids[:8]]))
    return contact_sheet(bands or [("no duplicate clusters", [])], tile=96)
