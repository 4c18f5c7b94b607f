"""Stage `curate`: quality filters and the reviewed overrides file applied to the dedup representatives."""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from faceocc.atomic import stage_output, write_bytes, write_metrics
from faceocc.curation import OverrideError, QualityFilter, curate, read_overrides
from faceocc.images import encode_png, load_rgb
from faceocc.manifest import read_rows, write_rows
from faceocc.sheets import captioned_grid
from faceocc.tasks import HasTask, TaskName, check_labels
from stages._common import load_params, refuse, setup_logging

log = logging.getLogger("curate")

CURATED_COLUMNS = ("crop_id", "source_id", "label", "original_label", "file", "outcome", "detail", "face_px",
                   "probability", "sharpness", "cluster", "phash")
OUTCOMES = ("kept", "excluded_by_override", "label_conflict", "too_small", "low_probability", "blurry")


@dataclass(frozen=True)
class CurateParams(HasTask):
    task: TaskName = "occlusion4"   # faceocc/tasks.py: the class list (and its colours) this run is about
    quality: QualityFilter = field(default_factory=QualityFilter)
    sheet_max: int = 240          # crops per class on a review sheet (the first by id)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dedup", required=True, type=Path, help="the dedup stage's output folder")
    parser.add_argument("--crops", required=True, type=Path, help="the crop stage's output folder (images)")
    parser.add_argument("--overrides", required=True, type=Path, help="curation/overrides.csv (in git)")
    parser.add_argument("--out", required=True, type=Path, help="output: items.csv")
    parser.add_argument("--metrics", required=True, type=Path)
    parser.add_argument("--sheets", required=True, type=Path, help="folder for one review PNG per class")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    setup_logging()
    params = load_params("curate", CurateParams, args.params)
    try:
        overrides = read_overrides(args.overrides, params.classes)
    except OverrideError as err:
        refuse(str(err))

    candidates = [{**r, "dedup_outcome": r["outcome"]} for r in read_rows(args.dedup / "items.csv")
                  if r["outcome"] in ("kept", "label_conflict")]
    check_labels((r["label"] for r in candidates), params.task, "curate")
    rows, unmatched = curate(candidates, overrides, params.quality)
    for override_id in unmatched:
        log.warning("%s: override for %s matches no crop (already dropped as a duplicate, or a typo?)",
                    args.overrides, override_id)
    with stage_output(args.out) as tmp:
        tmp.mkdir()
        write_rows(tmp / "items.csv", rows, CURATED_COLUMNS)

    with stage_output(args.sheets) as tmp:
        tmp.mkdir()
        for label in params.classes:
            kept = sorted((r for r in rows if r["outcome"] == "kept" and r["label"] == label),
                          key=lambda r: r["crop_id"])
            tiles = [(r["crop_id"], load_rgb(args.crops / "faces" / r["file"])) for r in kept[: params.sheet_max]]
            title = f"{label}: {len(kept)} kept" + (f", first {params.sheet_max} shown" if len(kept) > params.sheet_max
                                                     else "")
            write_bytes(tmp / f"{label}.png", encode_png(captioned_grid(tiles, title)))
        dropped = sorted((r for r in rows if r["outcome"] != "kept"), key=lambda r: (r["outcome"], r["crop_id"]))
        tiles = [(r["crop_id"], load_rgb(args.crops / "faces" / r["file"])) for r in dropped[: params.sheet_max]]
        write_bytes(tmp / "dropped.png", encode_png(captioned_grid(tiles, f"dropped: {len(dropped)} (by outcome)")))

    outcomes = Counter(r["outcome"] for r in rows)
    kept_by_label = Counter(r["label"] for r in rows if r["outcome"] == "kept")
    write_metrics(args.metrics, {
        "candidates": len(rows), "outcomes": {k: outcomes.get(k, 0) for k in OUTCOMES},
        "kept_per_label": {c: kept_by_label.get(c, 0) for c in params.classes},
        "overrides": len(overrides), "overrides_unmatched": len(unmatched),
        "relabelled": sum(r["label"] != r["original_label"] for r in rows)})
    log.info("%d candidates: %s; kept per label %s", len(rows), dict(outcomes), dict(kept_by_label))


if __name__ == "__main__":
    main()
