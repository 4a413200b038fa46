"""The HTTP API: `create_app(run, features=...)` assembles the FastAPI app — the state (`state.ServerState`), the
routers (`routes`), the guard (`guard.Guard`) and one JSON shape for every error — and `serve` runs it."""


import asyncio
import os
from dataclasses import dataclass

from .._version import __version__
from ..errors import TransferkitError, install_hint
from .batcher import QueueFull


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
    >>> uvicorn.run(app, host="127.0.0.1", port=8000)  # doctest: +SKIP
    """
    try:
        from fastapi import FastAPI
    except ImportError:
        raise TransferkitError(f"transferkit serve needs FastAPI and uvicorn: {install_hint('serve')}.") from None
    from contextlib import asynccontextmanager

    from ..templates import render_template, static_file
    from .guard import Guard
    from .routes import about, classify, search
    from .state import ServerState

    state = ServerState(run, features, limits, engine=engine, replicas=replicas, address=address)

    @asynccontextmanager
    async def lifespan(app):
        await state.start()
        yield
        await state.stop()

    app = FastAPI(title="transferkit", version=__version__, lifespan=lifespan,
                  description="Class probabilities, feature vectors and similar images of uploaded images.",
                  docs_url="/docs" if docs else None, redoc_url=None, openapi_url="/openapi.json" if docs else None)
    app.add_middleware(Guard, max_body=limits.max_body, read_timeout=limits.read_timeout_s, hosts=hosts)
    app.state.transferkit = state
    app.state.page = render_template("serve.html", info={
        "classes": state.classifier.class_names if state.classifier else [], "predict": state.classifier is not None,
        "similar": state.embedder is not None})
    app.state.script = static_file("serve.js")
    _answer_errors_as_json(app, limits)
    for router in (classify, search, about):
        app.include_router(router)
    return app


def _answer_errors_as_json(app, limits: Limits) -> None:
    """Every error answer has one shape, `{"error": "one line"}`, its status chosen by the error's type: a
    `RequestError` (4xx, by subclass), FastAPI's validation (422), the framework's own (unknown path, wrong
    method: its status), busy (503 with Retry-After)."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    from .state import RequestError

    def busy(message: str):
        return JSONResponse({"error": message}, status_code=503, headers={"Retry-After": "1"})

    answers = {
        RequestError: lambda exc: JSONResponse({"error": str(exc)}, status_code=exc.status),
        RequestValidationError: lambda exc: JSONResponse({"error": validation_message(exc.errors())}, 422),
        HTTPException: lambda exc: JSONResponse({"error": str(exc.detail)[:300]}, status_code=exc.status_code,
                                                headers=getattr(exc, "headers", None)),
        QueueFull: lambda exc: busy(str(exc) or f"The server is busy ({limits.max_queue} images waiting); retry "
                                    "shortly."),
        asyncio.TimeoutError: lambda exc: busy(f"The server is busy: no answer within {limits.timeout_s:g} s "
                                               "(--timeout); retry shortly."),
    }
    for kind, answer in answers.items():
        async def handler(request, exc, answer=answer):
            return answer(exc)

        app.add_exception_handler(kind, handler)


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
