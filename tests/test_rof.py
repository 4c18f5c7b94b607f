"""ROF manifests: both record layouts, numpy scalars from numpy 1 and 2, and hostile pickles refused unrun."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from faceocc.rof import (
    ForbiddenPickle,
    RofFace,
    check_annotation,
    github_repository,
    identity_of,
    list_local,
    list_tree,
    parse_manifest,
    safe_unpickle,
)


def flat_face(x, y, w, h):
    # the layout most ROF files use; numpy scalars as MTCNN-era tooling left them
    return {"box": [np.int64(x), np.int64(y), np.int64(w), np.int64(h)],
            "left_eye": (np.int64(x + w * 0.3), np.int64(y + h * 0.4)),
            "right_eye": (np.int64(x + w * 0.7), np.int64(y + h * 0.4)),
            "nose": (np.float64(x + w * 0.5), np.float64(y + h * 0.6)),
            "mouth_left": (np.float32(x + w * 0.35), np.float32(y + h * 0.8)),
            "mouth_right": (np.float32(x + w * 0.65), np.float32(y + h * 0.8))}


def nested_face(x, y, w, h):
    # MTCNN (ipazc) style: keypoints nested, plus a confidence
    flat = flat_face(x, y, w, h)
    return {"box": flat.pop("box"), "confidence": np.float64(0.99), "keypoints": flat}


class RunsAShellCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_both_record_layouts_parse_to_boxes_and_five_landmarks():
    manifest = {0: {"url": "http://a/1.jpg", "faces": [flat_face(10, 20, 100, 120)]},
                1: {"url": "http://a/2.jpg", "faces": [nested_face(5, 5, 50, 60)]},
                "2": {"url": "http://a/3.jpg", "faces": []}}
    records, skipped = parse_manifest(pickle.dumps(manifest, protocol=2))
    assert skipped == []
    assert [r.url for r in records] == ["http://a/1.jpg", "http://a/2.jpg", "http://a/3.jpg"]
    first = records[0].faces[0]
    assert first.box == (10.0, 20.0, 110.0, 140.0)  # x, y, w, h became corners
    assert len(first.landmarks) == 5 and first.landmarks[2] == (60.0, 92.0)
    assert records[1].faces[0].box == (5.0, 5.0, 55.0, 65.0)
    assert records[2].faces == ()


def test_pickles_written_by_numpy_1_load_under_numpy_2():
    data = pickle.dumps({0: {"url": "http://a/1.jpg", "faces": [flat_face(1, 2, 30, 40)]}}, protocol=2)
    old = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert old != data
    records, _ = parse_manifest(old)
    assert records[0].faces[0].box == (1.0, 2.0, 31.0, 42.0)


def test_numpy_arrays_are_allowed_data():
    assert np.array_equal(safe_unpickle(pickle.dumps(np.arange(4.0))), np.arange(4.0))


@pytest.mark.parametrize("protocol", [2, 4])
def test_a_hostile_pickle_is_refused_before_it_runs(tmp_path, protocol):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({0: {"url": "http://a/1.jpg", "faces": [RunsAShellCommand(marker)]}}, protocol=protocol)
    with pytest.raises(ForbiddenPickle, match=r"posix\.system|os\.system|nt\.system"):
        parse_manifest(payload)
    assert not marker.exists()


def test_hostile_globals_hidden_inside_numpy_object_arrays_are_refused_too(tmp_path):
    marker = tmp_path / "pwned"
    hidden = np.array([RunsAShellCommand(marker)], dtype=object)
    with pytest.raises(ForbiddenPickle):
        safe_unpickle(pickle.dumps({"x": hidden}))
    assert not marker.exists()


def test_malformed_records_are_skipped_with_a_reason():
    manifest = {0: {"faces": []}, 1: {"url": "http://a/ok.jpg", "faces": [{"box": [1, 2, 3, 4]}]},
                2: {"url": "http://a/fine.jpg"}}
    records, skipped = parse_manifest(pickle.dumps(manifest))
    assert [r.url for r in records] == ["http://a/fine.jpg"]
    assert skipped == [("0", "record has no url"), ("1", "face has no left_eye")]


def test_identity_is_the_person_whatever_they_wear():
    assert identity_of("ROF/masked/bill_gates_wearing_mask.pkl") == "bill_gates"
    assert identity_of("bill_gates_wearing_sunglasses.pkl") == "bill_gates"
    assert identity_of("ROF/neutral/bill_gates.pkl") == "bill_gates"


def test_annotations_outside_the_downloaded_image_are_flagged():
    face = RofFace((100.0, 100.0, 300.0, 350.0), ((150.0, 180.0),) * 5)
    assert check_annotation((face,), 640, 480) == ""
    assert "outside the 200x150 image" in check_annotation((face,), 200, 150)
    assert "empty box" in check_annotation((RofFace((5.0, 5.0, 5.0, 9.0), ((5.0, 6.0),) * 5),), 640, 480)


def test_repository_listings_name_the_manifests_in_category_order(tmp_path):
    tree = {"tree": [{"path": "README.md"}, {"path": "ROF/neutral/b.pkl"}, {"path": "ROF/masked/a_wearing_mask.pkl"},
                     {"path": "ROF/neutral/a.pkl"}, {"path": "ROF/other/x.pkl"}]}
    refs = list_tree(tree, ("neutral", "masked"), "https://raw.example/o/r/main")
    assert [r.path for r in refs] == ["ROF/neutral/a.pkl", "ROF/neutral/b.pkl", "ROF/masked/a_wearing_mask.pkl"]
    assert refs[0].location == "https://raw.example/o/r/main/ROF/neutral/a.pkl"
    for ref in refs:
        path = tmp_path / ref.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    assert [r.path for r in list_local(tmp_path, ("neutral", "masked"))] == [r.path for r in refs]
    assert github_repository("https://github.com/ekremerakin/RealWorldOccludedFaces.git") == (
        "ekremerakin", "RealWorldOccludedFaces")
