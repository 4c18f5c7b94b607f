"""Stage `crop`: faces found by the tool's `FaceFinder` (detector, second pass on misses, size rule) and cut as
square crops; the finder's settings are written beside them for the model card."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from tqdm import tqdm

from faceocc.atomic import stage_output, write_bytes, write_json, write_metrics
from faceocc.config import bounded, checked
from faceocc.cropping import CropGeometry
from faceocc.devices import DEVICE_NAMES, is_device_name, resolve_device
from faceocc.finder import FaceFinder, FinderSettings
from faceocc.facecrops import (CROP_COLUMNS, OUTCOME_COLUMNS, SourceImage, annotated_faces, crop_sample_sheet,
                               detection_summary, missed_sheet, run_crop)
from faceocc.images import encode_png
from faceocc.manifest import read_rows, write_rows
from stages._common import load_params, setup_logging

log = logging.getLogger("crop")


@dataclass(frozen=True)
class CropParams:
    finder: FinderSettings = field(default_factory=FinderSettings)
    keep: Literal["largest", "all"] = "largest"  # faces a labelled photo contributes: the one its label describes
    # cuda when present, else cpu (MTCNN only; the ONNX detectors run on the CPU)
    device: str = checked("auto", is_device_name, DEVICE_NAMES)
    geometry: CropGeometry = field(default_factory=CropGeometry)
    # use: a face box the source annotated (PascalVOC, ROF) is cut as given, no detection; ignore: detect all
    annotations: Literal["use", "ignore"] = "use"
    batch_size: int = bounded(8, ge=1)
    threads: int = bounded(2, ge=1)  # torch intra-op threads; results are deterministic for a fixed value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--raw", required=True, type=Path, help="the scrape stage's output folder")
    parser.add_argument("--out", required=True, type=Path, help="output: faces/<label>/*.png, crops.csv, outcomes.csv")
    parser.add_argument("--metrics", required=True, type=Path, help="DVC metrics JSON")
    parser.add_argument("--samples", type=Path, help="contact sheet PNG of crops per label")
    parser.add_argument("--misses", type=Path, help="contact sheet PNG of the photos that gave no crop")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    setup_logging()
    params = load_params("crop", CropParams, args.params)
    torch.set_num_threads(params.threads)

    raw_rows = [r for r in read_rows(args.raw / "manifest.csv") if r["outcome"] == "ok"]
    images = [SourceImage(r["id"], r["label"], args.raw / r["file"], r["origin"],
                          annotated_faces(r.get("annotation", "")) if params.annotations == "use" else None)
              for r in raw_rows]
    device = resolve_device(params.device)
    finder = FaceFinder(params.finder, threads=params.threads, device=str(device))
    with stage_output(args.out) as tmp:
        (tmp / "faces").mkdir(parents=True)
        with tqdm(total=len(images), desc="crop", unit="img") as progress:
            result = run_crop(images, tmp / "faces", finder, params.keep, params.geometry, params.batch_size,
                              progress)
        write_rows(tmp / "outcomes.csv", result.outcomes, OUTCOME_COLUMNS)
        write_rows(tmp / "crops.csv", result.crops, CROP_COLUMNS)
        # models record how their inputs were cut, so inference crops the same way without reading params
        write_json(tmp / "geometry.json", {"size": params.geometry.size, "margin": params.geometry.margin})
        write_json(tmp / "finder.json", params.finder.to_dict())
        if args.samples:
            write_bytes(args.samples, encode_png(crop_sample_sheet(tmp / "faces", result.crops)))
        if args.misses:
            write_bytes(args.misses, encode_png(missed_sheet(result.outcomes)))

    summary = detection_summary(result.outcomes)
    seconds = max(result.seconds_detecting, 1e-9)
    decoded = sum(1 for r in result.outcomes if not r["outcome"].startswith("decode_error"))
    # only what the data and params decide: a throughput here would change dvc.lock on every re-run
    write_metrics(args.metrics, {"by_label": summary})
    overall = summary.get("all", {})
    log.info("outcomes %s; detection rate %.3f first pass, %.3f after second; %.1f images/s with %s on %s",
             overall.get("outcomes"), overall.get("detection_rate_first_pass", 0),
             overall.get("detection_rate_after_second_pass", 0), decoded / seconds, params.finder.detector.name,
             device)


if __name__ == "__main__":
    main()
