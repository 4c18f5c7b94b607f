"""COCO mAP of a released model as `faceocc predict` runs it (its card's finder, then the classifier; or, with
`--one-stage`, a one-stage model folder), on the annotated (PascalVOC) photos of one split of its release
workspace: the figures reports/one_stage.md sets side by side, with found x right per class and milliseconds per
photo, both paths scored by the same code.

    python -m tools.detection_map --workspace build/release_mask_wearing --model models/release_mask_wearing \
        --split ood --min-score 0.3 --json two_stage_ood.json
    python -m tools.detection_map --workspace build/release_mask_wearing --one-stage \
        --model models/release_one_stage_mask_wearing --split ood --min-score 0.3 --json one_stage_ood.json

`--min-score` lowers the finder's threshold so the precision-recall curve runs further (COCO's convention scores
every detection); the deployed threshold is the card's. Found x right is counted at the threshold given.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from faceocc.atomic import write_json
from faceocc.detection_map import coco_map, detections_of, voc_photos
from faceocc.end_to_end import annotated_test_faces, score_photos
from faceocc.manifest import read_rows
from faceocc.markdown import table
from faceocc.splitting import OUT_OF_DOMAIN
from faceocc.tasks import task_named
from faceocc.workspace import MANIFEST_CSV, SPLIT_CSV, Workspace


def two_stage_record(workspace: Path, model: Path, split: str, min_score: float | None, threads: int) -> dict:
    from faceocc.classifier import Classifier
    from faceocc.inference import FacePredictor, finder_settings

    classifier = Classifier.load(model)
    settings = finder_settings(classifier.card, threshold=min_score)
    predictor = FacePredictor(classifier, settings, threads=threads)
    return path_record(workspace, split, predictor, task_named(classifier.card.task), classifier.classes,
                       {"path": "two-stage", "model": str(model), "finder": settings.to_dict()}, threads)


def one_stage_record(workspace: Path, model: Path, split: str, min_score: float | None, threads: int) -> dict:
    """The same for a one-stage model folder, run as `faceocc predict --detector one-stage` runs it, at its face
    threshold `min_score` (default: its card's)."""
    from faceocc.one_stage_model import OneStagePredictor

    predictor = OneStagePredictor(model, threads=threads, threshold=min_score)
    return path_record(workspace, split, predictor, task_named(predictor.card.task), predictor.classes,
                       {"path": "one-stage", **predictor.describe()}, threads)


def path_record(workspace: Path, split: str, predictor, task, classes: tuple[str, ...], described: dict,
                threads: int) -> dict:
    ws = Workspace(workspace)
    faces = annotated_test_faces(read_rows(ws.split / SPLIT_CSV), read_rows(ws.scrape / MANIFEST_CSV), split)
    photos, problems = voc_photos(faces, task.label_of, classes)
    records, ms, sides = {}, [], []

    def timed(image, path: str) -> list[dict]:
        # found x right and the mAP read the same predictions: each photo is decoded and predicted once
        start = time.perf_counter()
        records[path] = predictor.predict_image(image, path)
        ms.append((time.perf_counter() - start) * 1000)
        sides.append(max(image.shape[:2]))
        return records[path]

    with tqdm(total=len(faces), desc=f"{described['path']} on {split}", unit="photo") as progress:
        found_right = score_photos(faces, timed, task.label_of, classes, progress=progress)
    predicted = [photo for photo in photos if photo.path in records]  # a photo that would not decode: a problem
    result = coco_map(predicted, [detections_of(records[p.path]) for p in predicted], classes)
    return {**described, "split": split, **result,
            "found_right": {k: found_right[k] for k in ("faces", "found", "right", "per_class")},
            "ms_per_photo_p50": round(float(np.median(ms)), 1) if ms else None,
            "photo_long_side_p50": int(np.median(sides)) if sides else None,
            "threads": threads,  # a photo that cannot be read is named by both counts: once here
            "problems": problems + [p for p in found_right["problems"] if p not in problems]}


def markdown(record: dict) -> list[str]:
    rows = [(c, v["faces"], f"{v['ap50']:.3f}", f"{v['ap50_95']:.3f}",
             f"{record['found_right']['per_class'][c]['found']} / {record['found_right']['per_class'][c]['right']}")
            for c, v in record["per_class"].items()]
    rows.append(("all", record["faces"], f"{record['map50']:.3f}", f"{record['map50_95']:.3f}",
                 f"{record['found_right']['found']} / {record['found_right']['right']}"))
    return table(("class", "faces", "AP50", "AP50-95", "found / right"), rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", required=True, type=Path, help="a release workspace (build/release_*)")
    parser.add_argument("--model", required=True, type=Path, help="the model directory it released")
    parser.add_argument("--one-stage", action="store_true",
                        help="--model is a one-stage folder (detect_train / detect_quantize): run it instead")
    parser.add_argument("--split", default="test", choices=("train", "val", "test", OUT_OF_DOMAIN))
    parser.add_argument("--min-score", type=float, help="the finder's threshold (default: the card's)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write the whole record here")
    args = parser.parse_args(argv)
    run = one_stage_record if args.one_stage else two_stage_record
    record = run(args.workspace, args.model, args.split, args.min_score, args.threads)
    for problem in record["problems"]:
        print(f"detection_map: {problem}", file=sys.stderr)
    print("\n".join(markdown(record)))
    print(f"{record['photos']} photos, median {record['ms_per_photo_p50']} ms per photo "
          f"(median long side {record['photo_long_side_p50']} px, {args.threads} threads)", file=sys.stderr)
    if args.json:
        write_json(args.json, record)
    return 1 if record["problems"] else 0  # as `faceocc score`: scored what it could, said what it could not


if __name__ == "__main__":
    sys.exit(main())
