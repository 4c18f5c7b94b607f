"""The crop step: raw images in, face crops plus one outcome per image out.

Every input ends with an outcome: `kept`, `no_face`, `too_small`, `decode_error: <reason>` or (should the
detector itself fail on an image) `detect_error: <reason>`; none silently disappears. Faces are found by the
`FaceFinder` the tool uses (faceocc/finder.py). Detection rates per label are
counted before and after the second pass, so the gain from the second pass on occluded faces is a measured
figure, not a hope.

An image whose source annotated its faces (a PascalVOC box, a ROF record) is cut at those boxes instead of
detected: the annotator saw the masked faces detectors miss. Its landmarks are the source's, or else a template
placed in the box (`landmarks: template` in crops.csv), never a detection pretending to be one.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Literal, Sequence

import numpy as np
from PIL import Image

from faceocc.config import bounded, checked
from faceocc.cropping import CropGeometry, crop_face
from faceocc.devices import DEVICE_NAMES, is_device_name
from faceocc.faces import LANDMARK_NAMES, Face, template_landmarks
from faceocc.finder import FaceFinder, FinderSettings
from faceocc.images import ImageDecodeError, load_rgb
from faceocc.sheets import captioned_grid, contact_sheet, draw_points

log = logging.getLogger(__name__)

OUTCOMES = ("kept", "no_face", "too_small", "decode_error", "detect_error")
OUTCOME_COLUMNS = ("id", "label", "file", "outcome", "width", "height", "faces_detected", "faces_kept",
                   "found_in_pass")
_POINT_COLUMNS = tuple(f"{name}_{axis}" for name in LANDMARK_NAMES for axis in "xy")
CROP_COLUMNS = (("crop_id", "source_id", "label", "file", "x1", "y1", "x2", "y2", "probability",
                 "detection_pass", "landmarks") + _POINT_COLUMNS + tuple(f"crop_{c}" for c in _POINT_COLUMNS))
ANNOTATED = "annotation"  # found_in_pass of an image cut at its source's boxes


@dataclass(frozen=True)
class CropParams:
    finder: FinderSettings = field(default_factory=FinderSettings)
    keep: Literal["largest", "all"] = "largest"  # faces a labelled photo contributes: the one its label describes
    # cuda when present, else cpu (MTCNN only; the ONNX detectors run on the CPU)
    device: str = checked("auto", is_device_name, DEVICE_NAMES)
    geometry: CropGeometry = field(default_factory=CropGeometry)
    # use: a face box the source annotated (PascalVOC, ROF) is cut as given, no detection; ignore: detect all
    annotations: Literal["use", "ignore"] = "use"
    batch_size: int = bounded(8, ge=1)
    threads: int = bounded(2, ge=1)  # torch intra-op threads; results are deterministic for a fixed value


@dataclass(frozen=True)
class SourceImage:
    id: str
    label: str
    path: Path
    origin: str = ""  # where the raw image came from (path or URL), for error messages
    annotated: tuple[Face, ...] | None = None  # the source's own face boxes: cut these, detect nothing


def annotated_faces(annotation: str) -> tuple[Face, ...] | None:
    """The faces of a raw manifest's `annotation` JSON ([{"box": [x1, y1, x2, y2], "landmarks": [[x, y] * 5]?}]),
    score 1 and detection pass 0; None when there is no annotation. Without landmarks: the template's."""
    if not annotation:
        return None
    faces = []
    for entry in json.loads(annotation):
        box = tuple(float(v) for v in entry["box"])
        points = entry.get("landmarks")
        if points and len(points) == len(LANDMARK_NAMES):
            landmarks, landmarks_from = tuple((float(x), float(y)) for x, y in points), "annotation"
        else:
            landmarks, landmarks_from = template_landmarks(box), "template"
        faces.append(Face(box, 1.0, landmarks, detection_pass=0, landmarks_from=landmarks_from))
    return tuple(faces) or None


