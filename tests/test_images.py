import io

import numpy as np
import pytest
from PIL import Image

from faceocc.images import ImageDecodeError, decode_rgb, load_rgb


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_greyscale_becomes_three_equal_channels():
    arr = decode_rgb(_encode(Image.new("L", (7, 5), 90), "PNG"))
    assert arr.shape == (5, 7, 3) and arr.dtype == np.uint8 and (arr == 90).all()


def test_transparent_areas_become_white_not_black():
    img = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    img.putpixel((0, 0), (0, 0, 255, 255))
    arr = decode_rgb(_encode(img, "PNG"))
    assert tuple(arr[1, 1]) == (255, 255, 255)
    assert tuple(arr[0, 0]) == (0, 0, 255)


def test_palette_with_transparency_is_composited():
    img = Image.new("P", (4, 4), 0)
    img.putpalette([10, 20, 30] + [200, 0, 0] * 255)
    arr = decode_rgb(_encode(img, "PNG", transparency=0))
    assert tuple(arr[0, 0]) == (255, 255, 255)


def test_cmyk_jpeg_decodes_to_rgb():
    arr = decode_rgb(_encode(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG"))
    assert arr.shape == (8, 8, 3)
    r, g, b = arr[4, 4].astype(int)
    assert r > 200 and g < 60 and b < 60  # cyan 0, magenta+yellow full: red


def test_sixteen_bit_greyscale_is_scaled_not_clipped():
    raw = np.array([[0, 32768, 65535]], dtype=np.uint16)
    arr = decode_rgb(_encode(Image.fromarray(raw), "PNG"))
    assert list(arr[0, :, 0]) == [0, 128, 255]


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (40, 20), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 10, 20))  # white band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: viewers turn it 90 degrees clockwise
    arr = decode_rgb(_encode(img, "JPEG", exif=exif, quality=95))
    assert arr.shape == (40, 20, 3)
    assert arr[2, 10].mean() > 200 and arr[-3, 10].mean() < 50  # the band is now on top


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty file"),
        (b"hello, I am a text file\n", "not an image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "corrupt image"),
    ],
)
def test_bad_bytes_raise_with_a_reason(data, reason):
    with pytest.raises(ImageDecodeError, match=reason):
        decode_rgb(data)


def test_truncated_jpeg_is_an_error_not_a_grey_image():
    data = _encode(Image.effect_noise((64, 64), 50).convert("RGB"), "JPEG", quality=95)
    with pytest.raises(ImageDecodeError, match="corrupt image"):
        decode_rgb(data[: len(data) // 2])


def test_pixel_limit_is_checked_before_decoding():
    data = _encode(Image.new("L", (200, 100)), "PNG")
    with pytest.raises(ImageDecodeError, match="decompression bomb: 200x100 px"):
        decode_rgb(data, max_pixels=10_000)


def test_formats_outside_the_allow_list_are_refused():
    with pytest.raises(ImageDecodeError, match="not an image"):
        decode_rgb(_encode(Image.new("RGB", (16, 16)), "ICO"))


def test_missing_file_names_the_reason(tmp_path):
    with pytest.raises(ImageDecodeError, match="unreadable file"):
        load_rgb(tmp_path / "nope.jpg")


@pytest.mark.parametrize(
    "data, fmt",
    [(b"\xff\xd8\xff\xe0", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "WEBP"),
     (b"<html>", None)],
)
def test_sniff_format_reads_magic_bytes(data, fmt):
    from faceocc.images import sniff_format

    assert sniff_format(data) == fmt
