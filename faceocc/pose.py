"""Head pose (yaw, pitch, roll in degrees) from MTCNN's five landmarks with OpenCV's solvePnP.

The 2D points are matched to a generic 3D face and a pinhole camera approximated from the image (focal length =
image width, centre = image centre) unless one is given. Two methods:

- `chin6` (the second source document's): OpenCV's iterative solver on six points, the sixth a chin. A chin
  point comes from a landmark model on bare faces; masked faces hide it, so `synthesise_chin` places it below the
  mouth along the eye-to-mouth direction, the 3D model's ratio farther on. A synthesised chin is a function of
  the other points, so it adds no information, only the bias of that 2D rule (a few pixels, depth ignored).
- `chin6_frontal`: the same six points, the solver started from a frontal face at the distance the eye spacing
  implies. Without a start OpenCV begins from a linear (DLT) estimate, which on noisy points often lands on a
  solution rolled by about 180 degrees and never leaves it (reports/pose.md).
- `sqpnp5`: the five landmarks alone, SQPnP's global minimum (no initial guess, no local minimum to fall into)
  polished with Levenberg-Marquardt (`solvePnPRefineLM`).

The default is chosen by measurement on synthetic ground truth (stages/pose_benchmark.py, reports/pose.md).

Conventions: camera coordinates as OpenCV's (x right, y down, z away from the camera); the 3D model is
expressed so that the identity rotation is a face looking straight into the camera. yaw > 0: the face turns
towards the image's left (the subject's right); pitch > 0: the face looks down; roll > 0: the head tilts
clockwise in the image. R = Rz(roll) @ Ry(yaw) @ Rx(pitch).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Generic face, millimetres, origin at the nose tip, in LANDMARK_NAMES order then the chin. Eye centres 63 mm
# apart (mean adult inter-pupillary distance), mouth corners 50 mm, depths behind the nose tip as in the
# widely used 6-point model of learnopencv's head-pose tutorial, scaled to millimetres.
FACE_MODEL_MM = np.array([
    [-31.5, -34.0, 27.0],   # left eye (image left on a frontal face)
    [31.5, -34.0, 27.0],    # right eye
    [0.0, 0.0, 0.0],        # nose tip
    [-25.0, 30.0, 25.0],    # mouth left
    [25.0, 30.0, 25.0],     # mouth right
    [0.0, 66.0, 13.0],      # chin
], np.float64)
CHIN = 5
METHODS = ("sqpnp5", "chin6", "chin6_frontal")
DEFAULT_METHOD = "sqpnp5"  # reports/pose.md: the lowest error without a detected chin, which masks hide


@dataclass(frozen=True)
class Pose:
    yaw: float
    pitch: float
    roll: float
    rvec: tuple[float, float, float]
    tvec: tuple[float, float, float]
    reprojection_px: float  # RMS over the points used

    def angles(self) -> dict:
        return {"yaw": round(self.yaw, 1), "pitch": round(self.pitch, 1), "roll": round(self.roll, 1)}


def camera_matrix(width: int, height: int, focal: float | None = None) -> np.ndarray:
    """The approximated camera: focal length = image width unless given, principal point at the centre."""
    f = float(focal or width)
    return np.array([[f, 0, width / 2.0], [0, f, height / 2.0], [0, 0, 1]], np.float64)


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    y, p, r = np.radians([yaw, pitch, roll])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    return rz @ ry @ rx


def euler(matrix: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of R = Rz(roll) @ Ry(yaw) @ Rx(pitch)."""
    yaw = np.degrees(np.arcsin(np.clip(-matrix[2, 0], -1.0, 1.0)))
    pitch = np.degrees(np.arctan2(matrix[2, 1], matrix[2, 2]))
    roll = np.degrees(np.arctan2(matrix[1, 0], matrix[0, 0]))
    return float(yaw), float(pitch), float(roll)


def synthesise_chin(points: np.ndarray) -> np.ndarray:
    """A chin below the mouth for a masked face: from the eye midpoint through the mouth midpoint, on by the 3D
    model's chin-to-mouth / mouth-to-eye ratio."""
    eyes, mouth = points[:2].mean(axis=0), points[3:5].mean(axis=0)
    model_eyes, model_mouth = FACE_MODEL_MM[:2].mean(axis=0), FACE_MODEL_MM[3:5].mean(axis=0)
    ratio = (FACE_MODEL_MM[CHIN, 1] - model_mouth[1]) / (model_mouth[1] - model_eyes[1])
    return mouth + ratio * (mouth - eyes)


def frontal_translation(points: np.ndarray, camera: np.ndarray) -> np.ndarray:
    """Where a frontal generic face with these eyes would sit: depth from the eye spacing, x/y from the centre."""
    f, cx, cy = camera[0, 0], camera[0, 2], camera[1, 2]
    spacing = max(float(np.linalg.norm(points[1] - points[0])), 1.0)
    z = f * float(np.linalg.norm(FACE_MODEL_MM[1] - FACE_MODEL_MM[0])) / spacing
    centre = points[:5].mean(axis=0) - FACE_MODEL_MM[:5, :2].mean(axis=0) * f / z
    return np.array([(centre[0] - cx) * z / f, (centre[1] - cy) * z / f, z])


