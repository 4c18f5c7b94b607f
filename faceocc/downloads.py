"""Resumable image downloads: verified bytes stored once per content hash, every URL journaled with its outcome.

The cache folder survives interrupted runs (DVC keeps it as a `persist` output):

    blobs/<sha256>.<ext>   verified image bytes, written as `.part` and renamed, so never half a file
    urls.jsonl             one JSON line per finished URL, appended; the last line for a URL wins

A re-run asks the journal first: an `ok` URL whose blob is there, and a URL that failed for a lasting reason
(404, robots, not an image), cost no request; transient failures (timeouts, 5xx, 429) are tried again.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from faceocc.images import (
    DEFAULT_MAX_PIXELS,
    ImageDecodeError,
    decode_rgb,
    sniff_format,
)
from faceocc.manifest import content_hash
from faceocc.web import Fetcher

log = logging.getLogger(__name__)

# Only these are decoded at all; Pillow never sees anything else a server sends.
WEB_IMAGE_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp"}
# Content types that certainly are not an image; empty, octet-stream and friends fall through to magic bytes.
_NON_IMAGE_TYPES = ("text/", "application/json", "application/xml", "application/xhtml", "application/javascript",
                    "application/pdf", "video/", "audio/")
# Outcomes worth another try on the next run; every other failure is remembered.
TRANSIENT_OUTCOMES = frozenset({"timeout", "connection_error", "request_error", "robots_unreachable",
                                "http_408", "http_425", "http_429", "http_500", "http_502", "http_503", "http_504"})


@dataclass(frozen=True)
class ImageCheck:
    outcome: str
    detail: str = ""
    format: str = ""
    width: int = 0
    height: int = 0


def check_image(data: bytes, content_type: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageCheck:
    """Is this response body a usable photo? Content type, magic bytes, then a full decode under the pixel cap."""
    if content_type.startswith(_NON_IMAGE_TYPES):
        return ImageCheck("not_an_image", f"served as {content_type}")
    fmt = sniff_format(data)
    if fmt not in WEB_IMAGE_FORMATS:
        looks = "HTML/text" if data[:64].lstrip().startswith(b"<") else (fmt or "unknown bytes")
        return ImageCheck("not_an_image", f"served as {content_type or 'no content type'} but the bytes are {looks}")
    try:
        pixels = decode_rgb(data, max_pixels)
    except ImageDecodeError as err:
        outcome = "decompression_bomb" if "decompression bomb" in str(err) else "decode_error"
        return ImageCheck(outcome, str(err), fmt)
    return ImageCheck("ok", "", fmt, int(pixels.shape[1]), int(pixels.shape[0]))


class DownloadCache:
    """Blobs by content hash plus the URL journal; safe to share between download threads."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.blobs = self.root / "blobs"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.journal_path = self.root / "urls.jsonl"
        self._lock = threading.Lock()
        self.removed_partials = self._remove_partials()
        self.records = self._read_journal()

    def _remove_partials(self) -> int:
        # A `.part` file is what an interrupted run was writing; it is never complete, so it goes.
        partials = list(self.blobs.glob("*.part"))
        for path in partials:
            path.unlink(missing_ok=True)
        return len(partials)

    def _read_journal(self) -> dict[str, dict]:
        records: dict[str, dict] = {}
        if not self.journal_path.exists():
            return records
        with open(self.journal_path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # the line an interrupted run was writing
                if isinstance(record, dict) and "url" in record:
                    records[record["url"]] = record
        return records

    def reusable(self, url: str, retry_failed: bool) -> dict | None:
        """The journaled result for `url` when it needs no new request."""
        record = self.records.get(url)
        if record is None:
            return None
        if record["outcome"] == "ok":
            return record if (self.root / record["file"]).is_file() else None
        if retry_failed or record["outcome"] in TRANSIENT_OUTCOMES:
            return None
        return record

    def store(self, data: bytes, suffix: str) -> tuple[str, str]:
        """Write bytes under their hash (once); return (sha256, path relative to the cache root)."""
        sha = content_hash(data)
        name = f"blobs/{sha}{suffix}"
        final = self.root / name
        if not final.exists():
            part = final.with_name(f"{final.name}.{threading.get_ident()}.part")
            with open(part, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(part, final)
        return sha, name

    def record(self, record: dict) -> None:
        line = json.dumps(record, sort_keys=True) + "\n"
        with self._lock:
            with open(self.journal_path, "a", encoding="utf-8") as fh:
                fh.write(line)
                fh.flush()
            self.records[record["url"]] = record

    def read(self, record: dict) -> bytes:
        return (self.root / record["file"]).read_bytes()


def fetch_image(url: str, fetcher: Fetcher, cache: DownloadCache, max_pixels: int) -> dict:
    """Download, verify and store one image URL; the journal record says how it ended."""
    got = fetcher.get(url, accept="image/jpeg,image/png,image/webp,image/bmp;q=0.9,*/*;q=0.1")
    record = {"url": url, "final_url": got.final_url, "status": got.status, "content_type": got.content_type,
              "outcome": got.outcome, "detail": got.detail, "sha256": "", "file": "", "format": "",
              "width": 0, "height": 0, "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if got.ok and {"noindex", "noimageindex"} & got.directives:
        record.update(outcome="robots_noindex", detail="X-Robots-Tag: " + ", ".join(sorted(got.directives)))
    elif got.ok:
        check = check_image(got.body, got.content_type, max_pixels)
        record.update(outcome=check.outcome, detail=check.detail, format=check.format, width=check.width,
                      height=check.height)
        if check.outcome == "ok":
            record["sha256"], record["file"] = cache.store(got.body, WEB_IMAGE_FORMATS[check.format])
    cache.record(record)
    if record["outcome"] != "ok":
        log.warning("%s: %s (%s)", url, record["outcome"], record["detail"])
    return record


def download_images(urls: Iterable[str], fetcher: Fetcher, cache: DownloadCache, *, workers: int,
                    max_pixels: int = DEFAULT_MAX_PIXELS, retry_failed: bool = False,
                    desc: str = "download") -> dict[str, dict]:
    """Fetch every distinct URL (at most `workers` at once) unless the journal already settles it."""
    unique = list(dict.fromkeys(urls))
    results: dict[str, dict] = {}
    todo = []
    for url in unique:
        record = cache.reusable(url, retry_failed)
        if record is None:
            todo.append(url)
        elif record["outcome"] == "ok" and record["width"] * record["height"] > max_pixels:
            # the journal stays as it is: a later run with a higher cap may use the file again
            results[url] = {**record, "outcome": "decompression_bomb", "file": "", "detail":
                            f"{record['width']}x{record['height']} px is over the {max_pixels} px limit (cached)"}
        else:
            results[url] = record
    if results:
        log.info("%d of %d URLs settled by earlier runs (journal %s)", len(results), len(unique),
                 cache.journal_path)
    counts = Counter(r["outcome"] == "ok" for r in results.values())
    pool = ThreadPoolExecutor(max(1, workers))
    try:
        with tqdm(total=len(todo), desc=desc, unit="url") as bar:
            futures = [pool.submit(fetch_image, url, fetcher, cache, max_pixels) for url in todo]
            for future in as_completed(futures):
                record = future.result()
                results[record["url"]] = record
                counts[record["outcome"] == "ok"] += 1
                bar.set_postfix(ok=counts[True], failed=counts[False], refresh=False)
                bar.update()
    finally:
        # On Ctrl-C, drop the queued URLs instead of downloading them all before exiting; the journal keeps
        # what finished, so the next run resumes from there.
        pool.shutdown(wait=True, cancel_futures=True)
    return results
