"""Render face masks and sunglasses onto photos, placed from MTCNN's 5 landmarks.

Used to build the demo data set and, later, to synthesise the rare classes (mask+sunglasses has almost no real
data). Geometry is expressed in a face frame: origin between the eyes, x along the eye line, y towards the
mouth, unit = eye distance; so an occluder follows the face's position, scale, roll and (via the nose) yaw.
Styles are plain frozen values, drawn from a seeded generator, so a rendering is reproducible from its style.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, Sequence

import cv2
import numpy as np

Landmarks = Sequence[Sequence[float]]  # 5 (x, y): left eye, right eye, nose, mouth left, mouth right
OCCLUSIONS = ("masked", "sunglasses", "mask_sunglasses")
# what a synthetic recipe may draw: a mask worn properly, sunglasses, or a mask worn low (mask-wearing's incorrect)
RENDERS = ("masked", "sunglasses", "mask_low")

_SUBPIXEL_BITS = 4  # cv2 polygon coordinates in 1/16 px, anti-aliased edges


@dataclass(frozen=True)
class MaskStyle:
    shape: Literal["surgical", "cloth", "n95"] = "surgical"
    color: tuple[int, int, int] = (120, 170, 210)
    top: float = 0.45  # top edge (nose bridge) as a fraction of the eye-to-mouth distance
    bottom: float = 1.85  # lower edge (under the chin), same unit
    width: float = 1.0  # half width at the cheeks, in eye distances
    angle_deg: float = 0.0  # extra roll on top of the face's own
    pleats: bool = True
    shade: float = 0.35  # strength of the cylindrical fall-off towards the sides
    opacity: float = 0.98


@dataclass(frozen=True)
class GlassesStyle:
    shape: Literal["round", "aviator", "wayfarer"] = "wayfarer"
    lens_color: tuple[int, int, int] = (25, 25, 30)
    opacity: float = 0.9
    frame_color: tuple[int, int, int] = (15, 15, 15)
    frame_thickness: float = 0.05  # in eye distances
    size: float = 1.0  # lens scale
    angle_deg: float = 0.0
    gradient: float = 0.3  # lens darker at the top by this fraction
    highlight: float = 0.25  # alpha of the specular reflection


MASK_COLORS = ((120, 170, 210), (235, 235, 235), (40, 40, 45), (90, 150, 200), (200, 120, 150), (70, 90, 70),
               (170, 195, 225), (245, 240, 220))
LENS_COLORS = ((20, 20, 25), (45, 30, 20), (20, 40, 30), (20, 30, 60), (60, 60, 65))
FRAME_COLORS = ((10, 10, 10), (150, 120, 60), (80, 50, 30), (170, 170, 175), (120, 20, 20))


def random_mask_style(rng: np.random.Generator) -> MaskStyle:
    shape = str(rng.choice(["surgical", "cloth", "n95"], p=[0.55, 0.3, 0.15]))
    base = np.array(MASK_COLORS[rng.integers(len(MASK_COLORS))], float)
    color = np.clip(base + rng.normal(0, 12, 3), 0, 255)
    return MaskStyle(
        shape=shape,
        color=tuple(int(c) for c in color),
        top=float(rng.uniform(0.35, 0.55)),
        bottom=float(rng.uniform(1.7, 2.0)),
        width=float(rng.uniform(0.9, 1.15)),
        angle_deg=float(rng.normal(0, 3)),
        pleats=shape == "surgical" and bool(rng.random() < 0.85),
        shade=float(rng.uniform(0.2, 0.45)),
        opacity=float(rng.uniform(0.93, 1.0)),
    )


def random_glasses_style(rng: np.random.Generator) -> GlassesStyle:
    return GlassesStyle(
        shape=str(rng.choice(["round", "aviator", "wayfarer"])),
        lens_color=LENS_COLORS[rng.integers(len(LENS_COLORS))],
        opacity=float(rng.uniform(0.8, 0.96)),
        frame_color=FRAME_COLORS[rng.integers(len(FRAME_COLORS))],
        frame_thickness=float(rng.uniform(0.025, 0.07)),
        size=float(rng.uniform(0.9, 1.12)),
        angle_deg=float(rng.normal(0, 2.5)),
        gradient=float(rng.uniform(0.0, 0.45)),
        highlight=float(rng.uniform(0.08, 0.3)),
    )


def occlude(image: np.ndarray, landmarks: Landmarks, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Render the occluders of class `kind` ("masked", "sunglasses", "mask_sunglasses") with random styles."""
    if kind not in OCCLUSIONS:
        raise ValueError(f"unknown occlusion {kind!r}; valid: {list(OCCLUSIONS)}")
    out = image
    if kind in ("masked", "mask_sunglasses"):
        out = render_mask(out, landmarks, random_mask_style(rng))
    if kind in ("sunglasses", "mask_sunglasses"):
        out = render_sunglasses(out, landmarks, random_glasses_style(rng))
    return out


