"""What every stage entry point shares: reading its own params section, logging, progress bars."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import NoReturn, TypeVar

import yaml

from faceocc.config import ConfigError, from_mapping
from faceocc.workspace import data_root  # noqa: F401  (the stages' import of it)

T = TypeVar("T")


def refuse(message: str) -> NoReturn:
    """A setting (or an input) that keeps the stage from running: one line on stderr, exit status 2."""
    sys.stderr.flush()
    print(message, file=sys.stderr)
    raise SystemExit(2)


def load_params(section: str, cls: type[T], path: str = "params.yaml") -> T:
    """Read `section` of params.yaml into dataclass `cls`; nothing else in the file is looked at. A missing,
    unknown, mistyped or out-of-range setting ends the stage with one line naming it (exit status 2)."""
    try:
        with open(path, encoding="utf-8") as fh:
            params = yaml.safe_load(fh) or {}
    except (OSError, yaml.YAMLError) as err:
        refuse(f"{path}: {' '.join(str(err).split())}")
    if not isinstance(params, dict) or section not in params:
        refuse(f"{path}: no `{section}` section")
    try:
        return from_mapping(cls, params[section], section)
    except ConfigError as err:
        refuse(f"{path}: {err}")


def setup_logging() -> None:
    """INFO and up from faceocc's and the stages' named loggers; from code that logs on the root logger itself,
    warnings and errors only: onnxruntime's quantization tools put each tensor's scale there at INFO, hundreds
    of lines a run that drowned a `dvc exp run` log (485 of its 717 lines)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for handler in logging.getLogger().handlers:
        if quiet_root_info not in handler.filters:
            handler.addFilter(quiet_root_info)


def quiet_root_info(record: logging.LogRecord) -> bool:
    return record.name != "root" or record.levelno >= logging.WARNING


def write_skipped(metrics: Path, report: Path, title: str, missing: Path) -> None:
    """The outputs of a stage whose real-data folder is absent: a flag in the metrics (numbers only, as every
    metrics file), the missing folder named in the report."""
    from faceocc.atomic import write_metrics, write_text

    write_metrics(metrics, {"skipped": 1})
    write_text(report, f"# {title}\n\nSkipped: no {missing}.\n")
