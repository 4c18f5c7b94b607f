"""Markdown tables, the one format every report and release README writes its figures in."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """The lines of a table: the header, its rule, then one line per row, each cell as str() gives it."""
    return [row_line(header), "|" + "---|" * len(header), *(row_line(row) for row in rows)]


def row_line(cells: Sequence[object]) -> str:
    return "|" + "|".join(f" {c} " if str(c) else " " for c in cells) + "|"  # an empty cell is "| |"
