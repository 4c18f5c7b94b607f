"""The face finder's landmarks, and the head pose they give, on MTFL's annotated real faces: as photographed, and
again with a face mask drawn over nose, mouth and chin.

The second source document rests on MTCNN's 5 keypoints surviving a mask. No data set here has masked faces with
landmark annotations, so the mask is drawn (faceocc.occlusion, a random style per image) where the *annotated*
landmarks put the nose and mouth: the annotation stays the truth, and the same face is measured bare and masked.
Pose is judged against the pose the annotated landmarks give (sqpnp5): MTFL has only a coarse pose label, so this
measures how far the detector's points, bare or masked, move the estimate, not the estimate's own error (reports/pose.md
has that on synthetic faces).

A masked face the first pass misses gets the second pass the crop stage and `faceocc predict` use."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from faceocc import pose
from faceocc.markdown import table
from faceocc.occlusion import random_mask_style, render_mask
from faceocc.pose_eval import MTFL_POSES, angle_error, bin_agreement, normalised_mean_error, point_errors

log = logging.getLogger(__name__)

POINT_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
MATCH_RADIUS = 0.5  # a detected face is the annotated one when its eye midpoint is this close (inter-ocular units)
AXES = ("yaw", "pitch", "roll")
# how the pose of a face is estimated in each condition: (name, landmarks used, method). chin6_frontal with a
# synthesised chin is the source document's method for masked faces; sqpnp5 is the tool's default.
POSE_RUNS = (("bare, sqpnp5", "bare", "sqpnp5"),
             ("masked, sqpnp5", "masked", "sqpnp5"),
             ("masked, chin6_frontal (synthesised chin)", "masked", "chin6_frontal"))


@dataclass(frozen=True)
class MtflRun:
    limit: int = 0                               # 0 = every annotated image
    yaw_edges: tuple[float, float] = (15.0, 45.0)
    masks: bool = True                           # also measure each face with a drawn mask
    seed: int = 0                                # mask styles


def annotated_points(row: dict) -> np.ndarray:
    """MTFL's 5 annotated points (x, y) in POINT_NAMES order."""
    return np.array([[float(row[f"{name}_x"]), float(row[f"{name}_y"])] for name in POINT_NAMES])


def nearest_face(faces: Sequence, truth: np.ndarray):
    """The detected face whose eye midpoint is nearest the annotated one, or None when none is within
    MATCH_RADIUS inter-ocular distances (an image may show several people; only one is annotated)."""
    eyes = truth[:2].mean(axis=0)
    radius = MATCH_RADIUS * float(np.linalg.norm(truth[1] - truth[0]))
    distance = lambda f: float(np.linalg.norm(np.mean(np.asarray(f.landmarks)[:2], axis=0) - eyes))  # noqa: E731
    best = min(faces, key=distance, default=None)
    return best if best is not None and distance(best) <= radius else None


