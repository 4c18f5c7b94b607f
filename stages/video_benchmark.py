"""Stage `video_benchmark`: frames per second of `faceocc video`'s loop on a 640x480 clip with 1-3 faces, for
the detection intervals in params (1 = the detector on every frame, the naive loop), using both cores; writes
reports/video_benchmark.json and an annotated frame (reports/video_frame.png).

The clip is synthetic and reproducible: the demo portrait's face plain, masked and in sunglasses (the occlusion
renderer), drifting over a textured background.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from faceocc.annotate import draw_predictions
from faceocc.atomic import write_bytes, write_metrics
from faceocc.benchmark import cpu_name
from faceocc.classifier import Classifier
from faceocc.cropping import CropGeometry, crop_face
from faceocc.demo import load_portrait
from faceocc.images import encode_png
from faceocc.inference import FacePredictor
from faceocc.occlusion import occlude
from faceocc.video import VideoSettings, run_video, synthetic_clip
from stages._common import load_params, setup_logging

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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, type=Path, help="the model directory the video loop uses")
    parser.add_argument("--metrics", required=True, type=Path)
    parser.add_argument("--frame", required=True, type=Path, help="annotated middle frame (PNG)")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    setup_logging()
    p = load_params("video_benchmark", VideoBenchmarkParams, args.params)
    torch.set_num_threads(p.threads)
    predictor = FacePredictor(Classifier.load(args.model), threads=p.threads)
    tiles = face_tiles(p.faces, p.face_px, p.seed, predictor)
    clip = list(synthetic_clip(tiles, p.frames, (p.width, p.height), p.seed))
    runs, picture = [], None
    for every in p.detect_every:
        settings = VideoSettings(detect_every=every, detect_max_side=p.detect_max_side)
        seen: list[int] = []
        middle = len(clip) // 2

        def on_frame(index, frame, records):
            nonlocal picture
            seen.append(len(records))
            if index == middle and every == p.detect_every[-1]:
                picture = draw_predictions(frame, records, predictor.classifier.classes)

        summary = run_video(clip, predictor, settings, on_frame)
        runs.append({"detect_every": every, **summary,
                     "frames_with_all_faces": int(sum(n == len(tiles) for n in seen)),
                     "meets_min_fps": bool(summary["fps"] and summary["fps"] >= p.min_fps)})
        log.info("detect every %d: %.1f frames/s, %d of %d frames with all %d faces", every, summary["fps"],
                 runs[-1]["frames_with_all_faces"], len(clip), len(tiles))
    log.info("%s (%s) on %s", args.model, predictor.classifier.card.variant, cpu_name())
    write_metrics(args.metrics, {"threads": p.threads, "frame_size": [p.width, p.height],
                                 "faces_per_frame": len(tiles), "min_fps": p.min_fps, "runs": runs})
    if picture is not None:
        write_bytes(args.frame, encode_png(picture))


if __name__ == "__main__":
    main()