def source_images(raw_rows: list[dict], raw_dir: Path, use_annotations: bool) -> list[SourceImage]:
    """The scrape stage's stored items (manifest rows of outcome ok), with the face boxes their source annotated
    when `use_annotations`."""
    return [SourceImage(r["id"], r["label"], raw_dir / r["file"], r["origin"],
                        annotated_faces(r.get("annotation", "")) if use_annotations else None)
            for r in raw_rows if r["outcome"] == "ok"]


@dataclass
class CropResult:
    outcomes: list[dict]
    crops: list[dict]
    seconds_detecting: float  # detector calls only, both passes


def run_crop(
    images: Sequence[SourceImage],
    out_dir: Path,
    finder: FaceFinder,
    keep: str,
    geometry: CropGeometry,
    batch_size: int,
    progress=None,
) -> CropResult:
    """Find, keep (`largest` or `all`) and crop faces from `images`; crops go to out_dir/<label>/<crop_id>.png."""
    outcomes, crops = [], []
    seconds_before = finder.seconds
    # Decode a chunk, find its faces in equal-shape batches, then crop: memory stays bounded on big folders.
    for chunk in _chunks(images, max(batch_size * 4, 16)):
        decoded, failed = _decode(chunk)
        outcomes.extend(failed)
        to_detect = [(item, image) for item, image in decoded if item.annotated is None]
        found = dict(zip((item.id for item, _ in to_detect),
                         finder.find_batch([image for _, image in to_detect], batch_size)))
        for item, image in decoded:
            if item.annotated is not None:
                # the source's boxes stand in for detections; the size rule still applies
                result, found_in_pass = finder.select(item.annotated, 0), ANNOTATED
            else:
                result = found[item.id]
                found_in_pass = result.detection_pass or ""
            if result.outcome.startswith("detect_error"):
                outcomes.append(_failed_row(item, result.outcome))
                continue
            faces = keep_faces(result.faces, keep)
            outcomes.append({
                "id": item.id, "label": item.label, "file": str(item.path),
                "outcome": "kept" if result.outcome == "ok" else result.outcome,
                "width": image.shape[1], "height": image.shape[0],
                "faces_detected": result.candidates, "faces_kept": len(faces), "found_in_pass": found_in_pass,
            })
            for k, face in enumerate(faces):
                crops.append(_save_crop(image, face, item, k, out_dir, geometry))
        if progress is not None:
            progress.update(len(chunk))
            counts = Counter(r["outcome"].split(":")[0] for r in outcomes)
            progress.set_postfix(kept=counts["kept"], no_face=counts["no_face"],
                                 errors=counts["decode_error"] + counts["detect_error"])
    order = {item.id: i for i, item in enumerate(images)}
    outcomes.sort(key=lambda r: order[r["id"]])
    return CropResult(outcomes, crops, finder.seconds - seconds_before)


def keep_faces(faces: Sequence[Face], keep: str) -> tuple[Face, ...]:
    """The faces a labelled photo contributes: its largest (the one its label describes) or all of them."""
    if keep == "largest" and faces:
        return (max(faces, key=lambda f: f.width * f.height),)
    return tuple(faces)


def _chunks(items: Sequence, size: int) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _decode(chunk: Sequence[SourceImage]) -> tuple[list[tuple[SourceImage, np.ndarray]], list[dict]]:
    decoded, failed = [], []
    for item in chunk:
        try:
            decoded.append((item, load_rgb(item.path)))
        except ImageDecodeError as err:
            failed.append(_failed_row(item, f"decode_error: {err}"))
    return decoded, failed


def _failed_row(item: SourceImage, outcome: str) -> dict:
    """The outcome row of an image that gave no result, after one log line naming the file and why."""
    log.warning("%s (%s): %s", item.path, item.origin, outcome)
    return {"id": item.id, "label": item.label, "file": str(item.path), "outcome": outcome, "width": "",
            "height": "", "faces_detected": "", "faces_kept": 0, "found_in_pass": ""}


