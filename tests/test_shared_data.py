"""Integration on the real 4-class data in ../shared/datasets (skipped when absent)."""

import pytest

from faceocc import CLASSES
from faceocc.cropping import CropGeometry
from faceocc.batch_cropping import SourceImage, detection_summary, run_crop
from faceocc.sources import list_folder

pytestmark = pytest.mark.shared


def test_occlusion4_and_extra_pool_by_label(shared_datasets):
    files = [(label, path) for label, path, problem in
             list_folder([shared_datasets / "occlusion4", shared_datasets / "occlusion4_extra"]) if problem is None]
    labels = {label for label, _ in files}
    assert labels == set(CLASSES)
    per_label = {c: sum(1 for label, _ in files if label == c) for c in CLASSES}
    assert per_label["sunglasses"] > 500 and per_label["mask_sunglasses"] >= 70


def test_crop_finds_faces_in_real_photos_of_every_class(shared_datasets, tmp_path):
    from faceocc.finder import FaceFinder, FinderSettings

    files = [(label, path) for label, path, problem in list_folder([shared_datasets / "occlusion4"]) if not problem]
    sample = []
    for c in CLASSES:
        sample += [f for f in files if f[0] == c][:6]
    images = [SourceImage(f"{i:04d}", label, path) for i, (label, path) in enumerate(sample)]
    result = run_crop(images, tmp_path, FaceFinder(FinderSettings()), "largest", CropGeometry(), 4)
    assert len(result.outcomes) == len(images)
    summary = detection_summary(result.outcomes)
    assert summary["all"]["detection_rate_after_second_pass"] >= summary["all"]["detection_rate_first_pass"]
    assert summary["all"]["detection_rate_after_second_pass"] > 0.6
    assert all((tmp_path / row["file"]).exists() for row in result.crops)
