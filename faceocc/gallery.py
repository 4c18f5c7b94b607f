"""HTML galleries: image links and pagination links of a page (BeautifulSoup), and a bounded crawl over them.

A start page carries a label; every image found on it and on its following pages gets that label. Only
pagination is followed (rel=next, links in a pagination/pager block, "next"/"»"/page-number anchors, or an
explicit URL pattern), within a depth and page budget and, by default, on the start page's host: a crawl that
wandered into the rest of a site would mislabel what it found there.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from dataclasses import dataclass
from urllib.parse import urldefrag, urljoin, urlsplit

from bs4 import BeautifulSoup

from faceocc.config import bounded
from faceocc.web import Fetcher, robot_directives

log = logging.getLogger(__name__)

IMAGE_LINK_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
_NEXT_TEXT = re.compile(r"^\s*(next|next page|older|more|›|»|→|>|\d{1,4})\s*$", re.IGNORECASE)
_PAGER_CLASS = re.compile(r"pagination|pager|paging|page-numbers|nav-links", re.IGNORECASE)
HTML_TYPES = ("text/html", "application/xhtml+xml")


@dataclass(frozen=True)
class GalleryStart:
    url: str
    label: str


@dataclass(frozen=True)
class CrawlLimits:
    max_depth: int = bounded(3, ge=0)   # pagination steps from the start page
    max_pages: int = bounded(50, ge=1)  # pages fetched per start page
    same_host: bool = True     # follow pagination only on the start page's host
    page_pattern: str = ""     # optional regex: links whose URL matches are followed as pages too


@dataclass(frozen=True)
class PageLinks:
    images: tuple[str, ...]
    pages: tuple[str, ...]
    directives: frozenset[str]  # <meta name=robots> directives that apply to us


def parse_page(html: bytes | str, page_url: str, agent: str, page_pattern: str = "",
               encoding: str | None = None) -> PageLinks:
    """Absolute image URLs (document order, no repeats) and pagination URLs of one HTML page."""
    soup = BeautifulSoup(html, "html.parser", from_encoding=encoding if isinstance(html, bytes) else None)
    base_tag = soup.find("base", href=True)
    base = urljoin(page_url, base_tag["href"]) if base_tag else page_url
    metas = [m.get("content", "") for m in soup.find_all("meta")
             if m.get("name", "").lower() in ("robots", agent.lower())]
    directives = robot_directives([m for m in metas if m], agent)

    images: list[str] = []
    for tag in soup.find_all(["img", "source"]):
        candidates = [tag.get("src"), tag.get("data-src")] if tag.name == "img" else []
        candidates.append(largest_srcset_candidate(tag.get("srcset") or tag.get("data-srcset") or ""))
        images.extend(c for c in candidates if c)
    pages: list[str] = []
    pattern = re.compile(page_pattern) if page_pattern else None
    for tag in soup.find_all(["a", "link"], href=True):
        href = tag["href"].strip()
        absolute = _absolute(base, href)
        if absolute is None:
            continue
        if urlsplit(absolute).path.lower().endswith(IMAGE_LINK_SUFFIXES):
            if tag.name == "a":
                images.append(href)
            continue
        if _is_pagination(tag) or (pattern and pattern.search(absolute)):
            pages.append(absolute)
    image_urls = [u for u in (_absolute(base, i) for i in images) if u]
    page_set = [p for p in dict.fromkeys(pages) if urldefrag(p)[0] != urldefrag(page_url)[0]]
    return PageLinks(tuple(dict.fromkeys(image_urls)), tuple(page_set), directives)


def largest_srcset_candidate(srcset: str) -> str:
    """The URL with the largest width (`640w`) or density (`2x`) descriptor of a srcset; '' if none."""
    best, best_size = "", -1.0
    for candidate in srcset.split(","):
        parts = candidate.split()
        if not parts:
            continue
        size = 1.0
        if len(parts) > 1:
            match = re.match(r"^(\d+(?:\.\d+)?)[wx]$", parts[1])
            size = float(match.group(1)) if match else 1.0
        if size > best_size:
            best, best_size = parts[0], size
    return best


def _absolute(base: str, href: str) -> str | None:
    href = href.strip()
    if not href or href.startswith(("data:", "javascript:", "mailto:", "#")):
        return None
    url = urldefrag(urljoin(base, href))[0]
    return url if urlsplit(url).scheme in ("http", "https") else None


def _is_pagination(tag) -> bool:
    rel = [r.lower() for r in (tag.get("rel") or [])]
    if "next" in rel:
        return True
    if tag.name != "a":
        return False
    label = tag.get("aria-label", "")
    if _NEXT_TEXT.match(tag.get_text(" ", strip=True)) or re.search(r"\bnext\b", label, re.IGNORECASE):
        return True
    for parent in tag.parents:
        if parent.name in ("body", "html", "[document]"):
            break
        marks = " ".join([*(parent.get("class") or []), parent.get("id") or "", parent.get("aria-label") or ""])
        if _PAGER_CLASS.search(marks):
            return True
    return False


@dataclass(frozen=True)
class FoundImage:
    url: str
    label: str
    page: str


def crawl(start: GalleryStart, fetcher: Fetcher, limits: CrawlLimits) -> tuple[list[FoundImage], list[dict]]:
    """Breadth-first over pagination from one start page: images found, and one outcome row per page."""
    start_host = urlsplit(start.url).netloc.lower()
    queue: deque[tuple[str, int]] = deque([(urldefrag(start.url)[0], 0)])
    queued = {queue[0][0]}
    images: list[FoundImage] = []
    page_rows: list[dict] = []
    while queue and len(page_rows) < limits.max_pages:
        url, depth = queue.popleft()
        got = fetcher.get(url, accept="text/html,application/xhtml+xml;q=0.9,*/*;q=0.1")
        row = {"url": url, "label": start.label, "start": start.url, "depth": depth, "outcome": got.outcome,
               "detail": got.detail, "images": 0, "pages": 0}
        page_rows.append(row)
        if not got.ok:
            log.warning("page %s: %s (%s)", url, got.outcome, got.detail)
            continue
        if got.content_type and not got.content_type.startswith(HTML_TYPES):
            row.update(outcome="not_html", detail=f"served as {got.content_type}")
            log.warning("page %s: not_html (%s)", url, got.content_type)
            continue
        links = parse_page(got.body, got.final_url, fetcher.agent, limits.page_pattern)
        directives = links.directives | got.directives
        if "noimageindex" not in directives:
            images.extend(FoundImage(u, start.label, url) for u in links.images)
            row["images"] = len(links.images)
        else:
            row["detail"] = "noimageindex: images not taken"
        if "nofollow" in directives or depth >= limits.max_depth:
            continue
        for page in links.pages:
            if page in queued or (limits.same_host and urlsplit(page).netloc.lower() != start_host):
                continue
            queued.add(page)
            queue.append((page, depth + 1))
            row["pages"] += 1
    return images, page_rows