def masked_copy(image: np.ndarray, truth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The image with a random mask drawn where the annotated landmarks put nose, mouth and chin."""
    return render_mask(image, [tuple(p) for p in truth], random_mask_style(rng))


def find(finder, image: np.ndarray, truth: np.ndarray, second_pass: bool = False):
    """(landmarks, detection pass) of the annotated face among the faces the finder reports (its threshold and
    size rule), or (None, 0). With `second_pass`, the finder's second pass runs on a miss, as the tool's does."""
    face = nearest_face(finder.select(finder.first_pass(image), 1).faces, truth)
    if face is not None:
        return np.asarray(face.landmarks), 1
    if second_pass and finder.settings.second_pass.enabled:
        face = nearest_face(finder.select(finder.second_pass(image, finder.threshold), 2).faces, truth)
        if face is not None:
            return np.asarray(face.landmarks), 2
    return None, 0


def measure(rows: list[dict], root: Path, finder, run: MtflRun) -> list[dict]:
    """One record per usable annotated image: its label, glasses, the annotation, and the finder's landmarks of
    the annotated face bare and (with `run.masks`) masked, None where it was not found. An unreadable image,
    a malformed row or a failed detection is logged in one line and skipped."""
    from faceocc.images import ImageDecodeError, load_rgb

    records = []
    for index, row in enumerate(tqdm(rows, desc="MTFL", unit="image")):
        try:
            truth, label = annotated_points(row), int(row["head_pose"])
            image = load_rgb(root / row["image"])
        except ImageDecodeError as err:
            log.warning("%s: unreadable (%s)", row["image"], err)
            continue
        except (KeyError, ValueError) as err:
            log.warning("%s: bad annotation row (%s)", row.get("image", f"row {index + 2}"), err)
            continue
        try:
            bare, _ = find(finder, image, truth)  # the first pass only, as MTFL's faces are bare
            record = {"image": row["image"], "label": label, "glasses": row.get("wearing_glasses") == "yes",
                      "size": (image.shape[1], image.shape[0]), "truth": truth, "bare": bare}
            if run.masks:
                # one generator per image, so a record does not depend on which images came before it
                masked = masked_copy(image, truth, np.random.default_rng([run.seed, index]))
                record["masked"], record["masked_pass"] = find(finder, masked, truth, second_pass=True)
        except Exception as err:  # noqa: BLE001 - one image's failure is logged; the others are still measured
            log.warning("%s: detection failed (%s)", row["image"], err)
            continue
        records.append(record)
    return records


def _mean(values) -> float | None:
    values = list(values)
    return round(float(np.mean(values)), 4) if values else None


def landmark_figures(records: list[dict]) -> dict:
    """The bare faces' detected landmarks' NME: all faces found, by glasses and by MTFL pose label."""
    found = [r for r in records if r["bare"] is not None]
    groups: dict[str, list[float]] = {}
    for r in found:
        nme = normalised_mean_error(r["bare"], r["truth"])
        groups.setdefault("glasses" if r["glasses"] else "no glasses", []).append(nme)
        groups.setdefault(MTFL_POSES[r["label"]], []).append(nme)
    return {"all": _mean(normalised_mean_error(r["bare"], r["truth"]) for r in found),
            **{k: _mean(v) for k, v in sorted(groups.items())}}


def reference_poses(records: list[dict]) -> list:
    """The pose each record's annotated landmarks give (the default method): the yardstick for the detector's."""
    return [pose.estimate(r["truth"], r["size"]) for r in records]


def masked_figures(records: list[dict], edges: tuple[float, float]) -> dict:
    """Bare against masked on the same faces: how often the finder finds the face, each landmark's error, and how far
    each condition's pose is from the annotated landmarks' pose."""
    paired = [r for r in records if r["bare"] is not None and r["masked"] is not None]
    per_point = {condition: {name: _mean(point_errors(r[condition], r["truth"])[k] for r in paired)
                             for k, name in enumerate(POINT_NAMES)} for condition in ("bare", "masked")}
    for condition in per_point:
        per_point[condition]["all"] = _mean(normalised_mean_error(r[condition], r["truth"]) for r in paired)
    references = reference_poses(paired)
    pose_errors = {}
    for name, condition, method in POSE_RUNS:
        errors = []
        for r, reference in zip(paired, references):
            estimate = pose.estimate(r[condition], r["size"], method)
            if reference is None or estimate is None:
                continue
            errors.append(angle_error([estimate.yaw, estimate.pitch, estimate.roll],
                                      [reference.yaw, reference.pitch, reference.roll]))
        e = np.array(errors).reshape(-1, 3)
        pose_errors[name] = {"faces": len(e),
                             **{f"mae_{axis}": round(float(e[:, k].mean()), 2) if len(e) else None
                                for k, axis in enumerate(AXES)},
                             "over_15_deg": round(float(np.mean(e.max(axis=1) > 15.0)), 4) if len(e) else None}
    masked_yaws = [(pose.estimate(r["masked"], r["size"]), r["label"]) for r in records if r["masked"] is not None]
    masked_yaws = [(p.yaw, label) for p, label in masked_yaws if p is not None]
    return {"faces": len(records),
            "found_bare_first_pass": sum(r["bare"] is not None for r in records),
            "found_masked_first_pass": sum(r["masked_pass"] == 1 for r in records),
            "found_masked_with_second_pass": sum(r["masked"] is not None for r in records),
            "paired_faces": len(paired),
            "point_nme": per_point,
            "pose_vs_annotated": pose_errors,
            "yaw_bins_detected_landmarks_masked": bin_agreement([y for y, _ in masked_yaws],
                                                             [label for _, label in masked_yaws], edges)}


def figures(records: list[dict], images: int, run: MtflRun, detector: str) -> dict:
    """Everything reports/pose.json carries about MTFL."""
    found = [r for r in records if r["bare"] is not None]
    yaws = [(p.yaw if p else 0.0) for p in reference_poses(records)]
    detected = [(pose.estimate(r["bare"], r["size"]), r["label"]) for r in found]
    detected = [(p.yaw, label) for p, label in detected if p is not None]
    return {"images": images, "detector": detector, "unreadable": images - len(records),
            "detector_missed": len(records) - len(found),
            "landmark_nme": landmark_figures(records),
            "yaw_bins_annotated_landmarks": bin_agreement(yaws, [r["label"] for r in records], run.yaw_edges),
            "yaw_bins_detected_landmarks": bin_agreement([y for y, _ in detected], [lab for _, lab in detected],
                                                      run.yaw_edges),
            "masked": masked_figures(records, run.yaw_edges) if run.masks else None}


def markdown(result: dict, edges: tuple[float, float]) -> list[str]:
    """The MTFL sections of reports/pose.md."""
    det = result["detector"]
    lines = ["", "## Real faces: MTFL", "",
             f"{result['images']} annotated images ({result['unreadable']} skipped: unreadable, a malformed row or a "
             f"failed detection); the finder ({det}) found the annotated "
             f"face in {result['images'] - result['unreadable'] - result['detector_missed']}.", "",
             f"{det} landmarks against the annotation, normalised mean error (by the annotated inter-ocular distance; "
             "MTFL's own occluder is glasses; drawn masks below):", ""]
    lines += table(["faces", "NME"], [[k, f"{v:.3f}"] for k, v in result["landmark_nme"].items() if v is not None])
    lines += ["", f"Yaw (`{pose.DEFAULT_METHOD}`) binned as MTFL labels: |yaw| <= {edges[0]:g}° frontal, <= "
              f"{edges[1]:g}° left/right, beyond that profile (edges fixed beforehand, not fitted). The median yaw "
              "per label shows that MTFL's left is a face turned to the image's left (yaw > 0 here).", ""]
    bins = [("annotated", result["yaw_bins_annotated_landmarks"]), (det, result["yaw_bins_detected_landmarks"])]
    if result.get("masked"):
        bins.append((f"{det}, masked", result["masked"]["yaw_bins_detected_landmarks_masked"]))
    lines += table(["landmarks", "faces", "exact bin", "within one bin",
                    *(f"median yaw {n}" for n in MTFL_POSES.values())],
                   [[name, b["faces"], f"{b['exact']:.1%}", f"{b['within_one_bin']:.1%}",
                     *(f"{b['median_yaw'].get(n, float('nan')):+.1f}°" for n in MTFL_POSES.values())]
                    for name, b in bins])
    if result.get("masked"):
        lines += masked_markdown(result["masked"], det)
    return lines


def masked_markdown(m: dict, det: str) -> list[str]:
    n = max(m["faces"], 1)
    lines = ["", "### The same faces with a drawn mask", "",
             "Each image again, with a mask (random style: surgical, cloth or N95) drawn over nose, mouth and chin "
             "where the *annotated* landmarks put them, so the annotation stays the truth "
             "(faceocc/mtfl_eval.py). A drawn mask is not a worn one: no fabric folds under the chin, no "
             "shadow on the cheeks.", "",
             f"- {det} found the annotated face in {m['found_bare_first_pass']} of {m['faces']} bare images "
             f"({m['found_bare_first_pass'] / n:.1%}), and masked in {m['found_masked_first_pass']} "
             f"({m['found_masked_first_pass'] / n:.1%}) on the first pass, {m['found_masked_with_second_pass']} "
             f"({m['found_masked_with_second_pass'] / n:.1%}) with the second pass the tool runs on a miss.",
             f"- Found both bare and masked: {m['paired_faces']} faces; the figures below are on these.", "",
             "Each landmark's error, by the annotated inter-ocular distance:", ""]
    lines += table(["faces", *POINT_NAMES, "NME"],
                   [[condition, *(f"{m['point_nme'][condition][p]:.3f}" if m["point_nme"][condition][p] is not None
                                  else "-" for p in (*POINT_NAMES, "all"))] for condition in ("bare", "masked")])
    lines += ["", f"Pose from {det}'s landmarks against the pose from the annotated landmarks (`sqpnp5`), mean "
              "absolute difference per axis. This is agreement with a reference, not error against a true angle: "
              "it shows what the mask costs the estimate.", ""]
    lines += table(["landmarks, method", "faces", "yaw", "pitch", "roll", "any axis > 15°"],
                   [[name, e["faces"], f"{e['mae_yaw']:.2f}°", f"{e['mae_pitch']:.2f}°", f"{e['mae_roll']:.2f}°",
                     f"{e['over_15_deg']:.1%}"] for name, e in m["pose_vs_annotated"].items() if e["faces"]])
    return lines
