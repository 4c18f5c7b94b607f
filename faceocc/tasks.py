"""The tasks the DAG can train: each a fixed class list, the colours its boxes are drawn in, and the other
spellings its data sources use for those classes.

The task is a fact of the data: the scrape stage's params name it (`scrape.task`), the scrape writes it beside
its output (task.json), the crop stage carries it forward, and every later stage reads it from its inputs. So one
setting moves the whole DAG from the occlusion classes to mask wearing, no two stages can disagree, and a model
card says which task its classes belong to. What a release of each task changes in params.yaml is in
tools/release_params/.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from faceocc import CLASSES
from faceocc.atomic import write_json
from faceocc.workspace import TASK_JSON


@dataclass(frozen=True)
class Task:
    name: str
    classes: tuple[str, ...]
    colours: dict = field(default_factory=dict)   # class -> RGB for annotated pictures
    aliases: dict = field(default_factory=dict)   # a source's folder / VOC class name -> the class here
    release_dir: str = "models/release"           # the released model `faceocc --task NAME` uses by default
    # classes whose faces wear a mask over the nose or mouth: the detector guesses those landmarks under it, so a
    # head pose from them is coarse (reports/pose.md, masked faces: 8-10 degrees of yaw and pitch off)
    masked_classes: tuple[str, ...] = ()

    def label_of(self, name: str) -> str:
        """The class a source's name for it stands for (itself when the source spells it the same)."""
        return self.aliases.get(name, name)


OCCLUSION4 = Task(
    name="occlusion4",
    classes=CLASSES,
    colours={"face": (40, 180, 40), "masked": (30, 110, 230), "sunglasses": (240, 150, 20),
             "mask_sunglasses": (200, 40, 200)},
    masked_classes=("masked", "mask_sunglasses"),
)

# The second source document's classes, spelled as mask_detection's annotations spell them. Its colours: green
# for a mask worn correctly, red for none, blue for one worn wrongly.
MASK_WEARING = Task(
    name="mask_wearing",
    classes=("with_mask", "without_mask", "mask_weared_incorrect"),
    colours={"with_mask": (40, 180, 40), "without_mask": (220, 40, 40), "mask_weared_incorrect": (40, 80, 230)},
    aliases={"mask_worn_incorrectly": "mask_weared_incorrect", "mask_worn_incorrect": "mask_weared_incorrect",
             "incorrect_mask": "mask_weared_incorrect", "no_mask": "without_mask", "mask": "with_mask"},
    release_dir="models/release_mask_wearing",
    masked_classes=("with_mask", "mask_weared_incorrect"),  # worn wrongly still covers the mouth or the chin
)

TASKS = {t.name: t for t in (OCCLUSION4, MASK_WEARING)}


def task_named(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; the tasks are {sorted(TASKS)}") from None


def task_of_classes(classes: tuple[str, ...]) -> Task | None:
    """The task whose class list this is (a model card written before cards named their task)."""
    return next((t for t in TASKS.values() if t.classes == tuple(classes)), None)


TaskName = Literal["occlusion4", "mask_wearing"]  # the keys of TASKS, for typed params


class TaskFileError(ValueError):
    """A stage output's task.json is missing or does not name a known task with its classes."""


def write_task_file(folder: Path, task: Task) -> None:
    """task.json in a stage output: the task its labels belong to, and that task's classes in their order."""
    write_json(Path(folder) / TASK_JSON, {"task": task.name, "classes": list(task.classes)})


def read_task_file(folder: Path) -> Task:
    """The task of a stage output (the scrape's, or the crop's that carries it); TaskFileError in one line."""
    path = Path(folder) / TASK_JSON
    try:
        record = json.loads(path.read_text())
        task = task_named(record["task"])
    except FileNotFoundError:
        raise TaskFileError(f"{path}: missing; the scrape stage writes it (re-run the DAG from the scrape)") from None
    except (ValueError, KeyError, TypeError) as err:
        raise TaskFileError(f"{path}: {err}") from None
    if tuple(record.get("classes", ())) != task.classes:
        raise TaskFileError(f"{path}: classes {record.get('classes')} are not task {task.name}'s {list(task.classes)}")
    return task


def task_of_model(task_name: str, classes: tuple[str, ...]) -> Task | None:
    """The task of a model card: the one it names, else (a card written before cards named one) the task whose
    class list it has."""
    return TASKS.get(task_name) or task_of_classes(classes)
