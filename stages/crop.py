"""Stage `crop`: faces found by the tool's `FaceFinder` (detector, second pass on misses, size rule) and cut as
square crops; the finder's settings are written beside them for the model card (faceocc/batch_cropping.py)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch
from tqdm import tqdm

from faceocc.atomic import stage_output, write_bytes, write_json, write_metrics
from faceocc.batch_cropping import (CROP_COLUMNS, OUTCOME_COLUMNS, CropParams, crop_sample_sheet, detection_summary,
                                   missed_sheet, run_crop, source_images)
from faceocc.devices import resolve_device
from faceocc.finder import FaceFinder
from faceocc.images import encode_png
from faceocc.manifest import read_rows, write_rows
from faceocc.workspace import CROPS_CSV, FACES, MANIFEST_CSV
from faceocc.tasks import write_task_file
from stages._common import load_params, setup_logging
from stages._task import task_of

log = logging.getLogger("crop")


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
    task = task_of(args.raw)
    torch.set_num_threads(params.threads)

    images = source_images(read_rows(args.raw / MANIFEST_CSV), args.raw, params.annotations == "use")
    device = resolve_device(params.device)
    finder = FaceFinder(params.finder, threads=params.threads, device=str(device))
    with stage_output(args.out) as tmp:
        (tmp / FACES).mkdir(parents=True)
        with tqdm(total=len(images), desc="crop", unit="img") as progress:
            result = run_crop(images, tmp / FACES, finder, params.keep, params.geometry, params.batch_size,
                              progress)
        write_rows(tmp / "outcomes.csv", result.outcomes, OUTCOME_COLUMNS)
        write_rows(tmp / CROPS_CSV, result.crops, CROP_COLUMNS)
        # models record how their inputs were cut, so inference crops the same way without reading params
        write_json(tmp / "geometry.json", {"size": params.geometry.size, "margin": params.geometry.margin})
        write_json(tmp / "finder.json", params.finder.to_dict())
        write_task_file(tmp, task)  # carried forward: the later stages that read crops read the task here
        if args.samples:
            write_bytes(args.samples, encode_png(crop_sample_sheet(tmp / FACES, result.crops)))
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
