"""The scrape stage's web sources end to end against servers on 127.0.0.1: galleries, ROF, kill and resume."""

from __future__ import annotations

import io
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from test_rof import RunsAShellCommand, flat_face, nested_face
from test_web import png_bomb
from webserver import LocalServer, Reply, image_reply

from faceocc.manifest import read_rows
from stages import crop, scrape

ROOT = Path(__file__).resolve().parents[1]
QUICK_WEB = {"per_host_interval_s": 0.0, "retries": 1, "backoff_s": 0.05, "read_timeout_s": 0.5,
             "total_timeout_s": 5.0, "max_retry_after_s": 3.0, "max_bytes": 2_000_000, "workers": 3}


def encode(image: np.ndarray, fmt: str = "JPEG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, fmt)
    return buf.getvalue()


def run_scrape(tmp_path: Path, params: dict, out: str = "raw") -> tuple[list[dict], dict]:
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump({"scrape": params}))
    scrape.main(["--out", str(tmp_path / out), "--cache", str(tmp_path / "cache"),
                 "--metrics", str(tmp_path / "scrape.json"), "--params", str(params_file)])
    return read_rows(tmp_path / out / "manifest.csv"), json.loads((tmp_path / "scrape.json").read_text())


@pytest.fixture
def gallery_server(astronaut, faceless):
    portrait = encode(astronaut)
    routes = {
        "/robots.txt": Reply(200, b"User-agent: *\nDisallow: /private/\n", "text/plain"),
        "/face/1.html": Reply(200, b"""<html><body>
            <img src="/img/portrait.jpg"><img srcset="/img/small.jpg 100w, /img/mirrored.png 512w">
            <img src="/private/p.jpg"><img src="/missing.jpg"><img src="/flaky.jpg"><img src="/busy.jpg">
            <img src="/fake.jpg"><img src="/truncated.jpg"><img src="/bomb.png"><a href="/copy.jpg">copy</a>
            <img src="/slow.jpg"><img src="/loop.jpg"><img src="/huge.jpg">
            <a href="/contact.html">contact</a><a rel="next" href="/face/2.html">next</a></body></html>"""),
        "/face/2.html": Reply(200, b'<html><body><img src="/img/scene.jpg"></body></html>'),
        "/masked/1.html": Reply(200, b'<html><body><img src="/img/portrait.jpg"><img src="/img/dark.jpg">'
                                     b'</body></html>'),
        "/img/portrait.jpg": image_reply(portrait, ".jpg"),
        "/img/mirrored.png": image_reply(encode(np.ascontiguousarray(astronaut[:, ::-1]), "PNG"), ".png"),
        "/img/scene.jpg": image_reply(encode(faceless), ".jpg"),
        "/img/dark.jpg": image_reply(encode((astronaut * 0.6).astype(np.uint8)), ".jpg"),
        "/private/p.jpg": image_reply(portrait, ".jpg"),
        "/flaky.jpg": lambda n: Reply(500) if n == 1 else image_reply(encode(astronaut[20:, 20:]), ".jpg"),
        "/busy.jpg": lambda n: (Reply(429, headers={"Retry-After": "1"}) if n == 1
                                else image_reply(encode(astronaut[:-30, :-30]), ".jpg")),
        "/fake.jpg": Reply(200, b"<html><body>Not found</body></html>", "image/jpeg"),
        "/truncated.jpg": image_reply(portrait[: len(portrait) // 3], ".jpg"),
        "/bomb.png": image_reply(png_bomb(), ".png"),
        "/copy.jpg": image_reply(portrait, ".jpg"),
        "/slow.jpg": Reply(200, portrait, "image/jpeg", delay_s=1.5),
        "/loop.jpg": Reply(302, headers={"Location": "/loop.jpg?again"}),
        "/loop.jpg?again": Reply(302, headers={"Location": "/loop.jpg"}),
        "/huge.jpg": Reply(200, b"\xff\xd8\xff" + bytes(3_000_000), "image/jpeg", send_length=False),
    }
    with LocalServer(routes) as server:
        yield server


GALLERY_OUTCOMES = {  # (label, path) -> outcome, in discovery order
    ("face", "/img/portrait.jpg"): "label_conflict",
    ("face", "/img/mirrored.png"): "ok",
    ("face", "/private/p.jpg"): "robots_disallowed",
    ("face", "/missing.jpg"): "http_404",
    ("face", "/flaky.jpg"): "ok",
    ("face", "/busy.jpg"): "ok",
    ("face", "/fake.jpg"): "not_an_image",
    ("face", "/truncated.jpg"): "decode_error",
    ("face", "/bomb.png"): "decompression_bomb",
    ("face", "/slow.jpg"): "timeout",
    ("face", "/loop.jpg"): "redirect_loop",
    ("face", "/huge.jpg"): "too_large",
    ("face", "/copy.jpg"): "label_conflict",      # the portrait's bytes, which the masked gallery has too
    ("face", "/img/scene.jpg"): "ok",
    ("masked", "/img/portrait.jpg"): "label_conflict",
    ("masked", "/img/dark.jpg"): "ok",
}


def test_gallery_scrape_gives_every_url_an_outcome_and_feeds_the_crop_stage(tmp_path, gallery_server):
    server = gallery_server
    params = {"source": "gallery", "web": QUICK_WEB,
              "gallery": {"starts": [{"url": server.url("/face/1.html"), "label": "face"},
                                     {"url": server.url("/masked/1.html"), "label": "masked"}],
                          "limits": {"max_depth": 2}}}
    rows, metrics = run_scrape(tmp_path, params)

    got = {(r["label"], r["origin"].replace(server.url(""), "")): r["outcome"] for r in rows}
    assert got == GALLERY_OUTCOMES and len(rows) == len(GALLERY_OUTCOMES)
    assert sorted(got) == sorted(GALLERY_OUTCOMES)
    # good images arrive exactly once: one request each, one stored file each
    for path in ("/img/portrait.jpg", "/img/mirrored.png", "/img/scene.jpg", "/img/dark.jpg", "/copy.jpg"):
        assert server.hits[path] == 1, path
    stored = sorted(p.name for p in (tmp_path / "raw" / "images").iterdir())
    assert len(stored) == 5 and stored == sorted(r["file"].split("/")[1] for r in rows if r["file"])
    assert server.hits["/private/p.jpg"] == 0 and server.hits["/contact.html"] == 0
    assert metrics["stored_per_label"] == {"face": 4, "masked": 1, "sunglasses": 0, "mask_sunglasses": 0}
    assert metrics["sources_read"] == {"page:ok": 3}
    pages = read_rows(tmp_path / "raw" / "sources.csv")
    assert [(p["url"].replace(server.url(""), ""), p["items"]) for p in pages] == [
        ("/face/1.html", "13"), ("/face/2.html", "1"), ("/masked/1.html", "2")]
    conflict = next(r for r in rows if r["label"] == "masked" and r["outcome"] == "label_conflict")
    assert "labelled face" in conflict["detail"]  # the same picture under two labels is visible, and not kept

    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump({"crop": {"batch_size": 4, "threads": 1, "device": "cpu"}}))
    crop.main(["--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "crop"), "--metrics",
               str(tmp_path / "crop.json"), "--samples", str(tmp_path / "samples.png"), "--params", str(params_file)])
    outcomes = [r["outcome"] for r in read_rows(tmp_path / "crop" / "outcomes.csv")]
    assert sorted(outcomes) == ["kept"] * 4 + ["no_face"]


def rof_pickles(marker: Path, image_url) -> dict[str, bytes]:
    """ROF-format manifests: both layouts, a dead URL, an annotation that no longer fits, a hostile file."""
    return {
        "ROF/neutral/jane_doe.pkl": pickle.dumps({
            0: {"url": image_url("/rof/jane.jpg"), "faces": [flat_face(190, 70, 110, 140)]},
            1: {"url": image_url("/rof/dead.jpg"), "faces": [flat_face(10, 10, 50, 50)]},
            2: {"url": image_url("/rof/resized.jpg"), "faces": [flat_face(300, 300, 150, 150)]},
        }, protocol=2),
        "ROF/masked/jane_doe_wearing_mask.pkl": pickle.dumps({
            0: {"url": image_url("/rof/jane_masked.jpg"), "faces": [nested_face(190, 70, 110, 140)]},
            1: {"faces": []},
        }, protocol=4),
        "ROF/sunglasses/mallory_wearing_sunglasses.pkl": pickle.dumps(
            {0: {"url": image_url("/rof/x.jpg"), "faces": [RunsAShellCommand(marker)]}}),
    }


@pytest.fixture
def rof_site(astronaut, tmp_path):
    marker = tmp_path / "pwned"
    holder: dict = {}
    with LocalServer({}) as server:
        manifests = rof_pickles(marker, server.url)
        tree = {"tree": [{"path": p, "type": "blob"} for p in manifests]
                + [{"path": "ROF/sunglasses/gone_wearing_sunglasses.pkl", "type": "blob"}, {"path": "README.md"}]}
        server.routes.update({
            # robots.txt shuts crawlers out of the API and raw files, as GitHub's do; the manifests are
            # fetched because the user named the repository, the images only where robots allow
            "/robots.txt": Reply(200, b"User-agent: *\nDisallow: /api/\nDisallow: /raw/\n", "text/plain"),
            "/api/repos/octo/rof": Reply(200, json.dumps({"default_branch": "main"}).encode(), "application/json"),
            "/api/repos/octo/rof/git/trees/main?recursive=1": Reply(200, json.dumps(tree).encode(),
                                                                    "application/json"),
            "/rof/jane.jpg": image_reply(encode(astronaut), ".jpg"),
            "/rof/resized.jpg": image_reply(encode(astronaut[::2, ::2]), ".jpg"),
            "/rof/jane_masked.jpg": image_reply(encode(astronaut[:, :, ::-1]), ".jpg"),
        })
        for path, data in manifests.items():
            server.routes[f"/raw/octo/rof/main/{path}"] = Reply(200, data, "application/octet-stream")
        holder.update(server=server, marker=marker, manifests=manifests)
        yield holder


def test_rof_scrape_from_a_repository_keeps_identities_and_fitting_annotations(tmp_path, rof_site):
    server = rof_site["server"]
    params = {"source": "rof", "web": QUICK_WEB,
              "rof": {"manifests": "https://github.com/octo/rof", "api_base": server.url("/api"),
                      "raw_base": server.url("/raw")}}
    rows, metrics = run_scrape(tmp_path, params)

    assert not rof_site["marker"].exists()  # the hostile manifest never ran
    by_url = {r["origin"].replace(server.url(""), ""): r for r in rows}
    assert {u: r["outcome"] for u, r in by_url.items()} == {
        "/rof/jane.jpg": "ok", "/rof/dead.jpg": "http_404", "/rof/resized.jpg": "ok", "/rof/jane_masked.jpg": "ok"}
    assert {r["identity"] for r in rows} == {"jane_doe"}
    assert by_url["/rof/jane_masked.jpg"]["label"] == "masked" and by_url["/rof/jane.jpg"]["label"] == "face"
    annotation = json.loads(by_url["/rof/jane.jpg"]["annotation"])
    assert annotation[0]["box"] == [190, 70, 300, 210] and len(annotation[0]["landmarks"]) == 5
    assert by_url["/rof/resized.jpg"]["annotation"] == ""
    assert "ROF annotation dropped" in by_url["/rof/resized.jpg"]["detail"]
    assert by_url["/rof/jane.jpg"]["found_on"] == "ROF/neutral/jane_doe.pkl#0"

    sources = {r["url"].replace(server.url(""), ""): r for r in read_rows(tmp_path / "raw" / "sources.csv")}
    assert sources["/raw/octo/rof/main/ROF/sunglasses/mallory_wearing_sunglasses.pkl"]["outcome"] == "unsafe_pickle"
    assert "refused to load global" in sources[
        "/raw/octo/rof/main/ROF/sunglasses/mallory_wearing_sunglasses.pkl"]["detail"]
    assert sources["/raw/octo/rof/main/ROF/sunglasses/gone_wearing_sunglasses.pkl"]["outcome"] == "http_404"
    assert "1 malformed record(s) skipped" in sources[
        "/raw/octo/rof/main/ROF/masked/jane_doe_wearing_mask.pkl"]["detail"]
    assert metrics["sources_read"] == {"listing:ok": 2, "rof_manifest:ok": 2, "rof_manifest:unsafe_pickle": 1,
                                       "rof_manifest:http_404": 1}


def test_rof_scrape_from_a_local_checkout(tmp_path, rof_site):
    server = rof_site["server"]
    checkout = tmp_path / "RealWorldOccludedFaces"
    for path, data in rof_site["manifests"].items():
        (checkout / path).parent.mkdir(parents=True, exist_ok=True)
        (checkout / path).write_bytes(data)
    params = {"source": "rof", "web": QUICK_WEB,
              "rof": {"manifests": str(checkout), "categories": ["neutral", "masked"], "max_per_category": 2}}
    rows, _ = run_scrape(tmp_path, params)
    assert [(r["label"], r["origin"].replace(server.url(""), ""), r["outcome"]) for r in rows] == [
        ("face", "/rof/jane.jpg", "ok"), ("face", "/rof/dead.jpg", "http_404"),
        ("masked", "/rof/jane_masked.jpg", "ok")]


def test_killed_scrape_resumes_without_refetching_and_leaves_no_partial_files(tmp_path, astronaut):
    images = {f"/img/{k}.jpg": encode(np.ascontiguousarray(np.roll(astronaut, 7 * k, axis=1))) for k in range(12)}
    body = "".join(f'<img src="{p}">' for p in images)
    routes = {"/g.html": Reply(200, f"<html><body>{body}</body></html>".encode())}
    routes.update({p: Reply(200, data, "image/jpeg", delay_s=0.25) for p, data in images.items()})
    params = {"source": "gallery", "web": {**QUICK_WEB, "workers": 1, "read_timeout_s": 5.0},
              "gallery": {"starts": [{"url": "", "label": "face"}]}}
    with LocalServer(routes) as server:
        params["gallery"]["starts"][0]["url"] = server.url("/g.html")
        params_file = tmp_path / "params.yaml"
        params_file.write_text(yaml.safe_dump({"scrape": params}))
        args = ["--out", str(tmp_path / "raw"), "--cache", str(tmp_path / "cache"),
                "--metrics", str(tmp_path / "scrape.json"), "--params", str(params_file)]
        proc = subprocess.Popen([sys.executable, "-m", "stages.scrape", *args], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        journal = tmp_path / "cache" / "urls.jsonl"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not journal.exists() or len(journal.read_text().splitlines()) < 4):
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        finished = {json.loads(line)["url"] for line in journal.read_text().splitlines()}
        assert 4 <= len(finished) < len(images)  # killed mid-run
        assert not (tmp_path / "raw").exists()  # the output appears whole or not at all
        # what an interrupted writer can leave behind: a half blob and a half-built output folder
        (tmp_path / "cache" / "blobs" / "0123.jpg.99.part").write_bytes(b"\xff\xd8\xff half")
        (tmp_path / ".raw.abc123.tmp").mkdir()

        scrape.main(args)

        for url in finished:
            assert server.hits[url.replace(server.url(""), "")] == 1, url  # not downloaded again
        assert all(server.hits[p] >= 1 for p in images)
    rows = read_rows(tmp_path / "raw" / "manifest.csv")
    assert [r["outcome"] for r in rows] == ["ok"] * len(images)
    assert len(list((tmp_path / "raw" / "images").iterdir())) == len(images)
    assert not list((tmp_path / "cache").rglob("*.part"))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".raw.")]


