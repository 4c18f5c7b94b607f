"""Stage `dedup`: exact and near-duplicate face crops clustered; one representative kept per cluster."""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tqdm import tqdm

from faceocc.atomic import stage_output, write_bytes, write_json, write_metrics
from faceocc.dedup import (CLUSTER_COLUMNS, ITEM_COLUMNS, align_face, perceptual_hash, pixel_hash,
                           resolve_clusters, sharpness)
from faceocc.faces import LANDMARK_NAMES
from faceocc.images import ImageDecodeError, encode_png, load_rgb
from faceocc.manifest import read_rows, write_rows
from faceocc.sheets import contact_sheet
from stages._common import load_params, setup_logging

log = logging.getLogger("dedup")


@dataclass(frozen=True)
class DedupParams:
    hash: Literal["phash", "dhash", "ahash", "whash"] = "phash"  # imagehash's 64-bit hashes
    align: bool = True             # hash the landmark-aligned crop (removes detection-box jitter)
    max_distance: int = 4          # Hamming bits; pairs at or below are near duplicates
    sheet_clusters: int = 16       # the largest clusters drawn in the review sheet


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--crops", required=True, type=Path, help="the crop stage's output folder")
    parser.add_argument("--out", required=True, type=Path, help="output: items.csv, clusters.csv, settings.json")
    parser.add_argument("--metrics", required=True, type=Path)
    parser.add_argument("--sheet", required=True, type=Path, help="PNG of the largest clusters")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    setup_logging()
    params = load_params("dedup", DedupParams, args.params)

    items, unreadable = [], []
    for row in tqdm(read_rows(args.crops / "crops.csv"), desc="dedup: hashing", unit="crop"):
        try:
            image = load_rgb(args.crops / "faces" / row["file"])
        except ImageDecodeError as err:
            log.warning("%s: unreadable crop (%s)", row["file"], err)
            unreadable.append(row["crop_id"])
            continue
        items.append({"crop_id": row["crop_id"], "source_id": row["source_id"], "label": row["label"],
                      "file": row["file"], "phash": perceptual_hash(hashed_view(image, row, params.align), params.hash),
                      "pixel_sha256": pixel_hash(image),
                      "face_px": face_px(row),
                      "probability": float(row["probability"]), "sharpness": round(sharpness(image), 2)})
    rows, clusters = resolve_clusters(items, params.max_distance)

    with stage_output(args.out) as tmp:
        tmp.mkdir()
        write_rows(tmp / "items.csv", rows, ITEM_COLUMNS)
        write_rows(tmp / "clusters.csv", clusters, CLUSTER_COLUMNS)
        # later stages check their own work against the same definition of "near duplicate"
        write_json(tmp / "settings.json", {"hash": params.hash, "align": params.align,
                                            "max_distance": params.max_distance})

    write_bytes(args.sheet, encode_png(cluster_sheet(args.crops / "faces", rows, clusters, params.sheet_clusters)))
    outcomes = Counter(r["outcome"] for r in rows)
    by_label = {}
    for label in sorted({r["label"] for r in rows}):
        mine = [r for r in rows if r["label"] == label]
        by_label[label] = {"crops": len(mine), "kept": sum(r["outcome"] == "kept" for r in mine),
                           "duplicates_dropped": sum(r["outcome"].endswith("duplicate") for r in mine)}
    write_metrics(args.metrics, {
        "crops": len(rows) + len(unreadable), "unreadable": len(unreadable),
        "outcomes": {k: outcomes.get(k, 0) for k in ("kept", "label_conflict", "exact_duplicate", "near_duplicate")},
        "clusters_with_duplicates": len(clusters), "largest_cluster": max((c["size"] for c in clusters), default=1),
        "label_conflict_clusters": sum(c["conflict"] for c in clusters), "by_label": by_label,
        "max_distance": params.max_distance})
    log.info("%d crops: %s; %d clusters with duplicates, %d with conflicting labels", len(rows), dict(outcomes),
             len(clusters), sum(c["conflict"] for c in clusters))


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


if __name__ == "__main__":
    main()
