"""How many annotated faces of a PascalVOC set the tool's face finder finds, per wearing class and face size, with
and without its second pass (the mask_detection_recall stage's figures and report).

A face counts as found when a face `faceocc predict` would report (at the finder's threshold and size rule)
overlaps its box at IoU >= `iou`, each detection matched once."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from faceocc.finder import FaceFinder, FinderSettings
from faceocc.images import ImageDecodeError, load_rgb
from faceocc.markdown import table
from faceocc.voc import VocError, matched, parse_voc, size_bucket

log = logging.getLogger("mask_detection_recall")
TITLE = "The tool's face finder on the mask_detection set"


@dataclass(frozen=True)
class MaskDetectionRecallParams:
    root: str = "../shared/datasets/mask_detection"  # images/ and annotations/ (VOC XML)
    max_images: int = 0          # 0 = all; N = the first N annotation files in name order
    iou: float = 0.5
    finder: FinderSettings = field(default_factory=FinderSettings)  # the tool's (params.yaml: the crop stage's)
    size_edges: tuple[int, ...] = (20, 40)  # face-box short side buckets, px
    threads: int = 2


def measure(p: MaskDetectionRecallParams) -> dict:
    root = Path(p.root)
    files = sorted((root / "annotations").glob("*.xml"))
    files = files[: p.max_images] if p.max_images else files
    torch.set_num_threads(p.threads)
    finder = FaceFinder(p.finder, threads=p.threads)
    found = {"first_pass": defaultdict(lambda: [0, 0]), "with_second_pass": defaultdict(lambda: [0, 0])}
    problems, dropped_boxes, clipped_boxes, second_pass_images = [], 0, 0, 0
    reported = [0, 0]  # faces the tool reports (with its second pass), of them matched to an annotated box
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
        first = finder.select(finder.first_pass(image), 1)
        hits = {"first_pass": matched(truth, _boxes(first.faces), p.iou)}
        after = first
        if first.outcome == "no_face" and p.finder.second_pass.enabled:  # as faceocc predict: only on a miss
            second_pass_images += 1
            after = finder.select(finder.second_pass(image, finder.threshold), 2)
        hits["with_second_pass"] = matched(truth, _boxes(after.faces), p.iou)
        reported[0] += len(after.faces)
        reported[1] += int(hits["with_second_pass"].sum())
        for run, flags in hits.items():
            for obj, hit in zip(note.objects, flags):
                short = min(obj.box[2] - obj.box[0], obj.box[3] - obj.box[1])
                bucket = size_bucket(short, p.size_edges)
                for key in (obj.name, bucket, f"{obj.name} {bucket}", "all"):
                    found[run][key][0] += int(hit)
                    found[run][key][1] += 1
    return {"images": len(files), "detector": p.finder.detector.name, "threshold": p.finder.detector.threshold,
            "min_face_px": p.finder.min_face_px, "unusable_files": len(problems), "reported_faces": reported[0],
            "precision": round(reported[1] / reported[0], 4) if reported[0] else None, "dropped_boxes": dropped_boxes,
            "clipped_boxes": clipped_boxes, "second_pass_images": second_pass_images, "iou": p.iou,
            "recall": {run: {k: {"found": f, "boxes": n, "recall": round(f / n, 4)} for k, (f, n) in sorted(c.items())}
                       for run, c in found.items()}}


def _boxes(faces) -> np.ndarray:
    return np.array([f.box for f in faces], float).reshape(-1, 4)


def markdown(figures: dict) -> str:
    first, both = figures["recall"]["first_pass"], figures["recall"]["with_second_pass"]
    lines = [f"# {TITLE}", "",
             f"{figures['images']} annotated images; detector {figures['detector']} at threshold "
             f"{figures['threshold']:g}, faces of {figures['min_face_px']} px or more (faceocc predict's rule). "
             f"A face is found when such a detection overlaps its box at IoU >= {figures['iou']:g}. The second "
             f"pass ran on the {figures['second_pass_images']} images where the first found no face. Of the "
             f"{figures['reported_faces']} faces reported (with the second pass), {figures['precision']:.1%} match an "
             f"annotated box (unannotated real faces count against it). {figures['unusable_files']} "
             f"unusable files, {figures['dropped_boxes']} boxes dropped, {figures['clipped_boxes']} clipped to the "
             "image.", ""]
    lines += table(["boxes", "count", "recall, first pass", "recall, with second pass"],
                   [[k, both[k]["boxes"], f"{first[k]['recall']:.1%}", f"{both[k]['recall']:.1%}"] for k in both])
    return "\n".join(lines) + "\n"