def _save_crop(image, face, item: SourceImage, k: int, out_dir: Path, geometry: CropGeometry) -> dict:
    crop, points = crop_face(image, face, geometry)
    crop_id = f"{item.id}_{k}"
    rel = Path(item.label) / f"{crop_id}.png"
    (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(crop).save(out_dir / rel, optimize=False)
    row = {"crop_id": crop_id, "source_id": item.id, "label": item.label, "file": rel.as_posix(),
           "x1": face.box[0], "y1": face.box[1], "x2": face.box[2], "y2": face.box[3],
           "probability": face.score, "detection_pass": face.detection_pass,
           "landmarks": face.landmarks_from}
    for name, (x, y), (cx, cy) in zip(LANDMARK_NAMES, face.landmarks, points):
        row.update({f"{name}_x": x, f"{name}_y": y, f"crop_{name}_x": cx, f"crop_{name}_y": cy})
    return row


def crop_sample_sheet(faces_dir: Path, crops: Sequence[dict], per_label: int = 8) -> np.ndarray:
    """A contact sheet of the first crops of each label, landmarks drawn, for a glance at what was cut."""
    rows = []
    for label in sorted({c["label"] for c in crops}):
        of_label = [c for c in crops if c["label"] == label]
        tiles = []
        for c in of_label[:per_label]:
            image = np.asarray(Image.open(faces_dir / c["file"]).convert("RGB"))
            points = [(float(c[f"crop_{n}_x"]), float(c[f"crop_{n}_y"])) for n in LANDMARK_NAMES]
            tiles.append(draw_points(image, points))
        rows.append((f"{label}: {len(of_label)} crops", tiles))
    return contact_sheet(rows)


def missed_sheet(outcomes: Sequence[dict], limit: int = 40) -> np.ndarray:
    """The photos that gave no crop although they decoded (no face found, or only faces under the size floor),
    each captioned with its label and outcome: what the finder misses, for a reviewer to look at."""
    missed = [r for r in outcomes if r["outcome"] in ("no_face", "too_small")]
    tiles = []
    for row in missed[:limit]:
        try:
            tiles.append((f"{row['label'][:9]} {row['outcome']}", load_rgb(row["file"])))
        except (ImageDecodeError, OSError):
            continue
    shown = f", the first {limit} shown" if len(missed) > limit else ""
    return captioned_grid(tiles, f"photos without a crop: {len(missed)} of {len(outcomes)}{shown}")


def detection_summary(outcomes: Sequence[dict]) -> dict:
    """Per label and overall: outcome counts and, of the decodable images left to the detector, the share with a
    face found by the first pass and after the second (a too-small face counts as found: it was detected)."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in outcomes:
        groups[row["label"]].append(row)
        groups["all"].append(row)
    summary = {}
    for label, rows in sorted(groups.items()):
        annotated = sum(r["found_in_pass"] == ANNOTATED for r in rows)
        decoded = [r for r in rows if not r["outcome"].startswith("decode_error") and r["found_in_pass"] != ANNOTATED]
        first = sum(r["found_in_pass"] == 1 for r in decoded)
        second = sum(r["found_in_pass"] == 2 for r in decoded)
        counts = Counter(r["outcome"].split(":")[0] for r in rows)
        summary[label] = {
            "images": len(rows),
            "outcomes": {k: counts.get(k, 0) for k in OUTCOMES},
            "faces_kept": sum(int(r["faces_kept"]) for r in rows),
            "annotated_images": annotated,  # cut at the source's boxes; the rates below are of detected ones
            "detection_rate_first_pass": round(first / len(decoded), 4) if decoded else 0.0,
            "detection_rate_after_second_pass": round((first + second) / len(decoded), 4) if decoded else 0.0,
        }
    return summary
