"""FFmpeg's decode errors, which OpenCV does not pass on.

`cv2.VideoCapture.read()` hides a damaged stream: FFmpeg conceals a corrupt macroblock or packet and hands back
a (partly garbage) frame, and says so only in a log line written straight to file descriptor 2, such as
`[mpeg4 @ 0x55e0...] marker does not match f_code` (measured: 30 of 30 frames "read" from an mp4v clip with
3 KB zeroed in the middle). `decoder_errors()` taps descriptor 2 while a video is read: every byte still reaches
the terminal (progress bars included), and lines in FFmpeg's `[codec @ 0x...]` form are also collected.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

# FFmpeg's log prefix: "[h264 @ 0x5600...] " ; warnings about the container's guesses are not damage
_FFMPEG_LINE = re.compile(rb"\[([^\]@]+?) @ 0x[0-9a-f]+\] (.+)")
_NOT_DAMAGE = (b"Stream #", b"Could not find codec parameters", b"deprecated pixel format", b"No accelerated")


@contextmanager
def decoder_errors() -> Iterator[list[str]]:
    """Yields a list that fills with FFmpeg's error lines ("mpeg4: marker does not match f_code") written while
    the block runs; complete once the block has exited."""
    errors: list[str] = []
    sys.stderr.flush()
    original = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump():
        pending = b""
        while chunk := os.read(read_end, 65536):
            os.write(original, chunk)
            pending += chunk
            *lines, pending = pending.split(b"\n")
            errors.extend(_parse(line) for line in lines if _is_error(line))
        if _is_error(pending):
            errors.append(_parse(pending))

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    try:
        yield errors
    finally:
        sys.stderr.flush()
        os.dup2(original, 2)  # closes the pipe's last write end: the pump reads EOF and stops
        thread.join()
        os.close(read_end)
        os.close(original)


def _is_error(line: bytes) -> bool:
    match = _FFMPEG_LINE.search(line)
    return bool(match) and not any(phrase in line for phrase in _NOT_DAMAGE)


def _parse(line: bytes) -> str:
    codec, message = _FFMPEG_LINE.search(line).groups()
    return f"{codec.decode(errors='replace')}: {message.decode(errors='replace').strip()}"
