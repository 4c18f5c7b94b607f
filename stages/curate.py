"""Stage `curate`: quality filters and the reviewed overrides file applied to the dedup representatives
(faceocc/curation.py)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from faceocc import curation
from faceocc.atomic import stage_output, write_bytes, write_metrics
from faceocc.curation import CURATED_COLUMNS, CurateParams, OverrideError, curate, read_overrides
from faceocc.images import encode_png
from faceocc.manifest import read_rows, write_rows
from faceocc.workspace import FACES
from stages._common import load_params, refuse, setup_logging
from stages._task import task_of

log = logging.getLogger("curate")


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
    classes = task_of(args.crops).classes
    try:
        overrides = read_overrides(args.overrides, classes)
    except OverrideError as err:
        refuse(str(err))

    candidates = [{**r, "dedup_outcome": r["outcome"]} for r in read_rows(args.dedup / "items.csv")
                  if r["outcome"] in ("kept", "label_conflict")]
    rows, unmatched = curate(candidates, overrides, params.quality)
    for override_id in unmatched:
        log.warning("%s: override for %s matches no crop (already dropped as a duplicate, or a typo?)",
                    args.overrides, override_id)
    with stage_output(args.out) as tmp:
        tmp.mkdir()
        write_rows(tmp / "items.csv", rows, CURATED_COLUMNS)
    with stage_output(args.sheets) as tmp:
        tmp.mkdir()
        for name, picture in curation.review_sheets(rows, args.crops / FACES, classes,
                                                    params.sheet_max).items():
            write_bytes(tmp / f"{name}.png", encode_png(picture))
    figures = curation.metrics(rows, classes, len(overrides), len(unmatched))
    write_metrics(args.metrics, figures)
    log.info("%d candidates: %s; kept per label %s", len(rows), figures["outcomes"], figures["kept_per_label"])


if __name__ == "__main__":
    main()
