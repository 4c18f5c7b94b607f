"""Fetching and downloading against a real HTTP server on 127.0.0.1: every hostile answer ends as an outcome."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image
from webserver import LocalServer, Reply, image_reply

from faceocc.downloads import DownloadCache, check_image, download_images
from faceocc.web import Fetcher, WebConfig, robot_directives

FAST = WebConfig(connect_timeout_s=2.0, read_timeout_s=0.5, total_timeout_s=5.0, retries=2, backoff_s=0.05,
                 max_retry_after_s=5.0, per_host_interval_s=0.0, max_bytes=300_000, max_redirects=3, workers=4)


def jpeg(seed: int, size: int = 64) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def png_bomb() -> bytes:
    # 100 megapixels of 1-bit zeros compress to a few kB: the header alone must stop it.
    buf = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(buf, "PNG", optimize=True)
    return buf.getvalue()


def flaky(first: Reply, then: Reply):
    return lambda count: first if count == 1 else then


@pytest.fixture(scope="module")
def site():
    good = jpeg(1)
    routes = {
        "/robots.txt": Reply(200, b"User-agent: *\nDisallow: /private/\n", "text/plain"),
        "/img/good.jpg": image_reply(good, ".jpg"),
        "/img/same-bytes.jpg": image_reply(good, ".jpg"),
        "/img/other.png": image_reply(_png(2), ".png"),
        "/private/secret.jpg": image_reply(jpeg(3), ".jpg"),
        "/flaky.jpg": flaky(Reply(500, b"oops"), image_reply(jpeg(4), ".jpg")),
        "/busy.jpg": flaky(Reply(429, b"slow down", headers={"Retry-After": "1"}), image_reply(jpeg(5), ".jpg")),
        "/very-busy.jpg": Reply(429, b"come back in an hour", headers={"Retry-After": "3600"}),
        "/always-500.jpg": Reply(503, b"down"),
        "/slow.jpg": Reply(200, jpeg(6), "image/jpeg", delay_s=2.0),
        "/loop-a.jpg": Reply(302, b"", headers={"Location": "/loop-b.jpg"}),
        "/loop-b.jpg": Reply(302, b"", headers={"Location": "/loop-a.jpg"}),
        "/moved.jpg": Reply(301, b"", headers={"Location": "/img/other.png"}),
        "/html-as-jpeg.jpg": Reply(200, b"<!doctype html><html><body>gotcha</body></html>", "image/jpeg"),
        "/page-as-image.jpg": Reply(200, b"<html></html>", "text/html"),
        "/truncated.jpg": image_reply(jpeg(7, 256)[:2000], ".jpg"),
        "/huge-declared.jpg": image_reply(b"\xff\xd8\xff" + bytes(400_000), ".jpg"),
        "/huge-streamed.jpg": Reply(200, b"\xff\xd8\xff" + bytes(400_000), "image/jpeg", send_length=False),
        "/bomb.png": image_reply(png_bomb(), ".png"),
        "/gif.gif": Reply(200, b"GIF89a" + bytes(100), "image/gif"),
        "/noindex.jpg": Reply(200, jpeg(8), "image/jpeg", headers={"X-Robots-Tag": "noindex"}),
        "/other-bot-noindex.jpg": Reply(200, jpeg(9), "image/jpeg", headers={"X-Robots-Tag": "googlebot: noindex"}),
    }
    with LocalServer(routes) as server:
        yield server


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (48, 80, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


EXPECTED = {
    "/img/good.jpg": "ok",
    "/img/same-bytes.jpg": "ok",
    "/img/other.png": "ok",
    "/private/secret.jpg": "robots_disallowed",
    "/flaky.jpg": "ok",
    "/busy.jpg": "ok",
    "/very-busy.jpg": "http_429",
    "/always-500.jpg": "http_503",
    "/slow.jpg": "timeout",
    "/loop-a.jpg": "redirect_loop",
    "/moved.jpg": "ok",
    "/html-as-jpeg.jpg": "not_an_image",
    "/page-as-image.jpg": "not_an_image",
    "/truncated.jpg": "decode_error",
    "/huge-declared.jpg": "too_large",
    "/huge-streamed.jpg": "too_large",
    "/bomb.png": "decompression_bomb",
    "/gif.gif": "not_an_image",
    "/noindex.jpg": "robots_noindex",
    "/other-bot-noindex.jpg": "ok",
    "/nowhere.jpg": "http_404",
}


@pytest.fixture(scope="module")
def downloaded(site, tmp_path_factory):
    cache = DownloadCache(tmp_path_factory.mktemp("cache"))
    fetcher = Fetcher(FAST)
    urls = [site.url(p) for p in EXPECTED]
    results = download_images(urls, fetcher, cache, workers=4)
    fetcher.close()
    return cache, results


def test_every_url_ends_with_the_outcome_its_server_behaviour_deserves(site, downloaded):
    _, results = downloaded
    got = {path: results[site.url(path)]["outcome"] for path in EXPECTED}
    assert got == EXPECTED


def test_robots_disallowed_urls_are_never_requested_and_robots_is_read_once(site, downloaded):
    assert site.hits["/private/secret.jpg"] == 0
    assert site.hits["/robots.txt"] == 1


def test_server_errors_and_429_are_retried_until_they_succeed(site, downloaded):
    assert site.hits["/flaky.jpg"] == 2
    assert site.hits["/busy.jpg"] == 2
    assert site.hits["/always-500.jpg"] == 1 + FAST.retries  # urllib3's backoff retries, then the final answer
    assert site.hits["/very-busy.jpg"] == 1  # an hour's Retry-After is refused, not slept through


def test_requests_carry_the_descriptive_user_agent(site, downloaded):
    assert site.user_agents == {FAST.user_agent}


def test_identical_bytes_under_two_urls_are_stored_once(site, downloaded):
    cache, results = downloaded
    a, b = results[site.url("/img/good.jpg")], results[site.url("/img/same-bytes.jpg")]
    assert a["sha256"] == b["sha256"] and a["file"] == b["file"]
    ok = {r["file"] for r in results.values() if r["outcome"] == "ok"}
    assert sorted(p.name for p in cache.blobs.iterdir()) == sorted(f.split("/")[-1] for f in ok)


def test_redirects_report_where_they_ended(site, downloaded):
    _, results = downloaded
    record = results[site.url("/moved.jpg")]
    assert record["final_url"] == site.url("/img/other.png")
    assert (record["format"], record["width"], record["height"]) == ("PNG", 80, 48)


def test_a_rerun_requests_nothing_that_already_has_a_lasting_answer(site, downloaded):
    cache_dir = downloaded[0].root
    before = site.hits.copy()
    cache = DownloadCache(cache_dir)  # a new run reads the journal
    fetcher = Fetcher(FAST)
    results = download_images([site.url(p) for p in EXPECTED], fetcher, cache, workers=2)
    fetcher.close()
    asked_again = {p for p in EXPECTED if site.hits[p] > before[p]}
    # only the transient failures (a timeout, 429 and 503) are worth another try
    assert asked_again == {"/slow.jpg", "/very-busy.jpg", "/always-500.jpg"}
    assert {p: results[site.url(p)]["outcome"] for p in EXPECTED} == EXPECTED


def test_partial_files_of_an_interrupted_run_are_removed(tmp_path):
    (tmp_path / "blobs").mkdir()
    (tmp_path / "blobs" / "abc.jpg.1234.part").write_bytes(b"\xff\xd8half")
    (tmp_path / "urls.jsonl").write_text('{"url": "http://x/a.jpg", "outcome": "http_404"}\n{"url": "http://x/b')
    cache = DownloadCache(tmp_path)
    assert cache.removed_partials == 1 and not list((tmp_path / "blobs").iterdir())
    assert list(cache.records) == ["http://x/a.jpg"]  # the torn last line is ignored


def test_one_host_is_paced_across_worker_threads(tmp_path):
    routes = {f"/p{i}.jpg": image_reply(jpeg(20 + i), ".jpg") for i in range(4)}
    with LocalServer(routes) as server:
        config = WebConfig(per_host_interval_s=0.25, obey_robots=False, retries=0, workers=4)
        fetcher = Fetcher(config)
        start = time.monotonic()
        download_images([server.url(p) for p in routes], fetcher, DownloadCache(tmp_path), workers=4)
        elapsed = time.monotonic() - start
        fetcher.close()
    assert elapsed >= 3 * 0.25  # four requests, three gaps, although four threads were free


def test_robots_crawl_delay_slows_the_host_down(tmp_path):
    routes = {"/robots.txt": Reply(200, b"User-agent: *\nCrawl-delay: 1\n", "text/plain"),
              "/a.jpg": image_reply(jpeg(30), ".jpg"), "/b.jpg": image_reply(jpeg(31), ".jpg")}
    with LocalServer(routes) as server:
        fetcher = Fetcher(WebConfig(per_host_interval_s=0.0, retries=0))
        start = time.monotonic()
        download_images([server.url("/a.jpg"), server.url("/b.jpg")], fetcher, DownloadCache(tmp_path), workers=2)
        elapsed = time.monotonic() - start
        fetcher.close()
    assert elapsed >= 1.0


def test_unreachable_robots_txt_means_nothing_is_fetched(tmp_path):
    routes = {"/robots.txt": Reply(503, b"down", "text/plain"), "/a.jpg": image_reply(jpeg(32), ".jpg")}
    with LocalServer(routes) as server:
        fetcher = Fetcher(WebConfig(retries=0, per_host_interval_s=0.0))
        got = fetcher.get(server.url("/a.jpg"))
        fetcher.close()
        assert got.outcome == "robots_unreachable" and server.hits["/a.jpg"] == 0


def test_dead_hosts_end_as_connection_errors():
    fetcher = Fetcher(WebConfig(retries=0, connect_timeout_s=1.0))
    got = fetcher.get("http://127.0.0.1:9/a.jpg")  # the discard port: nothing listens
    assert got.outcome == "connection_error"
    assert fetcher.get("ftp://example.org/a.jpg").outcome == "bad_url"


def test_x_robots_tag_applies_only_to_this_scraper_or_to_all():
    assert robot_directives(["noindex, nofollow"], "faceocc-scraper") == {"noindex", "nofollow"}
    assert robot_directives(["googlebot: noindex"], "faceocc-scraper") == frozenset()
    assert robot_directives(["faceocc-scraper: none"], "faceocc-scraper") == {"none", "noindex", "nofollow"}
    assert robot_directives(["unavailable_after: 25 Jun 2030 15:00:00 PST"], "x") == {"unavailable_after"}


def test_check_image_trusts_magic_bytes_over_the_declared_type():
    assert check_image(jpeg(40), "application/octet-stream").outcome == "ok"
    assert check_image(jpeg(40), "text/html").outcome == "not_an_image"
    assert check_image(b"%PDF-1.4", "image/jpeg").outcome == "not_an_image"


def test_a_body_trickled_a_byte_at_a_time_ends_at_total_timeout(tmp_path):
    from dataclasses import replace

    routes = {"/drip.jpg": Reply(200, jpeg(3), "image/jpeg", trickle_s=0.05)}  # ~ 2 KB: over a minute
    with LocalServer(routes) as server:
        fetcher = Fetcher(replace(FAST, total_timeout_s=1.0, obey_robots=False))
        start = time.monotonic()
        got = fetcher.get(server.url("/drip.jpg"))
        took = time.monotonic() - start
    assert got.outcome == "timeout" and "total_timeout_s = 1 s" in got.detail
    assert took < 2.0, took


def test_read_timeouts_retried_never_take_a_url_past_total_timeout(tmp_path):
    from dataclasses import replace

    routes = {"/slow.jpg": Reply(200, jpeg(4), "image/jpeg", delay_s=1.0)}  # every try outlasts the read timeout
    with LocalServer(routes) as server:
        fetcher = Fetcher(replace(FAST, read_timeout_s=0.4, retries=5, backoff_s=0.0, total_timeout_s=1.0,
                                  obey_robots=False))
        start = time.monotonic()
        got = fetcher.get(server.url("/slow.jpg"))
        took = time.monotonic() - start
    assert got.outcome == "timeout" and took < 1.6, (got, took)  # 6 tries x 0.4 s without the deadline
    assert server.hits["/slow.jpg"] <= 3
