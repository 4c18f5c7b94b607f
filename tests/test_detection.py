"""MTCNN behaviour the crop stage relies on (real weights, CPU, ~0.2 s per image)."""

import numpy as np
import pytest

from faceocc.detection import SecondPassConfig


def _inside(point, box):
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


def test_portrait_gives_one_face_with_landmarks_inside_its_box(astronaut_face):
    f = astronaut_face
    assert f.score > 0.99 and f.detection_pass == 1
    assert all(_inside(p, f.box) for p in f.landmarks)
    left_eye, right_eye = f.landmarks[:2]
    assert left_eye[0] < right_eye[0]  # MTCNN order: image-left eye first


def test_scene_without_a_face_gives_none(detector, faceless):
    assert detector.detect(faceless) == []


def test_two_people_give_two_faces(detector, astronaut):
    pair = np.hstack([astronaut, astronaut[:, ::-1]])
    faces = detector.detect(pair)
    assert len(faces) == 2
    assert sorted(f.box[0] < 512 for f in faces) == [False, True]


def test_tiny_image_does_not_crash(detector):
    assert detector.detect(np.zeros((10, 14, 3), np.uint8)) == []


def test_batch_mixing_faces_and_no_faces_answers_per_image(detector, astronaut, faceless):
    scene = np.ascontiguousarray(faceless[:400, :400])
    portrait = np.ascontiguousarray(astronaut[:400, :400])
    per_image = detector.detect_batch([portrait, scene, portrait])
    assert [len(f) for f in per_image] == [1, 0, 1]


def test_batch_of_unequal_sizes_is_refused(detector, astronaut):
    with pytest.raises(ValueError, match="equal-size"):
        detector.detect_batch([astronaut, astronaut[:100]])


def test_large_image_is_shrunk_for_detection_but_boxes_are_in_source_pixels(detector, astronaut, astronaut_face):
    import cv2

    big = cv2.resize(astronaut, (2048, 2048), interpolation=cv2.INTER_CUBIC)
    faces = detector.detect(big)  # max_side 1024: detected at half size
    assert len(faces) == 1
    assert np.allclose(faces[0].box, np.array(astronaut_face.box) * 4, atol=12)


def test_second_pass_finds_a_face_filling_the_frame(detector, astronaut, astronaut_face):
    x1, y1, x2, y2 = (int(v) for v in astronaut_face.box)
    tight = np.ascontiguousarray(astronaut[y1 + 8 : y2 - 8, x1 + 6 : x2 - 6])  # face touching every border
    assert not [f for f in detector.detect(tight) if f.score >= 0.9]
    found = detector.detect_second_pass(tight, SecondPassConfig(), min_score=0.9)
    assert found and found[0].detection_pass == 2
    nose_x, nose_y = found[0].landmarks[2]
    assert 0 < nose_x < tight.shape[1] and 0 < nose_y < tight.shape[0]  # mapped back into the tight crop


def test_second_pass_does_not_invent_a_face_in_a_scene_without_one(detector, faceless):
    found = detector.detect_second_pass(faceless, SecondPassConfig(), min_score=0.9)
    assert not [f for f in found if f.score >= 0.9]
