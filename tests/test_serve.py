"""faceocc serve: the HTTP API in-process (Starlette's TestClient) and as a real uvicorn subprocess on 127.0.0.1."""

import io
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import write_untrained_model
from PIL import Image

from faceocc import CLASSES
from faceocc.images import encode_png

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from faceocc.inference import FacePredictor  # noqa: E402
from faceocc.serve import Busy, ServeSettings, Service, create_app  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return write_untrained_model(tmp_path_factory.mktemp("model"), CLASSES, task="occlusion4")


@pytest.fixture(scope="module")
def service(model_dir):
    service = Service({"occlusion4": FacePredictor.open(model_dir, device="cpu", threads=1)},
                      ServeSettings(workers=2, queue=2, max_upload_bytes=2_000_000, max_pixels=4_000_000))
    yield service
    service.close()


@pytest.fixture(scope="module")
def client(service):
    with TestClient(create_app(service)) as client:
        yield client


def _jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def test_a_photo_gets_the_records_faceocc_predict_writes(client, model_dir, astronaut, tmp_path):
    response = client.post("/v1/predict", files={"file": ("astronaut.jpg", _jpeg(astronaut), "image/jpeg")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["task"] == "occlusion4" and body["model"] == "mobilenet_v2 fp32" and body["ms"] > 0
    (face,) = body["faces"]
    assert set(face) >= {"box", "detection_score", "landmarks", "label", "scores"}
    assert face["label"] in CLASSES and abs(sum(face["scores"].values()) - 1) < 1e-3

    # the CLI on the same file: the same face, box and label
    (tmp_path / "astronaut.jpg").write_bytes(_jpeg(astronaut))
    cli = subprocess.run([sys.executable, "-m", "faceocc.cli", "predict", str(tmp_path / "astronaut.jpg"),
                          "--model", str(model_dir), "--device", "cpu"], capture_output=True, text=True, cwd=ROOT)
    (line,) = cli.stdout.splitlines()
    printed = json.loads(line)
    assert printed["box"] == face["box"] and printed["label"] == face["label"]


def test_the_raw_bytes_of_an_image_work_as_an_upload_and_pose_adds_angles(client, astronaut):
    response = client.post("/v1/predict?pose=true", content=encode_png(astronaut),
                           headers={"content-type": "image/png"})
    assert response.status_code == 200
    (face,) = response.json()["faces"]
    assert set(face["pose"]) >= {"yaw", "pitch", "roll", "attention", "axes"}


def test_annotate_returns_the_photo_with_its_face_drawn(client, astronaut):
    for fmt, magic in (("jpeg", b"\xff\xd8"), ("png", b"\x89PNG")):
        response = client.post(f"/v1/annotate?format={fmt}", content=_jpeg(astronaut),
                               headers={"content-type": "image/jpeg"})
        assert response.status_code == 200 and response.headers["content-type"] == f"image/{fmt}"
        assert response.content.startswith(magic)
        drawn = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))
        assert drawn.shape == astronaut.shape and np.abs(drawn.astype(int) - astronaut).max() > 100  # a box


def test_a_photo_without_a_face_says_so(client, faceless):
    response = client.post("/v1/predict", content=encode_png(faceless), headers={"content-type": "image/png"})
    assert response.status_code == 200
    (record,) = response.json()["faces"]
    assert record["label"] is None and record["reason"]


@pytest.mark.parametrize("name, data, status, reason", [
    ("empty", b"", 422, "empty file"),
    ("text", b"hello, not a picture", 422, "not an image"),
    ("truncated", None, 422, "corrupt image"),
    ("bomb", None, 413, "decompression bomb"),
    ("too large", b"\xff\xd8" + b"\0" * 2_100_000, 413, "byte limit"),
])
def test_a_bad_upload_is_a_4xx_that_names_the_reason(client, astronaut, name, data, status, reason):
    if name == "truncated":
        data = _jpeg(astronaut)[:5000]
    elif name == "bomb":  # 3000 x 3000 px is over this service's 4 Mpx limit; a small file all the same
        buffer = io.BytesIO()
        Image.new("L", (3000, 3000)).save(buffer, "PNG")
        data = buffer.getvalue()
    response = client.post("/v1/predict", content=data, headers={"content-type": "image/png"})
    assert response.status_code == status and reason in response.json()["error"], (name, response.text)