def estimate(landmarks, image_size: tuple[int, int], method: str = DEFAULT_METHOD, chin=None,
             focal: float | None = None) -> Pose | None:
    """Pose from five (x, y) landmarks in image pixels; `image_size` is (width, height). For `chin6`, `chin` is a
    detected chin point, synthesised when None. None when the solver fails."""
    if method not in METHODS:
        raise ValueError(f"unknown pose method {method!r}; choose from {METHODS}")
    points = np.asarray(landmarks, np.float64).reshape(5, 2)
    try:
        return _solve(points, camera_matrix(*image_size, focal), method, chin)
    except cv2.error:  # degenerate points (all in one place, collinear): no pose rather than a crash
        return None


def _solve(points: np.ndarray, camera: np.ndarray, method: str, chin) -> Pose | None:
    no_distortion = np.zeros(4)
    if method == "sqpnp5":
        model, image = FACE_MODEL_MM[:5], points
        ok, rvec, tvec = cv2.solvePnP(model, image, camera, no_distortion, flags=cv2.SOLVEPNP_SQPNP)
        if ok:
            rvec, tvec = cv2.solvePnPRefineLM(model, image, camera, no_distortion, rvec, tvec)
    elif method in ("chin6", "chin6_frontal"):
        chin_point = synthesise_chin(points) if chin is None else np.asarray(chin, np.float64).reshape(2)
        model, image = FACE_MODEL_MM, np.vstack([points, chin_point])
        if method == "chin6":
            ok, rvec, tvec = cv2.solvePnP(model, image, camera, no_distortion, flags=cv2.SOLVEPNP_ITERATIVE)
        else:
            rvec, tvec = np.zeros((3, 1)), frontal_translation(points, camera).reshape(3, 1)
            ok, rvec, tvec = cv2.solvePnP(model, image, camera, no_distortion, rvec, tvec, True,
                                          cv2.SOLVEPNP_ITERATIVE)
    if not ok or not np.all(np.isfinite(rvec)):
        return None
    projected, _ = cv2.projectPoints(model, rvec, tvec, camera, no_distortion)
    error = float(np.sqrt(np.mean(np.sum((projected.reshape(-1, 2) - image) ** 2, axis=1))))
    yaw, pitch, roll = euler(cv2.Rodrigues(rvec)[0])
    return Pose(yaw, pitch, roll, tuple(float(v) for v in rvec.ravel()), tuple(float(v) for v in tvec.ravel()),
                error)


def project_face(yaw: float, pitch: float, roll: float, distance_mm: float, camera: np.ndarray,
                 model: np.ndarray = FACE_MODEL_MM, offset_mm: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """The 6 model points of a face at a known pose, in image pixels (synthetic ground truth)."""
    rvec = cv2.Rodrigues(rotation(yaw, pitch, roll))[0]
    tvec = np.array([offset_mm[0], offset_mm[1], distance_mm], np.float64)
    projected, _ = cv2.projectPoints(model, rvec, tvec, camera, np.zeros(4))
    return projected.reshape(-1, 2)


def axis_lines(pose: Pose, image_size: tuple[int, int], length_mm: float = 50.0,
               focal: float | None = None) -> dict[str, tuple[tuple[int, int], tuple[int, int]]]:
    """Image segments of the head's x (red), y (green) and z (blue, out of the face) axes from the nose tip."""
    camera = camera_matrix(*image_size, focal)
    ends = np.array([[0, 0, 0], [length_mm, 0, 0], [0, -length_mm, 0], [0, 0, -length_mm]], np.float64)
    projected, _ = cv2.projectPoints(ends, np.array(pose.rvec), np.array(pose.tvec), camera, np.zeros(4))
    p = [tuple(int(round(v)) for v in xy) for xy in projected.reshape(-1, 2)]
    return {"x": (p[0], p[1]), "y": (p[0], p[2]), "z": (p[0], p[3])}


def attention(angles: dict, max_yaw: float, max_pitch: float) -> bool:
    """True when the head is turned beyond the limits (the source's "not looking" flag)."""
    return abs(angles["yaw"]) > max_yaw or abs(angles["pitch"]) > max_pitch


def add_pose(records: list[dict], image_size: tuple[int, int], max_yaw: float, max_pitch: float,
             method: str = DEFAULT_METHOD, masked_labels: tuple[str, ...] = ()) -> list[dict]:
    """Records (faceocc predict / video) with `pose`: {yaw, pitch, roll, attention, masked_face, axes} for every
    face with landmarks (axes: the head's x / y / z axes as image segments from the nose tip, half the face's width
    long, for drawing; masked_face: the face's label is one of `masked_labels`, so three of the five points were
    guessed under a mask and the angles are coarse); `pose: null` where the solver found none. Records without
    landmarks (crops) are left as they are."""
    out = []
    for r in records:
        if r.get("landmarks") is None:
            out.append(r)
            continue
        estimate_ = estimate(r["landmarks"], image_size, method)
        if estimate_ is None:
            out.append({**r, "pose": None})
            continue
        angles = estimate_.angles()
        # half the face's width in the model's millimetres at the estimated distance
        length = 0.5 * (r["box"][2] - r["box"][0]) * estimate_.tvec[2] / camera_matrix(*image_size)[0, 0]
        axes = {name: [list(a), list(b)] for name, (a, b) in axis_lines(estimate_, image_size, length).items()}
        out.append({**r, "pose": {**angles, "attention": attention(angles, max_yaw, max_pitch),
                                  "masked_face": r.get("label") in masked_labels, "axes": axes}})
    return out
