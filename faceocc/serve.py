"""`faceocc serve`: the released models behind an HTTP API and a web page (FastAPI on uvicorn).

    POST /v1/predict   an image (multipart field `file`, or the raw bytes with an image/* content type) ->
                       {"task", "model", "faces": the records `faceocc predict` writes, "ms"}
    POST /v1/annotate  the same image -> the photo with boxes and labels drawn (JPEG, or PNG with ?format=png)
    GET  /v1/models    each loaded model's card, its release figures and the source document's requirement
    GET  /healthz      liveness, the loaded tasks and the queue
    GET  /             the web page: a photo or the webcam, boxes drawn in each class's colour (no CDN)
    GET  /docs         the OpenAPI page (its scripts served by the app: fastapi-offline)

Concurrency: each task's predictor (finder + classifier) is loaded once and shared; requests run on a pool of
`workers` threads (ONNX Runtime and PyTorch release the GIL while they compute), each session on
`threads_per_worker` threads, so two workers keep two cores busy. At most `workers + queue` requests are admitted;
the next one is answered 503 with Retry-After at once, so a burst costs the clients a retry, not the server its
memory. The decoder rules are the CLI's (faceocc/images.py): an empty, truncated or non-image upload, or a
decompression bomb, is a 4xx naming the reason, never a 500.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from fastapi import Request, Response
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from faceocc.annotate import colour_of, draw_predictions
from faceocc.images import DEFAULT_MAX_PIXELS, ImageDecodeError, decode_rgb, encode_png
from faceocc.pose import add_pose
from faceocc.provenance import version
from faceocc.requirement import Requirement, misses
from faceocc.tasks import task_of_model

STATIC = Path(__file__).resolve().parent / "static"
IMAGE_TYPES = ("image/", "application/octet-stream")  # a raw-body upload; multipart is read from its `file` field


@dataclass(frozen=True)
class ServeSettings:
    workers: int = 2                       # requests computed at once (threads)
    threads_per_worker: int = 1            # ONNX Runtime / torch threads of each request's sessions
    queue: int = 8                         # admitted requests waiting for a worker; beyond: 503
    retry_after_s: int = 1
    max_upload_bytes: int = 20_000_000
    max_pixels: int = DEFAULT_MAX_PIXELS
    attention_yaw: float = 30.0            # `faceocc predict --pose`'s defaults
    attention_pitch: float = 20.0


class Busy(Exception):
    """Every worker is busy and the queue is full."""


class Admission:
    """A counter of admitted requests: `workers + queue` at most, refused at once past that (thread-safe)."""

    def __init__(self, limit: int):
        self.limit, self.in_flight, self._lock = limit, 0, threading.Lock()

    def __enter__(self):
        with self._lock:
            if self.in_flight >= self.limit:
                raise Busy
            self.in_flight += 1
        return self

    def __exit__(self, *exc) -> None:
        with self._lock:
            self.in_flight -= 1


class Service:
    """The loaded predictors (task -> FacePredictor), the worker pool and the admission counter."""

    def __init__(self, predictors: dict, settings: ServeSettings = ServeSettings(),
                 model_dirs: dict[str, Path] | None = None):
        if not predictors:
            raise ValueError("no model to serve")
        self.predictors, self.settings, self.model_dirs = predictors, settings, model_dirs or {}
        self.default_task = next(iter(predictors))
        self.pool = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="faceocc-serve")
        self.admission = Admission(settings.workers + settings.queue)
        for predictor in predictors.values():
            predictor.finder  # noqa: B018  load the detector now, not on the first request

    def predictor(self, task: str | None):
        name = task or self.default_task
        if name not in self.predictors:
            raise KeyError(f"task {name!r} is not served here; loaded: {', '.join(self.predictors)}")
        return name, self.predictors[name]

    def predict(self, image: np.ndarray, task: str | None, pose: bool, name: str = "upload") -> dict:
        """The records `faceocc predict` writes for one decoded photo (+ pose when asked), and the time taken."""
        task_name, predictor = self.predictor(task)
        start = time.perf_counter()
        records = predictor.predict_image(image, name)
        if pose:
            card = predictor.card
            masked = getattr(task_of_model(card.task, card.classes), "masked_classes", ())
            records = add_pose(records, (image.shape[1], image.shape[0]), self.settings.attention_yaw,
                               self.settings.attention_pitch, masked_labels=masked)
        return {"task": task_name, "model": model_name(predictor), "faces": records,
                "ms": round((time.perf_counter() - start) * 1000, 2)}

    def annotate(self, image: np.ndarray, task: str | None, pose: bool, fmt: str) -> bytes:
        result = self.predict(image, task, pose)
        _, predictor = self.predictor(task)
        drawn = draw_predictions(image, result["faces"], predictor.classes)
        return encode_png(drawn) if fmt == "png" else encode_jpeg(drawn)

    def models(self) -> list[dict]:
        return [model_record(task, p, self.model_dirs.get(task)) for task, p in self.predictors.items()]

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def model_name(predictor) -> str:
    card = predictor.card
    return f"{card.backbone} {card.variant}"


def model_record(task: str, predictor, folder: Path | None = None) -> dict:
    """What /v1/models says of one model: its card, its release's figures (release.json in its folder, when it is
    a release) against the source document's requirement, and the colours the page draws its classes in."""
    import json

    card = predictor.card
    release = {}
    if folder is not None and (folder / "release.json").is_file():
        release = json.loads((folder / "release.json").read_text())
    figures = release.get("model", {})
    req = Requirement()
    test = release.get("test") or {}
    record = {"task": task, "name": model_name(predictor), "faceocc_version": version(),
              "card": json.loads(card.to_json()),
              "colours": {c: list(colour_of(c, card.classes)) for c in card.classes},
              "finder": predictor.settings.to_dict(),
              "requirement": asdict(req)}
    if figures:
        record["release"] = {"size_mb": figures.get("size_mb"), "latency_ms_p50": figures.get("latency_ms_p50"),
                             "cpu": figures.get("cpu"), "test_accuracy": test.get("accuracy"),
                             "test_macro_f1": test.get("macro_f1"), "made": release.get("made")}
        if None not in (figures.get("size_mb"), figures.get("latency_ms_p50"), test.get("accuracy")):
            record["release"]["misses_requirement"] = misses(req, figures["size_mb"], figures["latency_ms_p50"],
                                                             test["accuracy"])
    return record


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    import cv2

    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(image[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


def create_app(service: Service):
    """The ASGI app around a loaded Service."""
    app = FastAPIOffline(title="faceocc", version=version(),
                         description="Face occlusion and mask-wearing classification: every face in a photo, "
                                     "its box, landmarks, label and class scores.")
    app.state.service = service
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def problem(status: int, reason: str, **headers) -> JSONResponse:
        return JSONResponse({"error": reason}, status_code=status, headers=headers or None)

    async def image_of(request: Request) -> np.ndarray | JSONResponse:
        """The uploaded image decoded, or the 4xx response that says why not."""
        kind = request.headers.get("content-type", "")
        if not kind.startswith(("multipart/form-data", *IMAGE_TYPES)):
            return problem(415, f"content type {kind or 'none'}: send multipart/form-data with a `file` field, "
                                "or the image bytes as image/*")
        limit = service.settings.max_upload_bytes
        framed = limit + 65536 if kind.startswith("multipart/") else limit  # the multipart framing allowed for
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > framed:
            return problem(413, f"upload of {int(declared)} bytes is over the {limit} byte limit")
        body = bytearray()
        async for chunk in request.stream():  # a chunked body has no length to check first: count as it comes
            body += chunk
            if len(body) > framed:
                return problem(413, f"upload over the {limit} byte limit")
        if kind.startswith("multipart/"):
            request._body = bytes(body)  # Starlette's cache of the body: form() parses these bytes, read once
            form = await request.form(max_files=1, max_fields=8)
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                return problem(422, "multipart upload without a `file` field")
            data = await upload.read()
        else:
            data = bytes(body)
        if len(data) > limit:
            return problem(413, f"upload over the {limit} byte limit")
        try:
            return decode_rgb(data, service.settings.max_pixels)
        except ImageDecodeError as err:
            status = 413 if str(err).startswith("decompression bomb") else 422
            return problem(status, str(err))

    async def run(call, *args):
        try:
            with service.admission:
                return await asyncio.get_running_loop().run_in_executor(service.pool, call, *args)
        except Busy:
            return problem(503, f"busy: {service.admission.limit} requests in progress or queued; retry",
                           **{"Retry-After": str(service.settings.retry_after_s)})
        except KeyError as err:
            return problem(404, err.args[0])

    @app.post("/v1/predict", summary="every face in one photo: box, landmarks, label, scores (+ pose)")
    async def predict(request: Request, task: str | None = None, pose: bool = False):
        image = await image_of(request)
        if isinstance(image, JSONResponse):
            return image
        return await run(service.predict, image, task, pose)

    @app.post("/v1/annotate", summary="the photo with every face's box and label drawn",
              response_class=Response)
    async def annotate(request: Request, task: str | None = None, pose: bool = False, format: str = "jpeg"):
        if format not in ("jpeg", "png"):
            return problem(422, f"format {format!r}: jpeg or png")
        image = await image_of(request)
        if isinstance(image, JSONResponse):
            return image
        data = await run(service.annotate, image, task, pose, format)
        if isinstance(data, JSONResponse):
            return data
        return Response(data, media_type=f"image/{format}")

    @app.get("/v1/models", summary="the loaded models: cards, release figures, the requirement")
    async def models():
        return service.models()

    @app.get("/healthz", summary="liveness and the queue")
    async def healthz():
        return {"status": "ok", "tasks": list(service.predictors), "in_flight": service.admission.in_flight,
                "admitted_at_most": service.admission.limit, "version": version()}

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    return app
