"""Decoding untrusted image files into RGB uint8 arrays, or a one-line reason why not.

Every odd input a scraped data set holds ends here: empty, truncated or non-image files, decompression bombs,
CMYK, 16-bit, palette and alpha images, and EXIF-rotated phone photos.
"""

from __future__ import annotations

import io
import os
import stat
import warnings

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from faceocc.inputs import not_regular

# Formats a face photo plausibly comes in. Restricting Image.open keeps Pillow's rarer (and historically
# riskier) decoders such as EPS, PSD or FLI away from downloaded bytes.
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")  # JPEG also opens multi-picture (MPO) phone photos
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
FORMAT_SUFFIX = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp", "GIF": ".gif", "TIFF": ".tif"}
# 40 megapixels: above any photo a face pipeline needs, far below what a bomb expands to.
DEFAULT_MAX_PIXELS = 40_000_000
# A 40-megapixel picture is under 50 MB in any allowed format but an uncompressed BMP/TIFF (120 MB); a file
# past this is refused before it is read, so a huge (or sparse) file never has to fit in memory.
DEFAULT_MAX_BYTES = 200_000_000

# Pillow's default; set explicitly because a library imported later could flip it, and a truncated file
# must be an error here, not a silently grey-padded image.
ImageFile.LOAD_TRUNCATED_IMAGES = False


_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


def sniff_format(data: bytes) -> str | None:
    """The image format the leading magic bytes announce, or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return next((fmt for magic, fmt in _MAGIC if data.startswith(magic)), None)


def sniff_other(data: bytes) -> str | None:
    """What a file that is not an allowed image is, where its first bytes say: a video or a vector drawing."""
    head = data[:1024]
    if head[4:8] == b"ftyp":
        return "a video (MP4/MOV)"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "a video (AVI)"
    if head[:4] == b"\x1aE\xdf\xa3":
        return "a video (Matroska/WebM)"
    if head[:3] == b"FLV":
        return "a video (FLV)"
    if b"<svg" in head.lower():
        return "an SVG drawing (vector pictures are not rasterised)"
    return None


class ImageDecodeError(ValueError):
    """The file cannot be used as an image; str(err) is a short reason."""


def read_capped(path: str | os.PathLike, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """A regular file's bytes, refused (ImageDecodeError) when it is not a regular file (a FIFO would block the
    open forever) or when it is over `max_bytes` (checked before reading, and again while reading)."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise ImageDecodeError(f"unreadable file: {not_regular(st.st_mode)}")
        if st.st_size > max_bytes:
            raise ImageDecodeError(f"too large: {st.st_size} bytes is over the {max_bytes} byte limit")
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as err:
        raise ImageDecodeError(f"unreadable file: {err.strerror or err}") from None
    if len(data) > max_bytes:  # it grew after the stat
        raise ImageDecodeError(f"too large: over the {max_bytes} byte limit")
    return data


def load_rgb(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS,
             max_bytes: int = DEFAULT_MAX_BYTES) -> np.ndarray:
    """Read an image file as an upright HxWx3 uint8 RGB array."""
    return decode_rgb(read_capped(path, max_bytes), max_pixels)


def decode_rgb(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode image bytes as an upright HxWx3 uint8 RGB array; raise ImageDecodeError with a reason."""
    if not data:
        raise ImageDecodeError("empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as img:
                # Check the header's size before decoding a single pixel.
                if img.width * img.height > max_pixels:
                    raise ImageDecodeError(
                        f"decompression bomb: {img.width}x{img.height} px is over the {max_pixels} px limit"
                    )
                img.load()
                img = ImageOps.exif_transpose(img)
                return _to_rgb_array(img)
    except ImageDecodeError:
        raise
    except UnidentifiedImageError:
        announced = sniff_format(data)
        if announced:
            raise ImageDecodeError(f"corrupt image: {announced} signature but unreadable header") from None
        other = sniff_other(data)
        raise ImageDecodeError(f"not an image: {other}" if other
                               else "not an image (unrecognised or disallowed format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageDecodeError(f"decompression bomb: {err}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        # Pillow reports truncation and corrupt streams as OSError ("image file is truncated", "broken data
        # stream"), some plugins as SyntaxError or ValueError.
        raise ImageDecodeError(f"corrupt image: {err}") from None


def _to_rgb_array(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit and float greyscale: Pillow's convert("L") clips instead of scaling, so scale here.
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        if hi > 255 or lo < 0:
            full = 65535.0 if img.mode.startswith("I;16") else (hi if hi > lo else 1.0)
            arr = (arr - min(lo, 0.0)) / (full - min(lo, 0.0)) * 255.0
        grey = np.clip(arr + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # Transparent areas become white, like a browser shows them, not black garbage.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))


def encode_png(image: np.ndarray) -> bytes:
    """Lossless, deterministic PNG bytes of an RGB uint8 array."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def mirrored(image: np.ndarray) -> np.ndarray:
    """The image flipped left to right: the second view of a face that mirror averaging scores (a face's class does
    not depend on its side; the training loop flips its tensors the same way)."""
    return np.ascontiguousarray(image[:, ::-1])
