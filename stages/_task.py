"""The task a stage's input belongs to, for the stages that read one (crop, curate, split, balance, train): apart
from stages/_common.py, which every stage imports, so that editing faceocc/tasks.py re-runs only them."""

from __future__ import annotations

from pathlib import Path

from faceocc.tasks import Task, TaskFileError, read_task_file
from stages._common import refuse


def task_of(folder: Path) -> Task:
    """The task an input folder's labels belong to (its task.json), or the stage ends with one line naming it."""
    try:
        return read_task_file(folder)
    except TaskFileError as err:
        refuse(str(err))
