"""The HTTP API: `create_app(run, features=...)` → a FastAPI app with /predict, /embed, /similar, /health and an
upload page; decoding in threads, the model behind a micro-batcher, bad uploads answered with 4xx JSON.

(No `from __future__ import annotations` here: FastAPI reads the endpoints' annotations at runtime.)"""


import asyncio
import io
import os
from dataclasses import dataclass

import numpy as np

from .._version import __version__
from ..data.decode import DecodeError, load_image
from ..errors import TransferkitError, install_hint
from .batcher import MicroBatcher, QueueFull


ENGINES = ("local", "ray")


DECODES = max(1, min(4, os.cpu_count() or 1))  # concurrent decodes: one per core (PIL releases the GIL)


@dataclass(frozen=True)
class Limits:
    """What one request, and all of them together, may ask of the server (docs/serve.md lists each with its flag).

    max_pixels bounds one decode's memory: a 40-megapixel RGBA PNG decodes into 160 MB, about 0.5 GB with the
    conversions (JPEGs are decoded reduced, in draft mode); max_decodes of them run at once.
    """

    max_upload_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000
    max_files: int = 16
    timeout_s: float = 30.0
    max_batch: int = 32
    max_wait_ms: float = 5.0
    max_queue: int = 256
    top: int = 5
    max_decodes: int = DECODES
    max_gradcam: int = 2  # Grad-CAMs waiting or running; more get 503 (each takes the model from /predict)
    read_timeout_s: float = 10.0  # silence allowed while headers or a body arrive
    keep_alive_s: float = 5.0  # an idle kept-alive connection is closed after this
    max_connections: int = 64  # open connections and requests; more get 503

    @property
    def max_body(self) -> int:
        """The largest request body: `max_files` uploads of `max_upload_bytes`, plus the multipart framing."""
        return self.max_files * self.max_upload_bytes + 64 * 1024


