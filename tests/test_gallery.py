"""Gallery pages: which links are images, which are pages to follow, and how far a crawl goes."""

from __future__ import annotations

from webserver import LocalServer, Reply

from faceocc.gallery import (
    CrawlLimits,
    GalleryStart,
    crawl,
    largest_srcset_candidate,
    parse_page,
)
from faceocc.web import Fetcher, WebConfig

PAGE = """<html><head><base href="/gallery/"><meta name="robots" content="noarchive"></head><body>
<img src="a.jpg"><img src="http://cdn.example/b.png"><img srcset="c-200.jpg 200w, c-800.jpg 800w">
<picture><source srcset="d.webp 1x, d@2x.webp 2x"><img src="d.jpg"></picture>
<img data-src="lazy.jpg"><img src="data:image/png;base64,AAAA"><a href="full/e.jpeg">full size</a>
<a href="a.jpg">same again</a><a href="/about.html">About us</a><a href="page2.html" rel="next">Next</a>
<nav class="pagination"><a href="page3.html">3</a></nav><a href="https://elsewhere.example/page9.html">9</a>
</body></html>"""


def test_parse_page_finds_images_and_pagination_but_not_other_links():
    links = parse_page(PAGE, "http://site.example/gallery/page1.html", "faceocc-scraper")
    assert links.images == (
        "http://site.example/gallery/a.jpg", "http://cdn.example/b.png", "http://site.example/gallery/c-800.jpg",
        "http://site.example/gallery/d@2x.webp", "http://site.example/gallery/d.jpg",
        "http://site.example/gallery/lazy.jpg", "http://site.example/gallery/full/e.jpeg")
    assert links.pages == ("http://site.example/gallery/page2.html", "http://site.example/gallery/page3.html",
                           "https://elsewhere.example/page9.html")
    assert links.directives == {"noarchive"}


def test_largest_srcset_candidate():
    assert largest_srcset_candidate("s.jpg 320w, l.jpg 1024w, m.jpg 640w") == "l.jpg"
    assert largest_srcset_candidate("a.jpg, b.jpg 2x") == "b.jpg"
    assert largest_srcset_candidate("") == ""


def _page(body: str, headers: dict | None = None) -> Reply:
    return Reply(200, f"<html><body>{body}</body></html>".encode(), headers=headers or {})


def test_crawl_follows_pagination_within_depth_and_host_limits():
    routes = {
        "/g/1.html": _page('<img src="a.jpg"><a rel="next" href="2.html">next</a><a href="/about.html">about</a>'),
        "/g/2.html": _page('<img src="b.jpg"><a href="3.html">»</a><a href="1.html">1</a>'),
        "/g/3.html": _page('<img src="c.jpg"><a href="4.html">»</a>'),
        "/g/4.html": _page('<img src="d.jpg">'),
        "/about.html": _page('<img src="/private.jpg">'),
    }
    with LocalServer(routes) as server:
        fetcher = Fetcher(WebConfig(per_host_interval_s=0.0, retries=0))
        found, pages = crawl(GalleryStart(server.url("/g/1.html"), "masked"), fetcher, CrawlLimits(max_depth=2))
        fetcher.close()
        assert [f.url.rsplit("/", 1)[-1] for f in found] == ["a.jpg", "b.jpg", "c.jpg"]
        assert {f.label for f in found} == {"masked"}
        assert [(p["url"].rsplit("/", 1)[-1], p["depth"]) for p in pages] == [
            ("1.html", 0), ("2.html", 1), ("3.html", 2)]
        assert server.hits["/about.html"] == 0 and server.hits["/g/4.html"] == 0
        assert server.hits["/g/1.html"] == 1  # the back link to page 1 is not fetched again


def test_crawl_respects_page_budget_nofollow_noimageindex_and_non_html():
    routes = {
        "/a/1.html": _page('<img src="x.jpg"><a rel="next" href="2.html">n</a>', {"X-Robots-Tag": "nofollow"}),
        "/b/1.html": _page('<img src="y.jpg"><a rel="next" href="2.html">n</a>'
                           '<meta name="robots" content="noimageindex">'),
        "/b/2.html": _page('<img src="z.jpg">'),
        "/c/1.html": Reply(200, b"\x89PNG....", "image/png"),
        "/d/1.html": _page('<a rel="next" href="2.html">n</a>'),
        "/d/2.html": _page('<a rel="next" href="3.html">n</a>'),
    }
    with LocalServer(routes) as server:
        fetcher = Fetcher(WebConfig(per_host_interval_s=0.0, retries=0))
        found_a, pages_a = crawl(GalleryStart(server.url("/a/1.html"), "face"), fetcher, CrawlLimits())
        found_b, pages_b = crawl(GalleryStart(server.url("/b/1.html"), "face"), fetcher, CrawlLimits())
        _, pages_c = crawl(GalleryStart(server.url("/c/1.html"), "face"), fetcher, CrawlLimits())
        _, pages_d = crawl(GalleryStart(server.url("/d/1.html"), "face"), fetcher, CrawlLimits(max_pages=2))
        fetcher.close()
    assert [f.url.rsplit("/", 1)[-1] for f in found_a] == ["x.jpg"] and len(pages_a) == 1
    assert [f.url.rsplit("/", 1)[-1] for f in found_b] == ["z.jpg"] and len(pages_b) == 2
    assert pages_c[0]["outcome"] == "not_html"
    assert len(pages_d) == 2
