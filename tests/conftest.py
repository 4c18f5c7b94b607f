from __future__ import annotations

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
def detector():
    from faceocc.detection import DetectorConfig, FaceDetector

    return FaceDetector(DetectorConfig(device="cpu"))


@pytest.fixture(scope="session")
def astronaut_face(detector, astronaut):
    faces = detector.detect(astronaut)
    assert len(faces) == 1
    return faces[0]


@pytest.fixture
def shared_datasets() -> Path:
    if not (SHARED_DATASETS / "occlusion4").is_dir():
        pytest.skip("../shared/datasets is not present")
    return SHARED_DATASETS
