"""COCO mAP of a released model as `faceocc predict` runs it (its card's finder, then the classifier; or, with
`--one-stage`, a one-stage model folder), on the photos of one split of its release workspace, as `detect_evaluate`
takes them: annotated (PascalVOC) photos with their boxes, any other photo with the box its face was cropped from
(occlusion4's one face a photo). These are the figures reports/one_stage.md sets side by side, with found x right per
class and milliseconds per photo, both paths scored by the same code.

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
from pathlib import Path

import numpy as np

from faceocc.atomic import write_json
from faceocc.markdown import table
from faceocc.one_stage_data import fit_long_side, workspace_photos
from faceocc.one_stage_eval import run_detector, variant_figures
from faceocc.splitting import OUT_OF_DOMAIN
from faceocc.tasks import task_named
from faceocc.workspace import Workspace


def two_stage_record(workspace: Path, model: Path, split: str, min_score: float | None, threads: int,
                     long_side: int | None = None) -> dict:
    from faceocc.classifier import Classifier
    from faceocc.inference import FacePredictor, finder_settings

    classifier = Classifier.load(model)
    settings = finder_settings(classifier.card, threshold=min_score)
    predictor = FacePredictor(classifier, settings, threads=threads)
    return path_record(workspace, split, predictor, task_named(classifier.card.task), classifier.classes,
                       {"path": "two-stage", "model": str(model), "finder": settings.to_dict()}, threads, long_side)


def one_stage_record(workspace: Path, model: Path, split: str, min_score: float | None, threads: int,
                     long_side: int | None = None) -> dict:
    """The same for a one-stage model folder, run as `faceocc predict --detector one-stage` runs it, at its face
    threshold `min_score` (default: its card's)."""
    from faceocc.one_stage_model import OneStagePredictor

    predictor = OneStagePredictor(model, threads=threads, threshold=min_score)
    return path_record(workspace, split, predictor, task_named(predictor.card.task), predictor.classes,
                       {"path": "one-stage", **predictor.describe()}, threads, long_side)


def path_record(workspace: Path, split: str, predictor, task, classes: tuple[str, ...], described: dict,
                threads: int, long_side: int | None = None) -> dict:
    """Both paths on the split's photos as `detect_evaluate` finds them: the annotated (PascalVOC) photos with
    their boxes, and each other photo with the box its face was cropped from (occlusion4: one face a photo).
    `long_side`: each photo is first scaled to that long side, as a caller would send it, and the boxes found
    scaled back (the time then includes the scaling)."""
    ws = Workspace(workspace)
    photos, problems = workspace_photos(ws.split, ws.crop, ws.scrape, split, classes, task.label_of)
    inner = predictor.predict_image if long_side is None else at_long_side(predictor.predict_image, long_side)
    sides = []

    def predict(image: np.ndarray, path: str) -> list[dict]:
        sides.append(max(image.shape[:2]))  # the photo's own size, read off the decoded image run_detector passes
        return inner(image, path)

    records, ms, unread = run_detector(predict, photos, f"{described['path']} on {split}")
    # every record counts toward the mAP, and found x right is counted at the threshold the predictor ran at
    figures = variant_figures(photos, records, ms, classes, 0.0, 0.5)
    # a photo that cannot be read is named once in problems, and its faces count as missed (as in detect_evaluate)
    return {**described, "split": split, **figures,
            "photo_long_side_p50": int(np.median(sides)) if sides else None,
            "photos_scaled_to": long_side, "threads": threads, "problems": problems + unread}


def at_long_side(predict, side: int):
    """`predict(image, path)` run on the image scaled to a long side of `side` px, its boxes given back in the
    photo's own pixels."""
    def scaled_predict(image: np.ndarray, path: str) -> list[dict]:
        scaled, scale = fit_long_side(image, side)
        return [{**r, "box": [v / scale for v in r["box"]]} if r.get("box") is not None else r
                for r in predict(scaled, path)]
    return scaled_predict


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
    parser.add_argument("--long-side", type=int, metavar="PX",
                        help="scale each photo to this long side first (e.g. 640: ms per 640 px photo)")
    parser.add_argument("--json", type=Path, help="write the whole record here")
    args = parser.parse_args(argv)
    run = one_stage_record if args.one_stage else two_stage_record
    record = run(args.workspace, args.model, args.split, args.min_score, args.threads, args.long_side)
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
