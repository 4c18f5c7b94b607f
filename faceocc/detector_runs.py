"""The detectors stage's runs: each candidate finder's raw detections on mask_detection, occlusion4 and MTFL, kept
in a work folder keyed by everything they depend on (so an interrupted run resumes), then scored and timed into
the table faceocc/detector_benchmark.py chooses the default from."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from faceocc import detector_benchmark as bench
from faceocc.atomic import write_json
from faceocc.benchmark import cpu_name
from faceocc.detectors import DETECTORS
from faceocc.finder import FaceFinder, FinderSettings
from faceocc.images import IMAGE_SUFFIXES, load_rgb
from faceocc.manifest import read_rows

log = logging.getLogger("detectors")


@dataclass(frozen=True)
class DetectorsParams:
    mask_detection: str = "../shared/datasets/mask_detection"
    occlusion4: tuple[str, ...] = ("../shared/datasets/occlusion4", "../shared/datasets/occlusion4_extra")
    mtfl: str = "../shared/datasets/landmarks_mtfl"
    mtfl_every: int = 4              # every Nth annotated MTFL image (landmarks only; 500 of 2,000)
    iou: float = 0.5
    size_edges: tuple[int, ...] = (20, 40)
    # the tool's finder (params.yaml: the crop stage's, by YAML alias); each candidate swaps in its detector
    finder: FinderSettings = field(default_factory=FinderSettings)
    min_precision: float = 0.85      # the default is the most recall at this precision on mask_detection,
    min_masked_found: float = 0.95   # among points finding at least this share of masked occlusion4 photos
    speed_images: int = 20
    speed_threads: tuple[int, ...] = (1, 2)
    threads: int = 1                 # while collecting detections (two processes can share the 2 cores)
    candidates: tuple[bench.Candidate, ...] = ()


def occlusion_files(roots) -> list[tuple[str, Path]]:
    return [(label.name, f) for root in roots if Path(root).is_dir()
            for label in sorted(Path(root).iterdir()) if label.is_dir()
            for f in sorted(label.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]


def work_file(c: bench.Candidate, p: DetectorsParams, work: Path) -> Path:
    """Where the candidate's detections are kept, named by a hash of everything they depend on."""
    settings = c.finder_settings(p.finder)
    key = hashlib.sha256(json.dumps([asdict(c), asdict(settings), p.mask_detection, p.occlusion4, p.mtfl,
                                     p.mtfl_every], sort_keys=True).encode()).hexdigest()[:12]
    return work / f"{c.label.replace(' ', '_').replace('+', '-')}_{key}.json"


def collect(c: bench.Candidate, p: DetectorsParams, work: Path) -> dict:
    """The candidate's raw detections on all three sets, from --work when an identical run left them."""
    settings = c.finder_settings(p.finder)
    path = work_file(c, p, work)
    if path.is_file():
        return json.loads(path.read_text())
    torch.set_num_threads(p.threads)
    finder = FaceFinder(settings, threads=p.threads)
    floor = min(c.thresholds)
    mtfl_rows = read_rows(Path(p.mtfl) / "annotations.csv")[:: p.mtfl_every * c.every] if Path(p.mtfl).is_dir() else []
    raw = {"voc": bench.voc_detections(finder, Path(p.mask_detection), floor, c.voc_every),
           "occlusion4": bench.occlusion_detections(finder, occlusion_files(p.occlusion4)[:: c.every], floor),
           "mtfl": bench.mtfl_landmarks(finder, mtfl_rows, Path(p.mtfl)) if mtfl_rows else None,
           "seconds_detecting": round(finder.seconds, 1)}
    write_json(path, raw)
    return json.loads(path.read_text())  # tuples as lists, the same as a resumed run's


def table_row(c: bench.Candidate, raw: dict, p: DetectorsParams, ms: dict) -> dict:
    points = []
    for t in c.thresholds:
        voc = bench.voc_figures(raw["voc"], t, p.finder.min_face_px, p.iou, p.size_edges)
        occ = bench.occlusion_figures(raw["occlusion4"], t, p.finder.min_face_px)
        points.append({"candidate": c.label, "name": c.name, "scales": list(c.scales), "threshold": t,
                       "recall_all": voc["recall"]["all"]["recall"], "precision": voc["precision"],
                       "ms_1_thread": ms.get("1"), "voc": voc, "occlusion4_first_pass": occ})
    info = DETECTORS[c.name]
    return {"candidate": c.label, "name": c.name, "package": info.package, "model": info.model,
            "licence": info.licence, "landmarks": info.landmarks, "score": info.score, "threshold": c.threshold,
            "every": c.every, "voc_every": c.voc_every, "voc_photos": len(raw["voc"]),
            "occlusion4_photos": len(raw["occlusion4"]),
            "ms_per_640px": ms, "mtfl": raw["mtfl"], "points": points,
            "occlusion4_with_second_pass": bench.second_pass_figures(raw["occlusion4"])}


def measure(p: DetectorsParams, raws: dict[str, dict]) -> dict:
    """detectors.json's figures: every candidate's table row (its detections `raws[label]` scored, its speed timed
    on the first `speed_images` mask_detection photos) and the default the table chooses."""
    speed_files = sorted((Path(p.mask_detection) / "images").iterdir())[: p.speed_images]
    speed_images = [load_rgb(f) for f in speed_files]
    table = []
    for c in p.candidates:
        ms = bench.speed(c.finder_settings(p.finder), speed_images, p.speed_threads)
        table.append(table_row(c, raws[c.label], p, ms))
        log.info("%s: %s ms per 640 px image", c.label, ms)
    best = bench.choose(table, p.min_precision, p.min_masked_found)
    return {"table": table, "chosen": best and {k: best[k] for k in ("candidate", "name", "scales", "threshold",
                                                                      "recall_all", "precision")},
            "min_precision": p.min_precision, "min_masked_found": p.min_masked_found,
            "min_face_px": p.finder.min_face_px, "iou": p.iou, "size_edges": list(p.size_edges), "cpu": cpu_name()}
