"""What every stage entry point shares: reading its own params section, logging, progress bars."""

from __future__ import annotations

import logging
import sys
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
