"""Scoring a one-stage detector's variants on a split's photos, each run once: COCO mAP (faceocc/detection_map.py)
from every detection down to a low face score, found x right at the card's own threshold, milliseconds per photo,
how far INT8 moves FP32's detections, and a picture of what it found.
"""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np
from tqdm import tqdm

from faceocc.annotate import draw_predictions
from faceocc.detection_map import AnnotatedPhoto, coco_map, detections_of, found_right
from faceocc.images import ImageDecodeError, load_rgb
from faceocc.markdown import table
from faceocc.one_stage_data import fit_long_side
from faceocc.sheets import captioned_grid
from faceocc.voc import matched_pairs


def score_splits(detectors: dict, photos_of: dict, classes: Sequence[str], threshold: float, iou: float,
                 example_photos: int) -> tuple[dict, dict, np.ndarray, list[str]]:
    """Every variant ({name: OneStageDetector}) on every split's photos ({split: photos}, each run once):
    {split: {variant: figures}}, {split: INT8 against FP32} (when both run), the picture of the first test
    photos with what the first variant found, and one line for each photo that could not be read."""
    splits, int8_against_fp32, problems = {}, {}, []
    examples = examples_image([], [], classes, threshold, 0, "one-stage: no test photo")
    for split, photos in photos_of.items():
        runs = {}
        for variant, detector in detectors.items():
            runs[variant], ms, unread = run_detector(detector.predict_image, photos, f"{variant} on {split}")
            splits.setdefault(split, {})[variant] = variant_figures(photos, runs[variant], ms, classes, threshold,
                                                                    iou)
            problems += [f"{split}: {p}" for p in unread if f"{split}: {p}" not in problems]
        if {"fp32", "int8"} <= set(runs):
            int8_against_fp32[split] = agreement(runs["fp32"], runs["int8"], threshold, iou)
        if split == "test":
            first = next(iter(runs))
            examples = examples_image(photos, runs[first], classes, threshold, example_photos,
                                      f"one-stage {first} on test photos (face score >= {threshold})")
    return splits, int8_against_fp32, examples, problems


def without_times(splits: dict) -> tuple[dict, dict]:
    """`score_splits`' figures apart from their milliseconds per photo, and those milliseconds: what a model
    gives on any machine, and what this run took, kept in two files as `evaluate` keeps them."""
    figures = {s: {v: {k: x for k, x in f.items() if k != "ms_per_photo_p50"} for v, f in variants.items()}
               for s, variants in splits.items()}
    return figures, {s: {v: f["ms_per_photo_p50"] for v, f in variants.items()} for s, variants in splits.items()}


def run_detector(predict, photos: Sequence[AnnotatedPhoto], desc: str) -> tuple[list[list[dict]], list[float],
                                                                                 list[str]]:
    """`predict(image, path)`'s records for each photo (an unreadable photo's are empty), the milliseconds of
    each call (decoding the file not counted), and one line for each photo that could not be read."""
    records, ms, problems = [], [], []
    for photo in tqdm(photos, desc=desc, unit="photo"):
        try:
            image = load_rgb(photo.path)
        except ImageDecodeError as err:
            records.append([])
            problems.append(f"{photo.path}: {err}")
            continue
        start = time.perf_counter()
        records.append([r for r in predict(image, photo.path) if r.get("label") is not None])
        ms.append((time.perf_counter() - start) * 1000)
    return records, ms, problems


def above(records: Sequence[Sequence[dict]], threshold: float) -> list[list[dict]]:
    """The records a detector run at `threshold` would have given (decoding and suppression commute with a later
    cut, so one run at a low score serves both the mAP and the deployed figures)."""
    return [[r for r in photo if r["detection_score"] >= threshold] for photo in records]


def variant_figures(photos: Sequence[AnnotatedPhoto], records: Sequence[Sequence[dict]], ms: Sequence[float],
                    classes: Sequence[str], threshold: float, iou: float) -> dict:
    """mAP from every record; found x right from those at `threshold`; the median milliseconds per photo."""
    figures = coco_map(photos, [detections_of(r) for r in records], classes)
    deployed = [detections_of(r) for r in above(records, threshold)]
    return {**figures, "found_right": found_right(photos, deployed, classes, iou),
            "ms_per_photo_p50": round(float(np.median(ms)), 1) if len(ms) else None}


