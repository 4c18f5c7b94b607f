"""The video tracker between detections: boxes keep pace with a steadily moving face, and a scene cut starts new
tracks (no box, id or smoothed score carried over)."""

import numpy as np

from faceocc.faces import Face
from faceocc.finder import DetectorSettings, FaceFinder, FinderSettings
from faceocc.video import FaceTracker, VideoSettings, colour_signature, is_scene_cut, run_video


def face_at(x: float, y: float = 40.0, side: float = 60.0) -> Face:
    return Face((x, y, x + side, y + side), 0.99, ((x + 20, y + 25), (x + 40, y + 25), (x + 30, y + 35),
                                                   (x + 22, y + 45), (x + 38, y + 45)))


def test_a_steadily_moving_face_keeps_its_box_between_detections():
    speed, every = 6.0, 5  # px per frame; detections every 5th frame
    tracker = FaceTracker(VideoSettings(detect_every=every))
    errors = []
    for frame in range(40):
        if frame % every == 0:
            tracker.update([face_at(speed * frame)], frame)
        else:
            tracker.advance()
        (track,) = tracker.tracks
        errors.append(abs(track.box[0] - speed * frame))
    # from the second detection on, the carried box is on the face (the first gap has no velocity yet)
    assert max(errors[every + 1 :]) < 1e-6
    assert np.allclose(tracker.tracks[0].velocity, [speed, 0, speed, 0])


def test_velocity_comes_from_the_last_detected_box_not_the_moved_one():
    tracker = FaceTracker(VideoSettings())
    tracker.update([face_at(0.0)], 0)
    tracker.update([face_at(10.0)], 5)      # 2 px per frame
    for _ in range(4):
        tracker.advance()                   # carried to x = 18
    tracker.update([face_at(20.0)], 10)     # still 2 px per frame: (20 - 10) / 5, not (20 - 18) / 5
    assert np.allclose(tracker.tracks[0].velocity[:2], [2.0, 0.0])


def _scene(colour, n):
    frame = np.zeros((120, 160, 3), np.uint8)
    frame[:] = colour
    frame[40:80, 60:100] = 255 - np.array(colour, np.uint8)
    return [frame.copy() for _ in range(n)]


def test_a_scene_cut_is_told_from_motion_by_the_colour_histogram():
    a, b = _scene((200, 40, 40), 1)[0], _scene((30, 90, 200), 1)[0]
    shifted = np.roll(a, 20, axis=1)
    assert not is_scene_cut(colour_signature(a), colour_signature(shifted), 0.5)
    assert is_scene_cut(colour_signature(a), colour_signature(b), 0.5)
    assert not is_scene_cut(None, colour_signature(a), 0.5) and not is_scene_cut(colour_signature(a),
                                                                                 colour_signature(b), 0.0)


class _Predictor:
    """A finder answering from a script per frame, and a classifier whose answer depends on the frame's colour."""

    def __init__(self, faces_per_frame):
        class Detector:
            name = "scripted"
            frame = 0

            def detect_batch(inner, images, floor, relaxed=False):
                return [faces_per_frame(images[0])]

        self.finder = FaceFinder(FinderSettings(DetectorSettings(name="scripted", threshold=0.9, scales=(1.0,)),
                                                min_face_px=1), detector=Detector())
        self.geometry = None

        class Classifier:
            classes = ("face", "masked")

            def predict_proba(inner, crops):
                return np.array([[1.0, 0.0] if c.mean() > 100 else [0.0, 1.0] for c in crops])

        self.classifier = Classifier()


def test_a_cut_starts_new_tracks_detects_at_once_and_carries_no_smoothed_scores(monkeypatch):
    import faceocc.video as video

    monkeypatch.setattr(video, "crop_face", lambda frame, face, geometry: (frame[:8, :8], None))
    clip = _scene((220, 220, 220), 7) + _scene((10, 10, 120), 7)  # a bright shot, then a dark one
    detections = []

    def faces(image):
        detections.append(image.mean())
        return [face_at(60.0, 30.0, 40.0)]

    records = []
    summary = run_video(clip, _Predictor(faces), VideoSettings(detect_every=5, smoothing=0.9, scene_cut=0.5),
                        lambda i, frame, rs: records.append(rs))
    assert summary["scene_cuts"] == 1
    assert len(detections) == 4  # frames 0 and 5, then the cut's frame 7 (not waiting for 10), and 12
    first, after_cut = records[6][0], records[7][0]
    assert after_cut["track"] != first["track"]
    assert after_cut["label"] == "masked" and after_cut["scores"]["masked"] == 1.0  # nothing smoothed over
