"""Stage `mask_detection_recall`: how many annotated faces MTCNN finds in the mask_detection set (PascalVOC), per
wearing class and face size, with and without the crop stage's second pass -> reports/mask_detection.md/.json.

A face counts as found when a detection at the tool's probability threshold overlaps its box at IoU >= `iou`.
The set is the second source document's (with_mask / without_mask / mask_weared_incorrect); skipped with a note
when `root` is absent."""

from __future__ import annotations

import argparse
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from faceocc.atomic import write_json, write_text
from faceocc.detection import DetectorConfig, FaceDetector, SecondPassConfig
from faceocc.images import ImageDecodeError, load_rgb
from faceocc.voc import VocError, matched, parse_voc
from stages._common import load_params, setup_logging

log = logging.getLogger("mask_detection_recall")


@dataclass(frozen=True)
class MaskDetectionRecallParams:
    root: str = "../shared/datasets/mask_detection"  # images/ and annotations/ (VOC XML)
    max_images: int = 0          # 0 = all; N = the first N annotation files in name order
    iou: float = 0.5
    min_score: float = 0.9       # = faceocc predict's --min-score default
    detector: DetectorConfig = field(default_factory=lambda: DetectorConfig(device="cpu"))
    second_pass: SecondPassConfig = field(default_factory=SecondPassConfig)
    size_edges: tuple[int, ...] = (20, 40)  # face-box short side buckets, px: < 20 (below MTCNN's minimum), ...


def size_bucket(short_side: float, edges: tuple[int, ...]) -> str:
    for lo, hi in zip((0,) + edges, edges):
        if short_side < hi:
            return f"{lo}-{hi} px"
    return f">= {edges[-1]} px"


def measure(p: MaskDetectionRecallParams) -> dict:
    root = Path(p.root)
    files = sorted((root / "annotations").glob("*.xml"))
    files = files[: p.max_images] if p.max_images else files
    detector = FaceDetector(p.detector)
    found = {"first_pass": defaultdict(lambda: [0, 0]), "with_second_pass": defaultdict(lambda: [0, 0])}
    problems, dropped_boxes, clipped_boxes, second_pass_images = [], 0, 0, 0
    for xml in tqdm(files, desc="mask_detection", unit="image"):
        try:
            note = parse_voc(xml)
            image = load_rgb(root / "images" / (note.filename or xml.with_suffix(".jpg").name))
        except (VocError, ImageDecodeError) as err:
            log.warning("%s", err)
            problems.append(str(err))
            continue
        dropped_boxes += len(note.dropped)
        clipped_boxes += sum(o.clipped for o in note.objects)
        truth = np.array([o.box for o in note.objects]).reshape(-1, 4)
        first = [f.box for f in detector.detect(image) if f.score >= p.min_score]
        hits = {"first_pass": matched(truth, np.array(first).reshape(-1, 4), p.iou)}
        after = first
        if not first and p.second_pass.enabled:  # as the crop stage and faceocc predict do: only on misses
            second_pass_images += 1
            after = [f.box for f in detector.detect_second_pass(image, p.second_pass, p.min_score)]
        hits["with_second_pass"] = matched(truth, np.array(after).reshape(-1, 4), p.iou)
        for run, flags in hits.items():
            for obj, hit in zip(note.objects, flags):
                short = min(obj.box[2] - obj.box[0], obj.box[3] - obj.box[1])
                for key in (obj.name, f"{obj.name} {size_bucket(short, p.size_edges)}", "all"):
                    found[run][key][0] += int(hit)
                    found[run][key][1] += 1
    return {"images": len(files), "unusable_files": problems, "dropped_boxes": dropped_boxes,
            "clipped_boxes": clipped_boxes, "second_pass_images": second_pass_images, "iou": p.iou,
            "recall": {run: {k: {"found": f, "boxes": n, "recall": round(f / n, 4)} for k, (f, n) in sorted(c.items())}
                       for run, c in found.items()}}


def markdown(figures: dict) -> str:
    first, both = figures["recall"]["first_pass"], figures["recall"]["with_second_pass"]
    lines = ["# MTCNN on the mask_detection set", "",
             f"{figures['images']} annotated images; a face is found when a detection (probability >= the tool's "
             f"threshold) overlaps its box at IoU >= {figures['iou']:g}. The second pass ran on the "
             f"{figures['second_pass_images']} images where the first found no face. {len(figures['unusable_files'])} "
             f"unusable files, {figures['dropped_boxes']} boxes dropped, {figures['clipped_boxes']} clipped to the "
             "image.", "",
             "| boxes | count | recall, first pass | recall, with second pass |", "|---|---|---|---|"]
    lines += [f"| {k} | {both[k]['boxes']} | {first[k]['recall']:.1%} | {both[k]['recall']:.1%} |" for k in both]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--metrics", required=True, type=Path, help="reports/mask_detection.json")
    parser.add_argument("--out", required=True, type=Path, help="reports/mask_detection.md")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    setup_logging()
    p = load_params("mask_detection_recall", MaskDetectionRecallParams, args.params)
    if not (Path(p.root) / "annotations").is_dir():
        write_json(args.metrics, {"skipped": f"no {Path(p.root) / 'annotations'}"})
        write_text(args.out, f"# MTCNN on the mask_detection set\n\nSkipped: no {Path(p.root) / 'annotations'}.\n")
        return
    figures = measure(p)
    write_json(args.metrics, figures)
    write_text(args.out, markdown(figures))
    log.info("recall with second pass: %s", {k: v["recall"] for k, v in figures["recall"]["with_second_pass"].items()
                                            if " " not in k})


if __name__ == "__main__":
    main()
