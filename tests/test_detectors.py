"""Every registered detector on a real face and a face-less scene (real weights from the packages, CPU), and
MTCNN's batching and second pass, which the crop stage relies on."""

import cv2
import numpy as np
import pytest

from faceocc.boxes import iou_matrix
from faceocc.detectors import DETECTORS
from faceocc.finder import DetectorSettings, FaceFinder, FinderSettings


def _finder(name: str, **detector) -> FaceFinder:
    settings = DetectorSettings(name=name, threshold=DETECTORS[name].threshold, **detector)
    return FaceFinder(FinderSettings(detector=settings))


@pytest.fixture(scope="module", params=sorted(DETECTORS))
def any_finder(request):
    return _finder(request.param)


def _inside(point, box, slack=0.1):
    w, h = box[2] - box[0], box[3] - box[1]
    return box[0] - slack * w <= point[0] <= box[2] + slack * w and box[1] - slack * h <= point[1] <= box[3] + slack * h


def test_each_detector_finds_the_portrait_face_where_mtcnn_does(any_finder, astronaut, astronaut_face):
    found = any_finder.find(astronaut)
    assert found.outcome == "ok", any_finder.settings.detector.name
    best = max(found.faces, key=lambda f: f.score)  # faces come largest first; HOG also scores a patch 0.11
    assert iou_matrix(np.array(best.box), np.array(astronaut_face.box))[0, 0] > 0.5
    assert all(_inside(p, best.box) for p in best.landmarks)
    left_eye, right_eye, nose, mouth_left, mouth_right = best.landmarks
    assert left_eye[0] < right_eye[0] and mouth_left[0] < mouth_right[0]  # MTCNN's order: image-left first
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])
    name = any_finder.settings.detector.name
    assert best.landmarks_from == ("template" if DETECTORS[name].landmarks.startswith("template") else name)


def test_each_detector_finds_no_face_in_a_scene_without_one(any_finder, faceless):
    # the first pass; on this photo YuNet's second look (padded, upscaled) scores a cup 0.62 (reports/detectors.md)
    assert any_finder.first_pass(faceless) == [], any_finder.settings.detector.name


def test_each_detector_survives_a_tiny_and_an_odd_sized_image(any_finder):
    assert any_finder.find(np.zeros((10, 14, 3), np.uint8)).outcome == "no_face"
    assert any_finder.find(np.full((33, 97, 3), 127, np.uint8)).outcome == "no_face"


def test_mtcnn_batches_mixing_faces_and_no_faces_answer_per_image(mtcnn_finder, astronaut, faceless):
    scene = np.ascontiguousarray(faceless[:400, :400])
    portrait = np.ascontiguousarray(astronaut[:400, :400])
    per_image = mtcnn_finder.find_batch([portrait, scene, portrait])
    assert [len(f.faces) for f in per_image] == [1, 0, 1]


def test_mtcnn_refuses_a_batch_of_unequal_sizes(mtcnn_finder, astronaut):
    with pytest.raises(ValueError, match="equal-size"):
        mtcnn_finder.detector.detect_batch([astronaut, astronaut[:100]], 0.9)


def test_two_people_give_two_faces(mtcnn_finder, astronaut):
    faces = mtcnn_finder.find(np.hstack([astronaut, astronaut[:, ::-1]])).faces
    assert len(faces) == 2 and sorted(f.box[0] < 512 for f in faces) == [False, True]


def test_a_large_image_is_shrunk_for_detection_but_boxes_are_in_its_pixels(mtcnn_finder, astronaut, astronaut_face):
    big = cv2.resize(astronaut, (2048, 2048), interpolation=cv2.INTER_CUBIC)
    (face,) = mtcnn_finder.find(big).faces  # max_side 1024: detected at half size
    assert np.allclose(face.box, np.array(astronaut_face.box) * 4, atol=12)


def test_the_second_pass_finds_a_face_filling_the_frame(mtcnn_finder, astronaut, astronaut_face):
    x1, y1, x2, y2 = (int(v) for v in astronaut_face.box)
    tight = np.ascontiguousarray(astronaut[y1 + 8 : y2 - 8, x1 + 6 : x2 - 6])  # face touching every border
    assert not mtcnn_finder.first_pass(tight)
    found = mtcnn_finder.find(tight)
    assert found.detection_pass == 2 and found.faces[0].detection_pass == 2
    nose_x, nose_y = found.faces[0].landmarks[2]
    assert 0 < nose_x < tight.shape[1] and 0 < nose_y < tight.shape[0]  # mapped back into the tight crop


def test_the_second_pass_does_not_invent_a_face_in_a_scene_without_one(mtcnn_finder, faceless):
    assert mtcnn_finder.second_pass(faceless, 0.9) == []


def test_upscaling_finds_a_face_too_small_for_the_detector_at_its_own_size(astronaut, astronaut_face):
    x1, y1, x2, y2 = (int(v) for v in astronaut_face.box)
    small = cv2.resize(astronaut, (64, 64), interpolation=cv2.INTER_AREA)  # the face is now ~11 px wide
    plain = _finder("retinaface", scales=(1.0,))
    pyramid = _finder("retinaface", scales=(1.0, 4.0))
    assert not [f for f in plain.first_pass(small) if f.short_side >= 8]
    faces = [f for f in pyramid.first_pass(small) if f.short_side >= 8]
    assert faces and iou_matrix(np.array(faces[0].box), np.array(astronaut_face.box) / 8)[0, 0] > 0.4
