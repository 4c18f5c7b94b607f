"""`faceocc serve` under load, on loopback: a real server (a `faceocc serve` subprocess) and clients at several
concurrency levels posting 640 px photos, against the same photos through the predictor in this process (what
`faceocc predict` does per photo), so the server's overhead is a ratio measured in one run."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import requests

from faceocc.demo import load_portrait

log = logging.getLogger("serve_benchmark")


@dataclass(frozen=True)
class ServeBenchmarkParams:
    concurrency: tuple[int, ...] = (1, 4, 16)   # clients sending at once
    requests_per_client: int = 8
    side: int = 640                             # photos are side x side pixels
    workers: int = 2                            # the server's (faceocc serve --workers)
    queue: int = 8                              # the server's --queue: 16 clients overrun 2 + 8 places
    max_retries: int = 20                       # a client retries a 503 after its Retry-After, up to this often
    direct_runs: int = 20                       # the predictor in this process, per photo timings
    startup_timeout_s: float = 180.0


def photos(side: int) -> list[bytes]:
    """JPEG photos of `side` px: a face, its mirror image, and a scene without a face."""
    out = []
    for name, flip in (("astronaut", False), ("astronaut", True), ("coffee", False)):
        image = cv2.resize(load_portrait(name), (side, side), interpolation=cv2.INTER_AREA)
        image = np.ascontiguousarray(image[:, ::-1]) if flip else image
        ok, data = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
        out.append(data.tobytes())
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: Path, task: str, p: ServeBenchmarkParams) -> tuple[subprocess.Popen, str]:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "faceocc.cli", "serve", "--model", str(model), "--task", task,
                               "--port", str(port), "--workers", str(p.workers), "--queue", str(p.queue),
                               "--device", "cpu"], stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + p.startup_timeout_s
    while True:
        try:
            if requests.get(f"{url}/healthz", timeout=2).ok:
                return server, url
        except requests.RequestException:
            pass
        if server.poll() is not None:
            raise RuntimeError(f"faceocc serve exited: {server.stderr.read().strip()[-500:]}")
        if time.monotonic() > deadline:
            server.kill()
            raise RuntimeError(f"faceocc serve did not answer in {p.startup_timeout_s:g} s")
        time.sleep(0.3)


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident memory (VmHWM), Linux only."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def client_run(url: str, data: list[bytes], count: int, max_retries: int, offset: int) -> list[tuple[float, int]]:
    """(seconds, status) per request of one client; a 503 is retried after its Retry-After, its wait counted."""
    out = []
    with requests.Session() as session:
        for k in range(count):
            body = data[(offset + k) % len(data)]
            start, retries = time.perf_counter(), 0
            while True:
                try:
                    response = session.post(f"{url}/v1/predict", data=body, timeout=120,
                                            headers={"content-type": "image/jpeg"})
                    status = response.status_code
                except requests.RequestException:
                    status = 0
                if status != 503 or retries >= max_retries:
                    break
                retries += 1
                out.append((0.0, 503))  # counted, not timed: the request it belongs to is timed in full
                time.sleep(float(response.headers.get("retry-after", 1)))
            out.append((time.perf_counter() - start, status))
    return out


def load_level(url: str, data: list[bytes], clients: int, p: ServeBenchmarkParams) -> dict:
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        runs = list(pool.map(lambda c: client_run(url, data, p.requests_per_client, p.max_retries, c),
                             range(clients)))
    wall = time.perf_counter() - start
    done = [s for run in runs for s, status in run if status == 200]
    statuses = [status for run in runs for _, status in run]
    return {"clients": clients, "requests": clients * p.requests_per_client, "ok": len(done),
            "answered_503": statuses.count(503), "errors": sum(s not in (200, 503) for s in statuses),
            "requests_per_s": round(len(done) / wall, 2), "latency_ms_p50": _ms(done, 50),
            "latency_ms_p95": _ms(done, 95), "wall_s": round(wall, 2)}


def _ms(seconds: list[float], q: int) -> float | None:
    return round(float(np.percentile(seconds, q)) * 1000, 1) if seconds else None


def direct_ms(predictor, data: list[bytes], runs: int) -> float:
    """Median ms per photo through the predictor in this process: decode + find + classify, as the CLI does."""
    from faceocc.images import decode_rgb

    times = []
    for k in range(runs + 2):
        body = data[k % len(data)]
        start = time.perf_counter()
        predictor.predict_image(decode_rgb(body), "photo")
        if k >= 2:  # the first calls warm the sessions up
            times.append(time.perf_counter() - start)
    return round(float(np.median(times)) * 1000, 1)


def benchmark(model: Path, task: str, p: ServeBenchmarkParams) -> dict:
    from faceocc.inference import FacePredictor

    data = photos(p.side)
    direct = direct_ms(FacePredictor.open(model, device="cpu"), data, p.direct_runs)
    server, url = start_server(model, task, p)
    try:
        for body in data:  # warm the server's sessions up, as the direct timing did
            requests.post(f"{url}/v1/predict", data=body, headers={"content-type": "image/jpeg"}, timeout=120)
        levels = []
        for clients in p.concurrency:
            levels.append(load_level(url, data, clients, p))
            log.info("%d clients: %s", clients, levels[-1])
        rss = peak_rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    one = next((lv for lv in levels if lv["clients"] == 1), None)
    return {"photo_px": p.side, "workers": p.workers, "queue": p.queue, "direct_ms_per_photo": direct,
            "server_overhead_ratio_at_1_client": round(one["latency_ms_p50"] / direct, 3) if one and direct else None,
            "server_peak_rss_mb": rss, "levels": {str(lv["clients"]): lv for lv in levels}}
