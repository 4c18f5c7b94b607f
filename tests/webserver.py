"""A real HTTP server on 127.0.0.1 for the web-acquisition tests, with a route table and a hit counter.

Routes map a path (query string included when the route names one) to a `Reply`, or to a function of the
hit count returning one, so a test can script "500 first, then the image" or "429 with Retry-After, then ok".
Run as `python -m tests.webserver DIR` to serve DIR as a paginated gallery per label (see `gallery_site`), e.g.
for trying `dvc exp run -S scrape.source=gallery` by hand.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0              # sleep before answering (slow endpoints)
    send_length: bool = True          # False: no Content-Length, body ends when the connection closes
    trickle_s: float = 0.0            # send the body a byte at a time, this long apart (a server that never ends)


Route = Reply | Callable[[int], Reply]


class LocalServer:
    def __init__(self, routes: dict[str, Route] | None = None):
        self.routes: dict[str, Route] = dict(routes or {})
        self.hits: Counter[str] = Counter()
        self.user_agents: set[str] = set()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self):
                path_only = self.path.split("?")[0]
                with server._lock:
                    server.hits[self.path] += 1
                    if path_only != self.path:
                        server.hits[path_only] += 1
                    count = server.hits[self.path]
                    server.user_agents.add(self.headers.get("User-Agent", ""))
                route = server.routes.get(self.path, server.routes.get(path_only))
                reply = Reply(404, b"not found") if route is None else (route(count) if callable(route) else route)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.content_type)
                    if reply.send_length:
                        self.send_header("Content-Length", str(len(reply.body)))
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    if reply.trickle_s:
                        for k in range(len(reply.body)):
                            self.wfile.write(reply.body[k:k + 1])
                            self.wfile.flush()
                            time.sleep(reply.trickle_s)
                    else:
                        self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout or size cap): expected in these tests

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> LocalServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def image_reply(data: bytes, suffix: str) -> Reply:
    types = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp",
             ".bmp": "image/bmp"}
    return Reply(200, data, types.get(suffix.lower(), "application/octet-stream"))


def gallery_site(folder: Path, per_page: int = 20) -> dict[str, Route]:
    """Routes serving <folder>/<label>/* as /<label>/page1.html, page2.html ... with rel=next links."""
    routes: dict[str, Route] = {"/robots.txt": Reply(200, b"User-agent: *\nDisallow: /private/\n", "text/plain")}
    for label_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = sorted(p for p in label_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))
        pages = [files[i:i + per_page] for i in range(0, len(files), per_page)] or [[]]
        for number, chunk in enumerate(pages, 1):
            imgs = "".join(f'<img src="/img/{label_dir.name}/{p.name}" alt="">' for p in chunk)
            nav = f'<a rel="next" href="page{number + 1}.html">Next</a>' if number < len(pages) else ""
            html = f"<html><body><h1>{label_dir.name}</h1>{imgs}<nav>{nav}</nav></body></html>"
            routes[f"/{label_dir.name}/page{number}.html"] = Reply(200, html.encode())
            for path in chunk:
                routes[f"/img/{label_dir.name}/{path.name}"] = image_reply(path.read_bytes(), path.suffix)
    return routes


def main() -> None:
    parser = argparse.ArgumentParser(description="serve a folder of <label>/ images as paginated galleries")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--per-page", type=int, default=20)
    args = parser.parse_args()
    server = LocalServer(gallery_site(args.folder, args.per_page))
    labels = sorted(p.name for p in args.folder.iterdir() if p.is_dir())
    print("start pages:", ", ".join(server.url(f"/{label}/page1.html") for label in labels), flush=True)
    with server:
        server.thread.join()


if __name__ == "__main__":
    main()