def test_a_wrong_content_type_or_an_unknown_task_is_refused(client, astronaut):
    response = client.post("/v1/predict", json={"image": "astronaut"})
    assert response.status_code == 415 and "multipart/form-data" in response.json()["error"]
    response = client.post("/v1/predict", files={"photo": ("a.png", encode_png(astronaut), "image/png")})
    assert response.status_code == 422 and "`file` field" in response.json()["error"]
    response = client.post("/v1/predict?task=mask_wearing", content=encode_png(astronaut),
                           headers={"content-type": "image/png"})
    assert response.status_code == 404 and "not served here" in response.json()["error"]


def test_models_health_page_and_docs_are_served_without_anything_from_elsewhere(client):
    (model,) = client.get("/v1/models").json()
    assert model["task"] == "occlusion4" and model["card"]["classes"] == list(CLASSES)
    assert set(model["colours"]) == set(CLASSES) and model["requirement"]["max_latency_ms"] > 0
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["tasks"] == ["occlusion4"] and health["in_flight"] == 0
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert client.get("/static/app.js").status_code == 200
    docs = client.get("/docs")
    assert docs.status_code == 200 and client.get("/openapi.json").json()["paths"].keys() >= {
        "/v1/predict", "/v1/annotate", "/v1/models", "/healthz"}
    for html in (page.text, docs.text):  # every script and style the pages load is the app's own
        assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html


def test_concurrent_requests_all_succeed(client, astronaut):
    data = _jpeg(astronaut)
    results = []

    def one():
        results.append(client.post("/v1/predict", content=data, headers={"content-type": "image/jpeg"}).status_code)

    threads = [threading.Thread(target=one) for _ in range(4)]  # workers 2 + queue 2: all admitted
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 4


def test_past_the_workers_and_the_queue_a_request_is_answered_503_with_retry_after(client, service, astronaut):
    held = [service.admission.__enter__() for _ in range(service.admission.limit)]  # every place taken
    try:
        response = client.post("/v1/predict", content=encode_png(astronaut), headers={"content-type": "image/png"})
        assert response.status_code == 503 and response.headers["retry-after"] == "1"
        with pytest.raises(Busy):
            service.admission.__enter__()
    finally:
        for place in held:
            place.__exit__(None, None, None)
    assert client.post("/v1/predict", content=encode_png(astronaut),
                       headers={"content-type": "image/png"}).status_code == 200


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_faceocc_serve_runs_a_real_server_on_loopback(model_dir, astronaut):
    import httpx

    with _Server(model_dir) as server:
        response = httpx.post(f"{server.url}/v1/predict", files={"file": ("a.jpg", _jpeg(astronaut))}, timeout=60)
        assert response.status_code == 200 and len(response.json()["faces"]) == 1


def test_serve_refuses_a_model_without_exactly_one_task(model_dir, capsys):
    from faceocc import cli

    assert cli.main(["serve", "--model", str(model_dir), "--task", "occlusion4", "--task", "mask_wearing"]) == 2
    assert "give exactly one --task" in capsys.readouterr().err


def _browser(*flags: str):
    """Headless Chromium driven by Selenium, or a skip saying what is missing (docs/serve.md: how CI gets one)."""
    import shutil

    pytest.importorskip("selenium", reason="selenium is a dev dependency (make setup installs it)")
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip("no Chromium and chromedriver here (Debian: apt-get install chromium chromium-driver)")
    from selenium.webdriver import Chrome, ChromeOptions
    from selenium.webdriver.chrome.service import Service as DriverService

    options = ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", *flags):
        options.add_argument(flag)
    return Chrome(options=options, service=DriverService(executable_path=driver))


