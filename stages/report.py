"""Stage `report`: the source document's comparison table, regenerated from the evaluation metrics.

reports/summary.json (DVC metrics, stable schema) and reports/metrics.md (rows = backbones; per variant:
accuracy / latency / size, and whether the source's requirement is met).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field
from pathlib import Path

from faceocc.atomic import write_metrics, write_text
from faceocc.comparison import markdown, summarise
from faceocc.metrics import read_evaluation
from faceocc.requirement import Requirement
from stages._common import load_params, setup_logging

log = logging.getLogger("report")


@dataclass(frozen=True)
class ReportParams:
    requirement: Requirement = field(default_factory=Requirement)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--evaluations", required=True, type=Path, nargs="+",
                        help="evaluate metrics.json files (each read with the speed.json beside it), or folders "
                             "of <backbone>/<variant>/metrics.json")
    parser.add_argument("--summary", required=True, type=Path)
    parser.add_argument("--table", required=True, type=Path)
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    setup_logging()
    params = load_params("report", ReportParams, args.params)
    evaluations = [read_evaluation(p) for p in evaluation_files(args.evaluations)]
    summary = summarise(evaluations, params.requirement)
    write_metrics(args.summary, summary)
    write_text(args.table, markdown(summary, evaluations, params.requirement))
    log.info("wrote %s and %s", args.summary, args.table)


def evaluation_files(paths: list[Path]) -> list[Path]:
    """Each file as given; a folder (reports/eval, every evaluate@ stage's output) as the metrics.json files two
    levels under it, so that the report takes in a backbone added to params.yaml without an edit here."""
    return [f for p in paths for f in (sorted(p.glob("*/*/metrics.json")) if p.is_dir() else [p])]


if __name__ == "__main__":
    main()
