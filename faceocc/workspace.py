"""Where a pipeline run finds things: data folders named in params.yaml (read from a DVC workspace or from one of
DVC's copies of it), and the layout of the stages' outputs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def data_root(root: str | os.PathLike) -> Path:
    """Where to read a data folder that params.yaml names. A relative path that leaves the project (such as
    `../shared/datasets/...`) is relative to the project's root, which is not the working directory of a queued or
    `--temp` experiment: DVC runs those in a copy under `.dvc/tmp/exps/` and passes the project's root in
    DVC_ROOT. A path inside the project stays relative to the working directory, the experiment's own copy."""
    path = Path(root)
    if path.is_absolute() or Path(os.path.normpath(path)).parts[:1] != (os.pardir,):
        return path
    return Path(os.path.relpath(Path(os.environ.get("DVC_ROOT") or ".") / path))


# The layout of a pipeline run's outputs, as dvc.yaml writes them. Code that reads a stage's output names its
# files through these, so that a moved folder is an edit here and in dvc.yaml, not a search.
FACES = "faces"                 # the crop stage's crops: faces/<label>/<crop id>.png
CROPS_CSV = "crops.csv"         # the crop stage's row per crop (box, landmarks, file)
SPLIT_CSV = "split.csv"         # the split stage's row per kept crop, with its split
MANIFEST_CSV = "manifest.csv"   # the scrape stage's row per item, with its outcome
TASK_JSON = "task.json"         # beside the scrape's and the crop's outputs: the task their labels belong to
MODEL_VARIANTS = ("fp32", "fx_int8", "onnx_fp32", "onnx_int8")  # models/<variant>/<backbone>


@dataclass(frozen=True)
class Workspace:
    """A DVC workspace of this pipeline (the repository, or a release's build/ copy) and its stages' folders."""

    root: Path

    @property
    def scrape(self) -> Path:
        return self.root / "data" / "scrape"

    @property
    def crop(self) -> Path:
        return self.root / "data" / "crop"

    @property
    def split(self) -> Path:
        return self.root / "data" / "split"

    def model(self, variant: str, backbone: str) -> Path:
        return self.root / "models" / variant / backbone