class _Server:
    """`faceocc serve` as a subprocess on a free loopback port, up when the block starts, stopped after it."""

    def __init__(self, model_dir):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen([sys.executable, "-m", "faceocc.cli", "serve", "--model", str(model_dir),
                                         "--task", "occlusion4", "--port", str(self.port), "--device", "cpu"],
                                        cwd=ROOT, stderr=subprocess.PIPE, text=True)

    def __enter__(self):
        import httpx

        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            assert self.process.poll() is None and time.monotonic() < deadline, "the server did not come up"
            time.sleep(0.5)

    def __exit__(self, *exc):
        self.process.terminate()
        self.process.wait(timeout=30)


def test_the_page_in_a_real_browser_uploads_a_photo_and_draws_its_face(model_dir, astronaut, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser = _browser()
    server = _Server(model_dir)
    port = server.port
    try:
        server.__enter__()  # inside the try: a server that never comes up is stopped all the same
        photo = tmp_path / "astronaut.jpg"
        photo.write_bytes(_jpeg(astronaut))
        browser.get(f"http://127.0.0.1:{port}/")
        WebDriverWait(browser, 30).until(lambda b: b.find_element(By.ID, "task").get_attribute("value"))
        browser.find_element(By.ID, "file").send_keys(str(photo))
        browser.find_element(By.ID, "send").click()
        canvas = browser.find_element(By.ID, "view")
        WebDriverWait(browser, 60).until(lambda b: canvas.get_attribute("data-faces") is not None)
        assert canvas.get_attribute("data-faces") == "1"
        assert canvas.get_attribute("data-labels") in CLASSES
        assert int(canvas.get_attribute("width")) == astronaut.shape[1]  # the photo, drawn at its own size
        rows = browser.find_elements(By.CSS_SELECTOR, "#faces tbody tr")
        assert len(rows) == 1 and canvas.get_attribute("data-labels") in rows[0].text
        # everything the page loaded came from the app
        loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert loaded and all(url.startswith(f"http://127.0.0.1:{port}/") for url in loaded), loaded
        # head pose asked: the face's row gives its angles
        browser.find_element(By.ID, "pose").click()
        browser.execute_script("document.getElementById('view').removeAttribute('data-faces')")
        browser.find_element(By.ID, "send").click()
        WebDriverWait(browser, 60).until(lambda b: canvas.get_attribute("data-faces") is not None)
        assert "yaw" in browser.find_element(By.CSS_SELECTOR, "#faces tbody tr").text
    finally:
        browser.quit()
        server.__exit__()


def test_the_page_sends_webcam_frames_a_few_times_a_second(model_dir):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    # Chromium's fake camera: a moving test pattern, no face in it
    browser = _browser("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream")
    try:
        with _Server(model_dir) as server:
            browser.get(f"{server.url}/")
            WebDriverWait(browser, 30).until(lambda b: b.find_element(By.ID, "task").get_attribute("value"))
            browser.find_element(By.ID, "webcam").click()
            canvas = browser.find_element(By.ID, "view")
            WebDriverWait(browser, 60).until(lambda b: canvas.get_attribute("data-faces") is not None)
            assert canvas.get_attribute("data-faces") == "0"  # a frame went to the server and came back
            time.sleep(3)
            health = json.loads(browser.execute_script(
                "const r = new XMLHttpRequest(); r.open('GET', '/healthz', false); r.send(); return r.responseText"))
            assert health["in_flight"] <= 1  # one frame in flight at a time
            browser.find_element(By.ID, "webcam").click()
            assert "stopped" in browser.find_element(By.ID, "status").text
    finally:
        browser.quit()