def low_mask_style(landmarks: Landmarks, rng: np.random.Generator) -> MaskStyle:
    """A random mask worn wrongly, in the two ways MaskedFace-Net's incorrect images wear it: pulled below the
    nose (nostrils free, mouth and chin covered; 70 %), or down on the chin (nose and mouth free).

    The top edge is placed from this face's own nose landmark, so the nose stays visible whatever the face's
    proportions; the rest of the style (shape, colour, pleats) is a normal random mask's.
    """
    frame = _FaceFrame(landmarks, 0.0)
    nose = frame.nose_y / frame.mouth_y  # nose tip, as a fraction of the eye-to-mouth distance
    style = random_mask_style(rng)
    if rng.random() < 0.7:
        top = nose + float(rng.uniform(0.12, 0.25))   # the outline peaks up to 0.1 above it (cloth): under the nose
    else:
        top = float(rng.uniform(1.12, 1.25))          # under the lower lip
    # pulled down onto the jaw a mask spreads wider than over the nose: cheek to cheek on mask_detection's faces
    return replace(style, top=top, bottom=max(style.bottom, top + 0.7), width=float(rng.uniform(1.05, 1.3)))


def draw(image: np.ndarray, landmarks: Landmarks, render: str, rng: np.random.Generator) -> np.ndarray:
    """Render one of RENDERS with a random style: what the balance stage's synthetic recipes draw."""
    if render not in RENDERS:
        raise ValueError(f"unknown render {render!r}; valid: {list(RENDERS)}")
    if render == "mask_low":
        return render_mask(image, landmarks, low_mask_style(landmarks, rng))
    return occlude(image, landmarks, render, rng)