def test_an_unreachable_rof_repository_stops_with_a_one_line_reason(tmp_path, capsys):
    params = {"source": "rof", "web": {**QUICK_WEB, "connect_timeout_s": 1.0, "retries": 0},
              "rof": {"manifests": "https://github.com/octo/rof", "api_base": "http://127.0.0.1:9/api"}}
    with pytest.raises(SystemExit) as stopped:
        run_scrape(tmp_path, params)
    assert stopped.value.code == 2
    assert re.search(r"scrape.rof: http://127.0.0.1:9/api/repos/octo/rof: no default branch \(connection_error: ",
                     capsys.readouterr().err.splitlines()[-1])


def test_lowering_max_pixels_applies_to_images_already_in_the_download_cache(gallery_server, tmp_path):
    params = {"source": "gallery", "web": QUICK_WEB,
              "gallery": {"starts": [{"url": gallery_server.url("/masked/1.html"), "label": "masked"}]}}
    rows, _ = run_scrape(tmp_path, params)
    assert sorted(r["outcome"] for r in rows) == ["ok", "ok"]
    rows, _ = run_scrape(tmp_path, {**params, "max_pixels": 100_000}, out="raw2")  # the photos are 512 x 512
    assert [r["outcome"] for r in rows] == ["decompression_bomb"] * 2
    assert all("over the 100000 px limit (cached)" in r["detail"] for r in rows)


class HugeArray:
    """Pickles as numpy's own array constructor asked for a 1 TiB array: a few bytes that would allocate it all."""

    def __reduce__(self):
        from numpy._core.multiarray import _reconstruct

        return _reconstruct, (np.ndarray, (2**40,), b"b")


def test_a_manifest_asking_numpy_for_a_huge_array_is_refused_before_allocating():
    from faceocc.rof import parse_manifest

    with pytest.raises(pickle.UnpicklingError, match="over the 67108864 byte limit"):
        parse_manifest(pickle.dumps({0: {"url": "http://a/1.jpg", "faces": [HugeArray()]}}, protocol=2))


def test_a_gallery_label_outside_the_task_stops_the_scrape_naming_the_task_and_its_classes(tmp_path, capsys):
    starts = [{"url": "http://127.0.0.1:9/hats.html", "label": "hat"}]
    with pytest.raises(SystemExit) as stopped:
        run_scrape(tmp_path, {"source": "gallery", "gallery": {"starts": starts}, "web": QUICK_WEB})
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip() == ("scrape.gallery.starts: labels ['hat'] are not classes of the task "
                                               "occlusion4 (face, masked, sunglasses, mask_sunglasses)")
