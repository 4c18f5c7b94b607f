"""What every stage entry point shares: reading its own params section, logging, progress bars."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TypeVar

import yaml

from faceocc.config import from_mapping

T = TypeVar("T")


def load_params(section: str, cls: type[T], path: str = "params.yaml") -> T:
    """Read `section` of params.yaml into dataclass `cls`; nothing else in the file is looked at."""
    with open(path, encoding="utf-8") as fh:
        params = yaml.safe_load(fh) or {}
    if section not in params:
        raise SystemExit(f"{path}: no `{section}` section")
    return from_mapping(cls, params[section], section)


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def write_skipped(metrics: Path, report: Path, title: str, missing: Path) -> None:
    """The outputs of a stage whose real-data folder is absent: a note in the metrics and the report."""
    from faceocc.atomic import write_json, write_text

    write_json(metrics, {"skipped": f"no {missing}"})
    write_text(report, f"# {title}\n\nSkipped: no {missing}.\n")
