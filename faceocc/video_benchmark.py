"""Frames per second of `faceocc video`'s loop on a reproducible synthetic clip: the demo portrait's face plain,
masked and in sunglasses (the occlusion renderer), drifting over a textured background, for each detection
interval (1 = the detector on every frame, the naive loop), and for a one-stage model (its one graph finds and labels
the faces of every frame)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from faceocc.annotate import draw_predictions
from faceocc.cropping import CropGeometry, crop_face
from faceocc.demo import load_portrait
from faceocc.inference import FacePredictor
from faceocc.occlusion import occlude
from faceocc.video import VideoSettings, run_video, synthetic_clip

log = logging.getLogger("video_benchmark")


@dataclass(frozen=True)
class VideoBenchmarkParams:
    frames: int = 150
    width: int = 640
    height: int = 480
    faces: tuple[str, ...] = ("face", "masked", "sunglasses")   # one moving face per entry: 1-3 of them
    face_px: int = 150                                           # side of each face tile
    detect_every: tuple[int, ...] = (1, 5)                       # the naive loop, and the tool's default
    detect_max_side: int = 320
    threads: int = 2
    min_fps: float = 25.0                                        # the target, stated in the report
    seed: int = 0


def face_tiles(kinds: tuple[str, ...], side: int, seed: int, predictor: FacePredictor) -> list[np.ndarray]:
    portrait = load_portrait("astronaut")
    (face, *_), _ = predictor.faces(portrait)
    rng = np.random.default_rng(seed)
    tiles = []
    for kind in kinds:
        image = portrait if kind == "face" else occlude(portrait, face.landmarks, kind, rng)
        tiles.append(crop_face(image, face, CropGeometry(size=side, margin=0.8))[0])
    return tiles


def benchmark(p: VideoBenchmarkParams, predictor: FacePredictor, one_stage=None) -> tuple[dict, np.ndarray | None]:
    """(video_benchmark.json's figures, the middle frame of the last two-stage run annotated): `runs`, one for
    each detection interval of the two-stage `predictor`, and `one_stage`, the `one_stage` predictor's run (a
    OneStagePredictor: its graph on every frame, at its card's side) when given."""
    tiles = face_tiles(p.faces, p.face_px, p.seed, predictor)
    clip = list(synthetic_clip(tiles, p.frames, (p.width, p.height), p.seed))
    runs, picture = [], None
    for every in p.detect_every:
        settings = VideoSettings(detect_every=every, detect_max_side=p.detect_max_side)
        run, drawn = timed_run(clip, predictor, settings, predictor.classifier.classes, len(tiles), p.min_fps)
        runs.append(run)
        picture = drawn if every == p.detect_every[-1] else picture
    figures = {"threads": p.threads, "frame_size": [p.width, p.height], "faces_per_frame": len(tiles),
               "min_fps": p.min_fps, "runs": runs}
    if one_stage is not None:
        figures["one_stage"], _ = timed_run(clip, one_stage, VideoSettings(detect_every=1), one_stage.classes,
                                            len(tiles), p.min_fps, is_one_stage=True)
        figures["one_stage"]["side"] = one_stage.card.side
    return figures, picture


def timed_run(clip: list[np.ndarray], predictor, settings: VideoSettings, classes, faces: int, min_fps: float,
              is_one_stage: bool = False) -> tuple[dict, np.ndarray]:
    """One pass of `faceocc video`'s loop over the clip: its summary, how many frames had every face, and the
    middle frame annotated."""
    seen: list[int] = []
    middle, picture = len(clip) // 2, None

    def on_frame(index, frame, records):
        nonlocal picture
        seen.append(len(records))
        if index == middle:
            picture = draw_predictions(frame, records, classes)

    summary = run_video(clip, predictor, settings, on_frame, one_stage=is_one_stage)
    run = {"detect_every": settings.detect_every, **summary,
           "frames_with_all_faces": int(sum(n == faces for n in seen)),
           "meets_min_fps": bool(summary["fps"] and summary["fps"] >= min_fps)}
    log.info("%s, detect every %d: %.1f frames/s, %d of %d frames with all %d faces",
             "one-stage" if is_one_stage else "two-stage", settings.detect_every, summary["fps"],
             run["frames_with_all_faces"], len(clip), faces)
    return run, picture