def agreement(reference: Sequence[Sequence[dict]], other: Sequence[Sequence[dict]], threshold: float,
              iou: float = 0.5) -> dict:
    """How many of `reference`'s faces at `threshold` `other` finds too (IoU >= iou, at the same threshold), and
    of those how many it labels the same: INT8 measured against its FP32 origin, face by face."""
    faces = matched = same = 0
    for ref, oth in zip(above(reference, threshold), above(other, threshold)):
        pairs = matched_pairs(np.array([r["box"] for r in ref], float).reshape(-1, 4),
                              np.array([r["box"] for r in oth], float).reshape(-1, 4), iou)
        faces += len(ref)
        matched += len(pairs)
        same += sum(ref[a]["label"] == oth[b]["label"] for a, b in pairs)
    return {"faces": faces, "found": matched, "same_label": same}


def examples_image(photos: Sequence[AnnotatedPhoto], records: Sequence[Sequence[dict]], classes: Sequence[str],
                   threshold: float, count: int, title: str, tile: int = 240) -> np.ndarray:
    """The first `count` photos with the detections at `threshold` drawn on them, each letterboxed into a tile."""
    tiles = []
    for photo, found in list(zip(photos, above(records, threshold)))[:count]:
        try:
            image = draw_predictions(load_rgb(photo.path), found, tuple(classes))
        except ImageDecodeError:
            continue
        tiles.append((f"{len(found)} found / {len(photo.boxes)}", _letterbox(image, tile)))
    return captioned_grid(tiles, title, tile=tile, columns=min(max(len(tiles), 1), 4))


def _letterbox(image: np.ndarray, side: int) -> np.ndarray:
    """The image fitted into a white `side` x `side` tile, centred."""
    scaled, _ = fit_long_side(image, side)
    out = np.full((side, side, 3), 255, np.uint8)
    y, x = (side - scaled.shape[0]) // 2, (side - scaled.shape[1]) // 2
    out[y:y + scaled.shape[0], x:x + scaled.shape[1]] = scaled
    return out


def markdown(record: dict) -> list[str]:
    """The report: per split, each variant's mAP, found x right, speed and size; per class AP50 and found / right."""
    lines = [f"# One-stage detector ({record['task']}): CenterFace with a class map", "",
             f"Photos scaled to a long side of {record['side']} px; a face is reported from a score of "
             f"{record['threshold']} (found x right) and scored down to {record['min_score']} (mAP, COCO's "
             f"definition: pycocotools). Milliseconds: median per photo, {record['threads']} thread(s), this run.", ""]
    for split, variants in record["splits"].items():
        lines += [f"## {split}: {next(iter(variants.values()))['photos']} photos, "
                  f"{next(iter(variants.values()))['faces']} faces", ""]
        rows = [(name, f"{v['map50']:.3f}", f"{v['map50_95']:.3f}",
                 f"{v['found_right']['found']} / {v['found_right']['right']} of {v['found_right']['faces']}",
                 v["ms_per_photo_p50"], f"{record['size_mb'][name]:.1f}") for name, v in variants.items()]
        lines += table(("variant", "mAP50", "mAP50-95", "found / right", "ms per photo", "MB"), rows) + [""]
        names = list(variants)
        classes = list(next(iter(variants.values()))["per_class"])
        rows = []
        for c in classes:
            cells = []
            for n in names:
                counts = variants[n]["found_right"]["per_class"].get(c, {})
                cells += [f"{variants[n]['per_class'][c]['ap50']:.3f}",
                          f"{counts.get('found', 0)} / {counts.get('right', 0)} of {counts.get('faces', 0)}"]
            rows.append((c, *cells))
        lines += table(("class", *(f"{n} {what}" for n in names for what in ("AP50", "found / right"))), rows) + [""]
        if split in record.get("int8_against_fp32", {}):
            a = record["int8_against_fp32"][split]
            lines += [f"INT8 against FP32, face by face: of FP32's {a['faces']} faces INT8 finds {a['found']}, "
                      f"{a['same_label']} with the same label.", ""]
    return lines
