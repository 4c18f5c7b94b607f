from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from faceocc.demo import load_portrait

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = ROOT.parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    return load_portrait("astronaut")


@pytest.fixture(scope="session")
def faceless() -> np.ndarray:
    return load_portrait("coffee")


@pytest.fixture(scope="session")
def mtcnn_finder():
    """The finder with MTCNN (the source documents' detector): the reference the other detectors are held to."""
    from faceocc.finder import DetectorSettings, FaceFinder, FinderSettings

    return FaceFinder(FinderSettings(detector=DetectorSettings(name="mtcnn", threshold=0.9, scales=(1.0,))))


@pytest.fixture(scope="session")
def astronaut_face(mtcnn_finder, astronaut):
    faces = mtcnn_finder.first_pass(astronaut)
    assert len(faces) == 1
    return faces[0]


@pytest.fixture
def shared_datasets() -> Path:
    if not (SHARED_DATASETS / "occlusion4").is_dir():
        pytest.skip("../shared/datasets is not present")
    return SHARED_DATASETS


def run_data_stages(root: Path, params: str) -> dict:
    """dedup, curate, split and balance in-process on root/crop and root/scrape, as `dvc repro` runs them;
    curation overrides from root/overrides.csv when present. Returns each stage's metrics."""
    from stages import balance, curate, dedup, split

    r = str(root)
    dedup.main(["--crops", f"{r}/crop", "--out", f"{r}/dedup", "--metrics", f"{r}/dedup.json",
                "--sheet", f"{r}/dedup.png", "--params", params])
    curate.main(["--dedup", f"{r}/dedup", "--crops", f"{r}/crop", "--overrides", f"{r}/overrides.csv",
                 "--out", f"{r}/curate", "--metrics", f"{r}/curate.json", "--sheets", f"{r}/sheets",
                 "--params", params])
    split.main(["--curated", f"{r}/curate", "--dedup", f"{r}/dedup", "--raw", f"{r}/scrape", "--out", f"{r}/split",
                "--metrics", f"{r}/split.json", "--params", params])
    balance.main(["--split", f"{r}/split", "--crops", f"{r}/crop", "--out", f"{r}/balance", "--metrics",
                  f"{r}/balance.json", "--counts", f"{r}/counts.csv", "--chart", f"{r}/counts.png",
                  "--samples", f"{r}/samples.png", "--params", params])
    return {name: json.loads((root / f"{name}.json").read_text()) for name in ("dedup", "curate", "split", "balance")}


def write_untrained_model(path: Path, classes: tuple[str, ...], task: str = "") -> Path:
    """A real (untrained) MobileNetV2 model directory as train writes it: for schema and plumbing, not labels."""
    import torch

    from faceocc.backbones import IMAGENET_MEAN, IMAGENET_STD, build
    from faceocc.classifier import CARD_FILE, WEIGHTS_FILE, ModelCard, save_weights

    torch.manual_seed(0)
    model, _ = build("mobilenet_v2", len(classes), "none")
    save_weights(model.state_dict(), path / WEIGHTS_FILE)
    card = ModelCard(backbone="mobilenet_v2", classes=classes, task=task, input_size=64, mean=IMAGENET_MEAN,
                     std=IMAGENET_STD, crop={"size": 112, "margin": 0.2})
    (path / CARD_FILE).write_text(card.to_json())
    return path