class BadUpload(Exception):
    """An upload the server will not run: `status` (4xx) and a message naming the file and the fix."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


WHERE = {"body": "form field", "query": "query parameter", "path": "path parameter", "header": "header"}


def validation_message(errors: list[dict]) -> str:
    """One line from FastAPI's validation errors, naming each field and what is wrong — never the input itself
    (a client's 100 kB is not echoed back).

    Example:
    >>> validation_message([{"loc": ("query", "k"), "msg": "Input should be a valid integer"}])
    "query parameter 'k': Input should be a valid integer"
    """
    parts = []
    for err in errors[:5]:
        loc = [str(x) for x in err.get("loc", ())]
        where = WHERE.get(loc[0], loc[0]) if loc else "request"
        name = ".".join(loc[1:]) if len(loc) > 1 else ""
        msg = str(err.get("msg", "invalid"))
        if err.get("type") == "missing" and where == "form field":
            msg = "missing; send the image as multipart form data, e.g. curl -F file=@cat.jpg"
        parts.append(f"{where} {name!r}: {msg}"[:200] if name else f"{where}: {msg}"[:200])
    more = len(errors) - 5
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def create_app(run=None, *, features=None, limits: Limits = Limits(), engine: str = "local", replicas: int = 2,
               address: str | None = None, hosts: set[str] | None = None, docs: bool = False):
    """The FastAPI app serving a trained run (`run`) and/or a feature set (`features`).

    `engine="ray"` runs the classifier as a Ray Serve deployment of `replicas` replicas (on a cluster at
    `address`, or a local Ray instance started and stopped with the app); the HTTP app, decoding and limits stay
    here. `hosts`: the Host header values answered (`guard.allowed_hosts`; None: any). `docs`: serve the
    OpenAPI page at /docs (its Swagger UI loads from a CDN, so it is off unless asked).

    Example:
    >>> app = create_app("runs/lite0-features", features="features/")  # doctest: +SKIP
    >>> uvicorn.run(app, host="127.0.0.1", port=8000)
    """
    try:
        from fastapi import FastAPI, File, Request, UploadFile
        from fastapi.exceptions import RequestValidationError
        from starlette.exceptions import HTTPException as StarletteHTTPException
        from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
        from starlette.concurrency import run_in_threadpool
    except ImportError:
        raise TransferkitError(f"transferkit serve needs FastAPI and uvicorn: {install_hint('serve')}.") from None
    from contextlib import asynccontextmanager

    from concurrent.futures import ThreadPoolExecutor

    from ..templates import render_template, script_json, static_file
    from .guard import Guard
    from .models import Classifier, Embedder

    if run is None and features is None:
        raise TransferkitError("Pass a run folder to serve its classifier, --features DIR to serve a feature set, "
                               "or both.")
    classifier = Classifier(run, batch_size=limits.max_batch) if run is not None else None
    embedder = Embedder(features, batch_size=limits.max_batch) if features is not None else None
    if engine not in ENGINES:
        raise TransferkitError(f"`engine` must be one of {list(ENGINES)}. Received: engine={engine!r}")
    batchers = {name: MicroBatcher(fn, max_batch=limits.max_batch, max_wait_ms=limits.max_wait_ms,
                                   max_queue=limits.max_queue)
                for name, fn in (("predict", classifier), ("embed", embedder)) if fn is not None}
    if engine == "ray" and classifier is not None:
        from .ray_engine import RayRunner

        local = batchers["predict"]  # kept for Grad-CAM, which needs the model's gradients here
        batchers["predict"] = RayRunner(run, replicas=replicas, max_batch=limits.max_batch,
                                        max_wait_ms=limits.max_wait_ms, address=address)
        batchers["predict"].worker = local.worker

    @asynccontextmanager
    async def lifespan(app):
        for b in batchers.values():
            await b.start()
        yield
        for b in batchers.values():  # drain what is in flight
            await b.stop()
        decoders.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="transferkit", version=__version__, lifespan=lifespan,
                  description="Class probabilities, feature vectors and similar images of uploaded images.",
                  docs_url="/docs" if docs else None, redoc_url=None, openapi_url="/openapi.json" if docs else None)
    app.add_middleware(Guard, max_body=limits.max_body, read_timeout=limits.read_timeout_s, hosts=hosts)
    decoders = ThreadPoolExecutor(limits.max_decodes, thread_name_prefix="transferkit-decode")
    gradcam_slots = asyncio.Semaphore(limits.max_gradcam)

    @app.exception_handler(BadUpload)
    async def bad_upload(request: Request, exc: BadUpload):
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        return JSONResponse({"error": validation_message(exc.errors())}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def framework_error(request: Request, exc: StarletteHTTPException):
        # errors the framework makes (unknown path, wrong method, a body that is not multipart): the same shape
        return JSONResponse({"error": str(exc.detail)[:300]}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(QueueFull)
    async def queue_full(request: Request, exc: QueueFull):
        return JSONResponse({"error": str(exc) or f"The server is busy ({limits.max_queue} images waiting); "
                             "retry shortly."}, status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(asyncio.TimeoutError)
    async def too_slow(request: Request, exc: asyncio.TimeoutError):
        return JSONResponse({"error": f"The server is busy: no answer within {limits.timeout_s:g} s (--timeout); "
                             "retry shortly."}, status_code=503, headers={"Retry-After": "1"})

    async def decode(upload, config) -> np.ndarray:
        name = upload.filename or "upload"
        data = await upload.read(limits.max_upload_bytes + 1)
        if len(data) > limits.max_upload_bytes:
            raise BadUpload(413, f"{name}: larger than {limits.max_upload_bytes // (1024 * 1024)} MiB; send a "
                                 "smaller image.")
        if not data:
            raise BadUpload(400, f"{name}: the file is empty.")

        def run_decode():
            return load_image(io.BytesIO(data), config.size, crop_fraction=config.crop_fraction,
                              resample=config.resample, max_pixels=limits.max_pixels)

        try:  # at most `max_decodes` at once: each may hold a full-resolution image
            return await asyncio.get_running_loop().run_in_executor(decoders, run_decode)
        except DecodeError as exc:
            status = 413 if "decompression bomb" in exc.reason else 415 if "not an image" in exc.reason else 400
            raise BadUpload(status, f"{name}: {exc.reason}.") from None

    async def run_model(kind: str, image: np.ndarray):
        try:
            return await asyncio.wait_for(batchers[kind].submit(image), limits.timeout_s)
        except asyncio.TimeoutError:
            raise QueueFull() from None

    def need(kind: str):
        if kind not in batchers:
            what = "a run folder (transferkit serve RUN)" if kind == "predict" else "--features DIR"
            raise BadUpload(404, f"This server has no {'classifier' if kind == 'predict' else 'feature set'}; "
                                 f"start it with {what}.")

    async def one_file(request: Request):
        count = len((await request.form()).getlist("file"))
        if count > 1:
            raise BadUpload(400, f"{count} files in the `file` field; this endpoint takes one (/predict takes "
                                 "several).")

    def check_count(files):
        if len(files) > limits.max_files:
            raise BadUpload(413, f"{len(files)} files in one request; send at most {limits.max_files}.")

    @app.post("/predict", summary="Class probabilities of one or more images (multipart field `file`)")
    async def predict(file: list[UploadFile] = File(...)):
        need("predict")
        check_count(file)
        images = [await decode(f, classifier.input) for f in file]
        probs = await asyncio.gather(*(run_model("predict", im) for im in images))
        out = []
        for f, p in zip(file, probs):
            order = np.argsort(-p, kind="stable")[:limits.top]
            out.append({"file": f.filename, "probabilities": {c: float(v) for c, v in zip(classifier.class_names, p)},
                        "top": [{"class": classifier.class_names[i], "probability": float(p[i])} for i in order]})
        return {"model": classifier.name, "transferkit_version": __version__, "predictions": out}

    @app.post("/gradcam", summary="Where the model looked: the Grad-CAM of the predicted (or given) class")
    async def gradcam(request: Request, file: UploadFile = File(...), class_name: str | None = None):
        need("predict")
        await one_file(request)
        if class_name is not None and class_name not in classifier.class_names:
            raise BadUpload(422, f"class_name must be one of {classifier.class_names}. Received: {class_name!r}")
        if gradcam_slots.locked():  # bounded: a burst of Grad-CAMs cannot queue up in front of /predict
            raise QueueFull(f"The server is busy ({limits.max_gradcam} Grad-CAMs in progress); retry shortly.")
        async with gradcam_slots:
            image = await decode(file, classifier.input)
            target = None if class_name is None else classifier.class_names.index(class_name)
            loop = asyncio.get_running_loop()
            # the model's own worker thread: Grad-CAM never runs beside a batch on the same model
            chosen, overlay = await asyncio.wait_for(loop.run_in_executor(
                batchers["predict"].worker, classifier.gradcam, image, target), limits.timeout_s)
        return {"file": file.filename, "class": classifier.class_names[chosen], "overlay": overlay}

    @app.post("/embed", summary="The feature vector of an image, as the feature set's were extracted")
    async def embed(request: Request, file: UploadFile = File(...)):
        need("embed")
        await one_file(request)
        vector = await run_model("embed", await decode(file, embedder.input))
        return {"file": file.filename, "layer": embedder.index.layer, "dim": int(vector.size),
                "vector": vector.tolist(), "transferkit_version": __version__}

    @app.post("/similar", summary="The k images of the feature set most like an uploaded image")
    async def similar(request: Request, file: UploadFile = File(...), k: int = 8):
        need("embed")
        await one_file(request)
        if not 1 <= k <= 100:
            raise BadUpload(422, f"k must be from 1 to 100. Received: k={k}")
        vector = await run_model("embed", await decode(file, embedder.input))
        found = await run_in_threadpool(embedder.similar, vector, k)
        for item in found:
            item["image"] = f"/image/{item.pop('row')}"
        return {"file": file.filename, "neighbours": found, "transferkit_version": __version__}

    @app.get("/image/{row}", summary="An image of the feature set (files under the set's root only)")
    async def image(row: int):
        need("embed")
        try:
            return FileResponse(embedder.image_file(row))
        except TransferkitError as exc:
            raise BadUpload(404, str(exc)) from None

    @app.get("/health", summary="Whether the server runs, and what it serves")
    async def health():
        return {"status": "ok", "transferkit_version": __version__,
                "classifier": classifier.describe() if classifier else None,
                "features": len(embedder.index) if embedder else None,
                "batches": {k: b.batches for k, b in batchers.items()}}

    page_info = script_json({"classes": classifier.class_names if classifier else [],
                             "predict": classifier is not None, "similar": embedder is not None})

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return render_template("serve.html", INFO=page_info)

    script = static_file("serve.js")

    @app.get("/page.js", include_in_schema=False)
    async def page_script():
        return Response(script, media_type="text/javascript")

    return app


def serve(run=None, *, features=None, host: str = "127.0.0.1", port: int = 8000, limits: Limits = Limits(),
          quiet: bool = False, engine: str = "local", replicas: int = 2, address: str | None = None,
          sock=None, docs: bool = False) -> None:
    """Run the server until interrupted (SIGTERM/SIGINT drain the requests in flight).

    The address is bound first (`address.bind`: a port in use is an `AddressError` before the model loads);
    pass `sock`, a socket bound already, to skip that.
    """
    import uvicorn

    from .address import bind

    from .guard import allowed_hosts, timed_h11

    sock = sock or bind(host, port)
    hosts = allowed_hosts(host, sock.getsockname()[1])
    app = create_app(run, features=features, limits=limits, engine=engine, replicas=replicas, address=address,
                     hosts=hosts, docs=docs)
    return_memory_to_the_system()
    config = uvicorn.Config(app, log_level="warning" if quiet else "info", http=timed_h11(limits.read_timeout_s),
                            timeout_graceful_shutdown=int(limits.timeout_s), timeout_keep_alive=limits.keep_alive_s,
                            limit_concurrency=limits.max_connections, server_header=False)
    uvicorn.Server(config).run(sockets=[sock])


def return_memory_to_the_system() -> None:
    """glibc keeps freed large buffers for reuse once its mmap threshold has grown; a fixed 1 MiB threshold makes
    every decoded image's buffer its own mapping, returned to the system when freed (Linux/glibc; else nothing)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass
