"""Move a real occluder from one face crop onto another: the sunglasses of a real sunglasses face onto a masked
face, or the mask of a real masked face onto a sunglasses face, aligned by the two faces' 5 landmarks (OpenCV's
`estimateAffinePartial2D` and `warpAffine`) and laid on with a soft edge.

Why: the renderer (faceocc/occlusion.py) draws occluders of its own making; a model trained on them can learn
to recognise the drawing rather than sunglasses or a mask. Every pixel of the moved region here comes from a real
photo: the lenses' reflections, the mask's folds and the light on them.

OpenCV's Poisson blending (`seamlessClone`) was tried first and dropped: a region's edge that cuts an occluder (a
mask always reaches past it, to the ears) makes the solver lighten the occluder towards the target's skin, and
moved masks came out translucent.
"""

from __future__ import annotations

import cv2
import numpy as np

# what can be moved, and the landmarks that place it: the eyes (0, 1) fix sunglasses exactly; a mask follows the
# nose and mouth too (a least-squares fit of all five)
TRANSPLANTS = {"sunglasses": (0, 1), "masked": (0, 1, 2, 3, 4)}
_GAIN_RANGE = (0.6, 1.7)  # how far the light on the two faces may differ before the gain is capped
_FEATHER = 0.06  # the edge's softness (a Gaussian's sigma), in eye distances


def region(landmarks: np.ndarray, render: str, shape_hw: tuple[int, int]) -> np.ndarray:
    """uint8 mask (255 inside) of where `render` sits on a face with these landmarks: both lenses and the bridge
    for sunglasses; nose bridge to under the chin, cheek to cheek, for a mask."""
    points = np.asarray(landmarks, float)
    eyes_mid = (points[0] + points[1]) / 2
    across = points[1] - points[0]
    eye_distance = float(np.linalg.norm(across))
    if eye_distance < 1e-6:
        raise ValueError("the two eye landmarks coincide")
    x_axis = across / eye_distance
    y_axis = np.array([-x_axis[1], x_axis[0]])
    mouth_mid = (points[3] + points[4]) / 2
    eye_to_mouth = max(float(np.dot(mouth_mid - eyes_mid, y_axis)), 0.5 * eye_distance)

    def to_image(frame_points) -> np.ndarray:
        """face frame (origin between the eyes, x along them, y towards the mouth, unit = eye distance) to pixels"""
        frame_points = np.asarray(frame_points, float) * eye_distance
        return eyes_mid + frame_points[:, :1] * x_axis + frame_points[:, 1:] * y_axis

    def fill(frame_points) -> None:
        cv2.fillPoly(mask, [np.round(to_image(frame_points)).astype(np.int32)], 255)

    mask = np.zeros(shape_hw, np.uint8)
    if render == "sunglasses":
        # a lens reaches about half an eye distance either side of its pupil and further down than up (aviators
        # reach the cheeks); the region is larger still, so that its rim runs over skin, which sets the gain
        angles = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        lens = np.c_[0.62 * np.cos(angles), np.where(np.sin(angles) < 0, 0.48, 0.6) * np.sin(angles)]
        fill(lens + [-0.5, 0.0])
        fill(lens + [0.5, 0.0])
    elif render == "masked":
        # the renderer's default mask: top at 0.45 and bottom at 1.85 of the eye-to-mouth distance
        top, middle, bottom = (f * eye_to_mouth / eye_distance for f in (0.45, 1.1, 1.85))
        fill([[-1.05, top], [1.05, top], [1.1, middle], [0.65, bottom], [-0.65, bottom], [-1.1, middle]])
    else:
        raise ValueError(f"cannot transplant {render!r}; valid: {list(TRANSPLANTS)}")
    return mask


def aligned_donor(donor: np.ndarray, donor_landmarks: np.ndarray, target_landmarks: np.ndarray, render: str,
                  shape_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The donor crop moved into the target's frame (a similarity: shift, turn, scale, fitted to the landmarks
    TRANSPLANTS names), with a uint8 mask of the pixels it covers."""
    used = list(TRANSPLANTS[render])
    source = np.asarray(donor_landmarks, np.float32)[used]
    target = np.asarray(target_landmarks, np.float32)[used]
    # LMEDS: OpenCV's robust fit with its own fixed seed, so the same faces always give the same transform
    matrix, _ = cv2.estimateAffinePartial2D(source, target, method=cv2.LMEDS)
    if matrix is None:
        raise ValueError("no similarity maps the donor's landmarks onto the target's")
    h, w = shape_hw
    moved = cv2.warpAffine(donor, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    covered = cv2.warpAffine(np.full(donor.shape[:2], 255, np.uint8), matrix, (w, h), flags=cv2.INTER_NEAREST,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return moved, covered


def transplant(target: np.ndarray, target_landmarks: np.ndarray, donor: np.ndarray, donor_landmarks: np.ndarray,
               render: str) -> np.ndarray:
    """`target` (RGB uint8) wearing the `render` ("sunglasses" or "masked") of `donor`: the donor's pixels in the
    region `region` gives at the target's landmarks (where the donor covers it), with a soft edge. Sunglasses are
    first lit as the target is (a gain per channel matching the region's rim, skin on both faces); a mask keeps its
    own colours, since the rim runs over the mask itself. The target comes back unchanged when the donor covers
    none of the region."""
    h, w = target.shape[:2]
    moved, covered = aligned_donor(donor, donor_landmarks, target_landmarks, render, (h, w))
    inside = cv2.bitwise_and(region(target_landmarks, render, (h, w)), covered)
    if cv2.countNonZero(inside) == 0:
        return target.copy()
    eye_distance = float(np.linalg.norm(np.subtract(target_landmarks[1], target_landmarks[0])))
    moved = moved.astype(np.float32)
    if render == "sunglasses":
        width = max(int(round(0.1 * eye_distance)), 1)
        rim = (inside > 0) & (cv2.erode(inside, np.ones((2 * width + 1, 2 * width + 1), np.uint8)) == 0)
        gain = (target[rim].astype(np.float32).mean(0) + 1) / (moved[rim].mean(0) + 1)
        moved *= np.clip(gain, *_GAIN_RANGE)
    alpha = cv2.GaussianBlur(inside.astype(np.float32) / 255, (0, 0), max(_FEATHER * eye_distance, 0.5))[..., None]
    return np.clip(alpha * moved + (1 - alpha) * target, 0, 255).round().astype(np.uint8)
