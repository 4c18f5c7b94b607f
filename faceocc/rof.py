"""The Real World Occluded Faces (ROF) manifests: safe unpickling, record parsing, listing, annotation checks.

ROF (github.com/ekremerakin/RealWorldOccludedFaces) ships no images: `ROF/{neutral,sunglasses,masked}/` hold one
pickle per identity (`brad_pitt.pkl`, `brad_pitt_wearing_sunglasses.pkl`) mapping an index to
`{url, faces: [...]}`. A face is either flat (`box, left_eye, right_eye, nose, mouth_left, mouth_right`) or
MTCNN-style (`box, confidence, keypoints: {left_eye, ...}`); boxes are `[x, y, width, height]` and values may be
numpy scalars. Pickles run code on load, so these are read by an unpickler that resolves only the handful of
numpy names such data needs; anything else is refused before it can run.
"""

from __future__ import annotations

import io
import json
import math
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROF_LABELS = {"neutral": "face", "sunglasses": "sunglasses", "masked": "masked"}
ROF_LANDMARKS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")  # MTCNN's order, as in crops.csv

# (module, name) pairs a pickle of dicts, lists, numbers and numpy scalars/arrays refers to. numpy 1.x wrote
# `numpy.core.*`, numpy 2 writes `numpy._core.*`; both resolve to the installed numpy's objects.
_ALLOWED_GLOBALS = {
    ("numpy._core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("_codecs", "encode"),  # protocol-2 pickles carry numpy's raw bytes as latin-1 text
}


class ForbiddenPickle(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list: it is refused, not executed."""


# A manifest holds a few boxes and landmarks per photo: kilobytes. An array or dtype past this is hostile (a
# pickle can ask numpy for a 1 TiB array in a few bytes) and is refused before numpy allocates it.
MAX_ARRAY_BYTES = 64 * 2**20


def _checked_size(shape: Any, itemsize: int) -> None:
    dims = shape if isinstance(shape, (tuple, list)) else (shape,)
    if not all(isinstance(d, int) and d >= 0 for d in dims):
        raise pickle.UnpicklingError(f"refused array shape {shape!r}")
    if math.prod(dims) * max(1, itemsize) > MAX_ARRAY_BYTES:
        raise pickle.UnpicklingError(f"array of shape {tuple(dims)} x {itemsize} bytes is over the "
                                     f"{MAX_ARRAY_BYTES} byte limit for manifest data")


def _capped(numpy_callable: Any) -> Any:
    """numpy's `_reconstruct` and `dtype` with what they would allocate checked first. Object dtypes are refused:
    they can hold anything, and numpy's own `__setstate__` crashes the process (segmentation fault, measured on
    numpy 2) on an object array whose item list does not match its shape."""
    import numpy as np

    if getattr(numpy_callable, "__name__", "") == "_reconstruct":
        def reconstruct(subtype, shape, dtype_code):
            _checked_size(shape, np.dtype(dtype_code).itemsize if isinstance(dtype_code, (str, bytes)) else 1)
            return numpy_callable(subtype, shape, dtype_code)
        return reconstruct

    def dtype(*args, **kwargs):
        made = np.dtype(*args, **kwargs)
        if made.hasobject:
            raise ForbiddenPickle(f"refused numpy dtype {made} (object arrays can hold anything)")
        _checked_size((), made.itemsize)
        return made
    return dtype


class _NumpyDataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        canonical = module.replace("numpy.core.", "numpy._core.", 1) if module.startswith("numpy.core.") else module
        if (canonical, name) not in _ALLOWED_GLOBALS:
            raise ForbiddenPickle(f"refused to load global {module}.{name} (only numpy data types are allowed)")
        found = super().find_class(canonical, name)
        return _capped(found) if name in ("_reconstruct", "dtype") else found


def safe_unpickle(data: bytes) -> Any:
    """Unpickle plain data (dicts, lists, numbers, strings, numpy scalars and arrays) and nothing else."""
    return _NumpyDataUnpickler(io.BytesIO(data)).load()


@dataclass(frozen=True)
class RofFace:
    box: tuple[float, float, float, float]                 # x1, y1, x2, y2 in source pixels
    landmarks: tuple[tuple[float, float], ...]             # ROF_LANDMARKS order


@dataclass(frozen=True)
class RofRecord:
    index: str
    url: str
    faces: tuple[RofFace, ...]


class RofFormatError(ValueError):
    """A manifest or record does not have the ROF layout; str(err) says where."""


def parse_manifest(data: bytes) -> tuple[list[RofRecord], list[tuple[str, str]]]:
    """Records of one identity pickle, plus (index, reason) for each malformed record skipped."""
    obj = safe_unpickle(data)
    if isinstance(obj, dict):
        items = sorted(obj.items(), key=lambda kv: _sort_key(kv[0]))
    elif isinstance(obj, (list, tuple)):
        items = list(enumerate(obj))
    else:
        raise RofFormatError(f"top level is {type(obj).__name__}, expected a mapping of index -> record")
    records, skipped = [], []
    for index, raw in items:
        try:
            records.append(_record(str(index), raw))
        except (RofFormatError, TypeError, ValueError, KeyError) as err:
            skipped.append((str(index), str(err)))
    return records, skipped


def _sort_key(key: Any) -> tuple:
    return (0, int(key), "") if isinstance(key, int) or (isinstance(key, str) and key.isdigit()) else (1, 0, str(key))


def _record(index: str, raw: Any) -> RofRecord:
    if not isinstance(raw, dict) or not isinstance(raw.get("url"), str) or not raw["url"].strip():
        raise RofFormatError("record has no url")
    faces = raw.get("faces", raw.get("face", []))
    if isinstance(faces, dict):
        faces = [faces]
    return RofRecord(index, raw["url"].strip(), tuple(_face(f) for f in faces))


def _face(raw: Any) -> RofFace:
    if not isinstance(raw, dict) or "box" not in raw:
        raise RofFormatError("face has no box")
    x, y, w, h = (_number(v) for v in list(raw["box"])[:4])
    points = raw.get("keypoints", raw)  # MTCNN-style nests them, the flat layout does not
    landmarks = []
    for name in ROF_LANDMARKS:
        if name not in points:
            raise RofFormatError(f"face has no {name}")
        px, py = (_number(v) for v in list(points[name])[:2])
        landmarks.append((px, py))
    return RofFace((x, y, x + w, y + h), tuple(landmarks))


def _number(value: Any) -> float:
    number = float(value)  # numpy scalars and Python numbers alike
    if not math.isfinite(number):
        raise RofFormatError(f"non-finite coordinate {value!r}")
    return number


def identity_of(manifest_name: str) -> str:
    """'brad_pitt_wearing_sunglasses.pkl' -> 'brad_pitt': the person, whatever they wear."""
    stem = Path(manifest_name).stem
    return re.sub(r"_wearing_(mask|masks|sunglasses|glasses)$", "", stem)


def check_annotation(faces: tuple[RofFace, ...], width: int, height: int, tolerance: float = 0.05) -> str:
    """'' when every face lies within the image (give or take `tolerance` of its size), else why not.

    A mismatch usually means the URL now serves a resized or different picture than the one annotated.
    """
    slack_x, slack_y = tolerance * width, tolerance * height
    for k, face in enumerate(faces):
        x1, y1, x2, y2 = face.box
        points = [(x1, y1), (x2, y2), *face.landmarks]
        if x2 <= x1 or y2 <= y1:
            return f"face {k}: empty box {face.box}"
        if any(not (-slack_x <= px <= width + slack_x and -slack_y <= py <= height + slack_y) for px, py in points):
            return (f"face {k}: box/landmarks reach outside the {width}x{height} image "
                    "(picture changed since annotation?)")
    return ""


def annotation_json(faces: tuple[RofFace, ...]) -> str:
    return json.dumps([{"box": [round(v, 2) for v in f.box],
                        "landmarks": [[round(x, 2), round(y, 2)] for x, y in f.landmarks]} for f in faces],
                      separators=(",", ":"))


@dataclass(frozen=True)
class ManifestRef:
    category: str   # neutral | sunglasses | masked
    path: str       # repository-relative, e.g. ROF/masked/bill_gates_wearing_mask.pkl
    location: str   # local file path or URL


def list_local(checkout: str | Path, categories: tuple[str, ...]) -> list[ManifestRef]:
    """Manifests in a local clone (the folder holding `ROF/`, or `ROF/` itself)."""
    root = Path(checkout)
    if (root / "ROF").is_dir():
        root = root / "ROF"
    if not root.is_dir():
        raise FileNotFoundError(f"scrape.rof.manifests: {checkout} is not a folder holding ROF/")
    refs = []
    for category in categories:
        for path in sorted((root / category).glob("*.pkl")):
            refs.append(ManifestRef(category, f"ROF/{category}/{path.name}", str(path)))
    return refs


def list_tree(tree: dict, categories: tuple[str, ...], raw_prefix: str) -> list[ManifestRef]:
    """Manifests named by a GitHub git-tree listing (`GET /repos/{o}/{r}/git/trees/{ref}?recursive=1`)."""
    entries = tree.get("tree") if isinstance(tree, dict) else None
    if not isinstance(entries, list):
        raise RofFormatError("the repository listing has no `tree` list")
    refs = []
    for entry in entries:
        path = entry.get("path", "") if isinstance(entry, dict) else ""
        parts = path.split("/")
        if len(parts) == 3 and parts[0] == "ROF" and parts[1] in categories and parts[2].endswith(".pkl"):
            refs.append(ManifestRef(parts[1], path, f"{raw_prefix.rstrip('/')}/{path}"))
    return sorted(refs, key=lambda r: (categories.index(r.category), r.path))


def github_repository(url: str) -> tuple[str, str]:
    """('owner', 'name') of https://github.com/owner/name[.git][/...]."""
    match = re.match(r"^https?://[^/]+/([^/]+)/([^/#?]+?)(?:\.git)?(?:[/#?].*)?$", url.strip())
    if not match:
        raise ValueError(f"{url!r} does not look like https://github.com/<owner>/<name>")
    return match.group(1), match.group(2)
