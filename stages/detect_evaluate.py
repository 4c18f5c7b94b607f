"""Stage `detect_evaluate`: the one-stage detector's FP32 and INT8 graphs on the test photos (and the held-out
source's, when the split has one), each run once, in one process: COCO mAP50 and mAP50-95 per class (pycocotools),
found x right at the card's threshold, milliseconds per photo, size, INT8's faces against FP32's one by one, and a
picture of the first test photos with what FP32 found (faceocc/one_stage_eval.py)."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

from faceocc.atomic import stage_output, write_bytes, write_json, write_metrics, write_text
from faceocc.images import encode_png
from faceocc.one_stage_data import workspace_photos
from faceocc.one_stage_eval import markdown, score_splits, without_times
from faceocc.one_stage_model import GRAPH_FILE, OneStageDetector
from faceocc.splitting import OUT_OF_DOMAIN
from stages._common import load_params, setup_logging
from stages._task import task_of

log = logging.getLogger("detect_evaluate")


@dataclass(frozen=True)
class DetectEvaluateParams:
    min_score: float = 0.1    # detections are scored from here for the mAP (COCO ranks every detection)
    iou: float = 0.5          # found: a detection overlapping an annotated face this much
    threads: int = 1
    example_photos: int = 8


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", required=True, type=Path, nargs="+", help="one-stage folders: FP32, INT8")
    parser.add_argument("--split", required=True, type=Path)
    parser.add_argument("--crops", required=True, type=Path)
    parser.add_argument("--raw", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path, help="the report folder to write")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    setup_logging()
    params = load_params("detect_evaluate", DetectEvaluateParams, args.params)
    task = task_of(args.crops)
    detectors = {}
    for folder in args.models:
        detector = OneStageDetector(folder, params.threads, threshold=params.min_score)
        detectors[detector.card.variant] = detector
    card = next(iter(detectors.values())).card
    photos_of = {}
    for split in ("test", OUT_OF_DOMAIN):
        photos, problems = workspace_photos(args.split, args.crops, args.raw, split, task.classes, task.label_of)
        for problem in problems:
            log.warning("%s: %s", split, problem)
        if photos:
            photos_of[split] = photos
    splits, int8_against_fp32, examples, unread = score_splits(detectors, photos_of, task.classes, card.threshold,
                                                               params.iou, params.example_photos)
    for problem in unread:
        log.warning("%s", problem)
    record = {"task": task.name, "side": card.side, "threshold": card.threshold, "min_score": params.min_score,
              "threads": params.threads, "splits": splits, "int8_against_fp32": int8_against_fp32,
              "size_mb": {v: round((d.folder / GRAPH_FILE).stat().st_size / 2 ** 20, 2) for v, d in detectors.items()}}
    figures, speed = without_times(splits)
    with stage_output(args.out) as tmp:
        tmp.mkdir()
        write_metrics(tmp / "metrics.json", {**record, "splits": figures})
        write_metrics(tmp / "speed.json", {"ms_per_photo_p50": speed, "threads": params.threads})
        write_json(tmp / "record.json", record)
        write_text(tmp / "report.md", "\n".join(markdown(record)) + "\n")
        write_bytes(tmp / "examples.png", encode_png(examples))
    for split, variants in splits.items():
        for variant, f in variants.items():
            log.info("%s %s: mAP50 %.3f, mAP50-95 %.3f, found %d, right %d of %d, %s ms per photo", split, variant,
                     f["map50"], f["map50_95"], f["found_right"]["found"], f["found_right"]["right"],
                     f["found_right"]["faces"], f["ms_per_photo_p50"])

if __name__ == "__main__":
    main()