class _FaceFrame:
    """Maps face-frame points (unit = eye distance) to image pixels."""

    def __init__(self, landmarks: Landmarks, extra_roll_deg: float):
        pts = np.asarray(landmarks, np.float64).reshape(5, 2)
        left_eye, right_eye, nose, mouth_l, mouth_r = pts
        self.origin = (left_eye + right_eye) / 2
        eye_vec = right_eye - left_eye
        self.d = max(float(np.hypot(*eye_vec)), 1.0)
        roll = np.arctan2(eye_vec[1], eye_vec[0]) + np.deg2rad(extra_roll_deg)
        self.u = np.array([np.cos(roll), np.sin(roll)])
        self.v = np.array([-self.u[1], self.u[0]])  # image y grows downwards, so this points to the chin
        mouth = (mouth_l + mouth_r) / 2
        # eye-to-mouth distance and nose offset in face units; a yawed head moves the nose sideways
        self.mouth_y = max(float((mouth - self.origin) @ self.v) / self.d, 0.5)
        self.nose_x = float((nose - self.origin) @ self.u) / self.d
        self.nose_y = float((nose - self.origin) @ self.v) / self.d

    def grid(self, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        """Face-frame (x, y) of every pixel of an h x w image, each an h x w float32 array."""
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        rel = np.stack([xs - self.origin[0], ys - self.origin[1]], -1) / self.d
        return rel @ self.u.astype(np.float32), rel @ self.v.astype(np.float32)

    def to_image(self, points: np.ndarray) -> np.ndarray:
        points = np.asarray(points, np.float64).reshape(-1, 2)
        return self.origin + self.d * (points[:, :1] * self.u + points[:, 1:] * self.v)


def _chaikin(points: np.ndarray, iterations: int) -> np.ndarray:
    """Corner-cutting smoothing of a closed polygon."""
    for _ in range(iterations):
        nxt = np.roll(points, -1, axis=0)
        points = np.stack([0.75 * points + 0.25 * nxt, 0.25 * points + 0.75 * nxt], axis=1).reshape(-1, 2)
    return points


def _fill(shape_hw: tuple[int, int], polygons: Sequence[np.ndarray]) -> np.ndarray:
    canvas = np.zeros(shape_hw, np.uint8)
    scaled = [np.round(p * (1 << _SUBPIXEL_BITS)).astype(np.int32) for p in polygons]
    cv2.fillPoly(canvas, scaled, 255, lineType=cv2.LINE_AA, shift=_SUBPIXEL_BITS)
    return canvas.astype(np.float32) / 255.0


def _polyline(canvas: np.ndarray, points: np.ndarray, thickness: float, closed: bool = False) -> None:
    pts = np.round(points * (1 << _SUBPIXEL_BITS)).astype(np.int32)
    cv2.polylines(canvas, [pts], closed, 1.0, max(1, int(round(thickness))), cv2.LINE_AA, _SUBPIXEL_BITS)


def _soften(alpha: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(alpha, (0, 0), max(sigma, 0.5))


def _local_light(image: np.ndarray, sigma: float) -> np.ndarray:
    """Blurred luminance relative to its mean: occluders pick up the scene's shadows and highlights."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    blurred = cv2.GaussianBlur(grey, (0, 0), max(sigma, 1.0))
    return blurred / max(float(blurred.mean()), 1.0)


def _mask_outline(frame: _FaceFrame, style: MaskStyle) -> np.ndarray:
    m, w = frame.mouth_y, style.width
    cx = 0.6 * frame.nose_x  # follow yaw part of the way: the mask sits on the nose, not the eye midpoint
    top, bottom = style.top * m, style.bottom * m
    mid = (top + bottom) / 2
    if style.shape == "n95":
        control = [(-w * 0.9, top + 0.25 * m), (cx, top - 0.05 * m), (w * 0.9, top + 0.25 * m),
                   (w * 0.95, mid + 0.1 * m), (cx + 0.35, bottom), (cx - 0.35, bottom), (-w * 0.95, mid + 0.1 * m)]
        iterations = 4
    elif style.shape == "cloth":
        control = [(-w, top + 0.15 * m), (cx, top - 0.1 * m), (w, top + 0.15 * m), (w * 1.05, mid),
                   (w * 0.6, bottom - 0.1 * m), (cx, bottom + 0.05 * m), (-w * 0.6, bottom - 0.1 * m),
                   (-w * 1.05, mid)]
        iterations = 4
    else:  # surgical: straighter edges, a slight peak over the nose bridge
        control = [(-w, top + 0.1 * m), (cx - 0.25, top - 0.02 * m), (cx, top - 0.06 * m),
                   (cx + 0.25, top - 0.02 * m), (w, top + 0.1 * m), (w * 1.02, mid),
                   (w * 0.75, bottom - 0.12 * m), (cx, bottom), (-w * 0.75, bottom - 0.12 * m), (-w * 1.02, mid)]
        iterations = 2
    return _chaikin(np.asarray(control, np.float64), iterations)


def render_mask(image: np.ndarray, landmarks: Landmarks, style: MaskStyle) -> np.ndarray:
    """Return a copy of `image` (HxWx3 uint8 RGB) with a face mask over nose, mouth and chin."""
    frame = _FaceFrame(landmarks, style.angle_deg)
    h, w = image.shape[:2]
    outline_face = _mask_outline(frame, style)
    outline = frame.to_image(outline_face)
    coverage = _fill((h, w), [outline])
    if coverage.max() == 0:
        return image.copy()

    # Shading in face coordinates: cylinder-like fall-off to the sides plus fabric texture and pleats.
    fx, fy = frame.grid(h, w)
    side = np.clip(np.abs(fx - 0.6 * frame.nose_x) / max(style.width, 0.1), 0, 1.2)
    shading = 1.0 - style.shade * side**2
    if style.pleats:
        top, bottom = style.top * frame.mouth_y, style.bottom * frame.mouth_y
        for k in (0.3, 0.5, 0.7):
            y0 = top + k * (bottom - top)
            shading -= 0.12 * np.exp(-(((fy - y0) * frame.d / max(frame.d * 0.025, 0.8)) ** 2))
    # fabric grain: deterministic, seeded by geometry so the same style on the same face renders the same
    rng = np.random.default_rng(int(frame.d * 1000) % (2**32))
    grain = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 0.8)
    shading = shading * (1.0 + 0.03 * grain) * (0.7 + 0.3 * _local_light(image, frame.d * 0.5))

    layer = np.asarray(style.color, np.float32)[None, None, :] * shading[..., None]
    alpha = _soften(coverage, frame.d * 0.015) * style.opacity

    # ear loops: thin strings from the mask's sides towards the ears
    loops = np.zeros((h, w), np.float32)
    m = frame.mouth_y
    for sign in (-1, 1):
        for y_mask, y_ear in ((style.top * m + 0.15 * m, -0.05), (style.bottom * m - 0.3 * m, 0.4)):
            pts = frame.to_image(np.array([[sign * style.width, y_mask], [sign * 1.2, y_ear]]))
            _polyline(loops, pts, frame.d * 0.025)
    loops *= 1.0 - coverage
    return _composite(image, [(layer, alpha), (layer * 0.95, loops * 0.8 * style.opacity)])


def _lens_outline(style: GlassesStyle) -> np.ndarray:
    """One lens around (0, 0), for the image's left eye; mirrored for the other."""
    s = style.size
    if style.shape == "round":
        t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        return np.stack([0.4 * s * np.cos(t), 0.36 * s * np.sin(t) + 0.03], -1)
    if style.shape == "aviator":  # teardrop: wide at the top, drooping towards the nose side's bottom
        control = [(-0.48, -0.28), (0.1, -0.3), (0.44, -0.26), (0.4, 0.12), (0.12, 0.42), (-0.28, 0.36),
                   (-0.5, 0.05)]
        return _chaikin(np.asarray(control) * s, 3)
    control = [(-0.5, -0.3), (0.47, -0.3), (0.4, 0.25), (0.15, 0.33), (-0.35, 0.3), (-0.5, 0.05)]
    return _chaikin(np.asarray(control) * s, 2)


def render_sunglasses(image: np.ndarray, landmarks: Landmarks, style: GlassesStyle) -> np.ndarray:
    """Return a copy of `image` (HxWx3 uint8 RGB) with tinted sunglasses over both eyes."""
    frame = _FaceFrame(landmarks, style.angle_deg)
    h, w = image.shape[:2]
    lens = _lens_outline(style)
    # Lens centres at the eyes (face x = -0.5 and +0.5); the right lens mirrors the left across the bridge.
    left = lens + (-0.5, 0.0)
    right = lens * (-1, 1) + (0.5, 0.0)
    lenses_face = [left, right]
    lenses = [frame.to_image(p) for p in lenses_face]
    coverage = _fill((h, w), lenses)
    if coverage.max() == 0:
        return image.copy()

    _, fy = frame.grid(h, w)
    top_dark = 1.0 - style.gradient * np.clip(0.5 - (fy + 0.3) / 0.7, 0, 1)
    tint = np.asarray(style.lens_color, np.float32)[None, None, :] * top_dark[..., None]
    # tinted glass still lets a little of the eye region through: mix instead of replace
    lens_alpha = _soften(coverage, frame.d * 0.01) * style.opacity

    glare = np.zeros((h, w), np.float32)
    for pts in lenses_face:
        centre = pts.mean(axis=0) + (-0.12 * style.size, -0.12 * style.size)
        axes = np.array([0.14, 0.06]) * style.size
        t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        ellipse = centre + np.stack([axes[0] * np.cos(t), axes[1] * np.sin(t)], -1)
        glare = np.maximum(glare, _fill((h, w), [frame.to_image(ellipse)]))
    glare = _soften(glare, frame.d * 0.04) * coverage * style.highlight

    frame_lines = np.zeros((h, w), np.float32)
    thickness = max(frame.d * style.frame_thickness, 1.0)
    for pts in lenses:
        _polyline(frame_lines, pts, thickness, closed=True)
    inner = 0.5 - 0.45 * style.size  # inner lens edge, face x
    bridge = frame.to_image(np.array([[-inner, -0.12], [0.0, -0.17], [inner, -0.12]]))
    _polyline(frame_lines, bridge, thickness)
    for sign in (-1, 1):  # temples run from the outer lens edge towards the ears
        temple = frame.to_image(np.array([[sign * (0.5 + 0.48 * style.size), -0.2], [sign * 1.2, -0.12]]))
        _polyline(frame_lines, temple, thickness)
    frame_alpha = _soften(np.clip(frame_lines, 0, 1), 0.5)
    light = 0.8 + 0.2 * _local_light(image, frame.d)
    frame_layer = np.asarray(style.frame_color, np.float32)[None, None, :] * light[..., None]
    white = np.full((1, 1, 3), 255.0, np.float32)
    return _composite(image, [(tint, lens_alpha), (white, glare), (frame_layer, frame_alpha)])


def _composite(image: np.ndarray, layers) -> np.ndarray:
    out = image.astype(np.float32)
    for colour, alpha in layers:
        a = np.clip(alpha, 0, 1)[..., None]
        out = out * (1 - a) + np.broadcast_to(colour, out.shape) * a
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
