"""Pictures of predictions: each face boxed in its class's colour, labelled with class and probability."""

from __future__ import annotations

import zlib

import cv2
import numpy as np

from faceocc.tasks import TASKS

# RGB, each task's own (mask wearing as its source drew it: green correct, red none, blue wrong); a cycle for
# the classes of a model no task names
CLASS_COLOURS = {c: colour for task in TASKS.values() for c, colour in task.colours.items()}
_CYCLE = [(230, 60, 60), (60, 200, 200), (160, 160, 40), (120, 80, 200)]


def colour_of(label: str, classes: tuple[str, ...] = ()) -> tuple[int, int, int]:
    if label in CLASS_COLOURS:
        return CLASS_COLOURS[label]
    index = classes.index(label) if label in classes else zlib.crc32(label.encode())  # stable across runs
    return _CYCLE[index % len(_CYCLE)]


def draw_predictions(image: np.ndarray, records: list[dict], classes: tuple[str, ...] = ()) -> np.ndarray:
    """A copy of the RGB image with every record that has a box drawn on it."""
    out = image.copy()
    thickness = max(2, round(max(image.shape[:2]) / 400))
    scale = max(0.5, max(image.shape[:2]) / 1200)
    for r in records:
        if r.get("label") is None or r.get("box") is None:
            continue
        x1, y1, x2, y2 = (int(round(v)) for v in r["box"])
        colour = colour_of(r["label"], classes)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thickness)
        text = f"{r['label']} {r['scores'][r['label']]:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        top = max(0, y1 - th - base - 4)
        cv2.rectangle(out, (x1, top), (x1 + tw + 4, top + th + base + 4), colour, -1)
        cv2.putText(out, text, (x1 + 2, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1,
                    cv2.LINE_AA)
        for x, y in r.get("landmarks") or []:
            cv2.circle(out, (int(round(x)), int(round(y))), thickness, colour, -1)
        if r.get("pose"):
            _draw_pose(out, r, thickness, scale, (x1, y2))
    return out


AXIS_COLOURS = {"x": (230, 40, 40), "y": (40, 200, 40), "z": (40, 90, 240)}  # RGB: red, green, blue


def _draw_pose(out: np.ndarray, record: dict, thickness: int, scale: float, corner: tuple[int, int]) -> None:
    """The head's axes from the nose tip (as faceocc.pose.add_pose placed them), the angles under the box (with a
    "~" when a mask hid the points they come from), ATTENTION in red when the head is turned."""
    p = record["pose"]
    for name, (a, b) in (p.get("axes") or {}).items():
        cv2.arrowedLine(out, tuple(a), tuple(b), AXIS_COLOURS[name], thickness, cv2.LINE_AA, tipLength=0.2)
    about = "~" if p.get("masked_face") else ""
    text = (f"yaw {about}{p['yaw']:.0f} pitch {about}{p['pitch']:.0f} roll {about}{p['roll']:.0f}"
            + (" ATTENTION" if p["attention"] else ""))
    (_, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.putText(out, text, (corner[0], min(out.shape[0] - 2, corner[1] + th + 6)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (230, 30, 30) if p["attention"] else (255, 255, 255), 1, cv2.LINE_AA)
