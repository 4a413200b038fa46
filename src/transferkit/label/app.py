"""The labelling page and its JSON API (FastAPI, loopback by default, behind the server's guard): the next images,
answers, undo, new classes, and the model's progress."""

from __future__ import annotations

import threading

from pydantic import BaseModel

from .._version import __version__
from ..data.thumbnails import preview_jpeg
from ..errors import TransferkitError, install_hint
from .session import LabelSession

PREVIEW = 480  # pixels on the longer side of the image shown: enough to judge, quick to send
RETRAIN_EVERY = 5  # answers between fits of the probe (each well under a second; run beside the page's requests)


class Answer(BaseModel):
    index: int
    label: str


class Skip(BaseModel):
    index: int


class NewClass(BaseModel):
    name: str


class Retrainer:
    """Refits the session's probe in one background thread once `every` answers (or skips, undos) came since the
    last fit, and again after it while more arrived meanwhile; never two fits at once, never a request waiting
    for one."""

    def __init__(self, session: LabelSession, every: int = RETRAIN_EVERY):
        self.session, self.every = session, every
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()

    def due(self) -> bool:
        session = self.session
        behind = session.store.version - session.fitted_version
        first = session.probs is None and len(set(session.store.labels().values())) >= 2
        return behind > 0 and (first or behind >= self.every)

    def poke(self) -> None:
        with self.lock:
            if self.due() and not (self.thread and self.thread.is_alive()):
                self.thread = threading.Thread(target=self._fit, name="transferkit-label-fit", daemon=True)
                self.thread.start()

    def _fit(self) -> None:
        while True:
            self.session.refit()
            with self.lock:
                if not self.due():
                    self.thread = None
                    return

    def wait(self) -> None:
        thread = self.thread
        if thread:
            thread.join()


def create_label_app(session: LabelSession, *, hosts: set[str] | None = None, max_body: int = 64 * 1024,
                     read_timeout: float = 10.0, retrain_every: int = RETRAIN_EVERY):
    """The labelling app for `session`.

    Args:
        session: the pool, its features and answers.
        hosts: the Host header values answered (`serve.guard.allowed_hosts`; None: any).
        max_body: bytes a request body may have (answers are small JSON).
        read_timeout: seconds of silence allowed while a request arrives.
        retrain_every: answers between fits of the probe.

    Example:
    >>> app = create_label_app(LabelSession(paths, matrix, "labels.csv"))  # doctest: +SKIP
    >>> TestClient(app).get("/api/status").json()["labelled"]  # doctest: +SKIP
    0
    """
    try:
        from fastapi import FastAPI
        from fastapi.responses import HTMLResponse, Response
    except ImportError:
        raise TransferkitError(f"transferkit label needs FastAPI and uvicorn: {install_hint('label')}.") from None
    from ..serve.guard import Guard
    from ..templates import render_template, static_file

    app = FastAPI(title="transferkit label", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(Guard, max_body=max_body, read_timeout=read_timeout, hosts=hosts)
    retrainer = Retrainer(session, retrain_every)
    app.state.retrainer = retrainer
    page = render_template("label.html", title=f"Labelling {len(session.paths)} images")
    script = static_file("label.js")

    _answer_errors_as_json(app)

    @app.get("/", response_class=HTMLResponse)
    def index():
        return page

    @app.get("/label.js")
    def label_script():
        return Response(script, media_type="text/javascript")

    @app.get("/health")
    def health():
        return {"status": "ok", "transferkit_version": __version__}

    app.include_router(_api(session, retrainer))
    return app


def _answer_errors_as_json(app) -> None:
    """Every error answer is `{"error": "one line"}`: a refused value 400, a malformed request 422, the
    framework's own (unknown path, wrong method) its status."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    from ..serve.app import validation_message

    async def refused(request, exc):
        return JSONResponse({"error": str(exc)}, status_code=400)

    async def invalid(request, exc):
        return JSONResponse({"error": validation_message(exc.errors())}, status_code=422)

    async def framework(request, exc):
        return JSONResponse({"error": str(exc.detail)[:300]}, status_code=exc.status_code)

    app.add_exception_handler(TransferkitError, refused)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(HTTPException, framework)


def _api(session: LabelSession, retrainer: Retrainer):
    """The page's JSON API and its images: what to ask next, answers, undo, new classes, the model's progress."""
    from fastapi import APIRouter
    from fastapi.responses import JSONResponse, Response

    api = APIRouter()

    @api.get("/api/status")
    def status():
        return session.status()

    @api.get("/api/next")
    def next_images(k: int = 0, exclude: str = ""):
        try:
            excluded = [int(v) for v in exclude.split(",") if v.strip()]
        except ValueError:
            raise TransferkitError(f"exclude must be row numbers separated by commas. Received: {exclude[:80]!r}")
        excluded = [i for i in excluded if 0 <= i < len(session.paths)]
        return {"items": session.next_batch(k if 0 < k <= 100 else None, exclude=excluded)}

    @api.get("/api/item/{index}")
    def item(index: int):
        session.path_of(index)
        return session.describe(index)

    @api.post("/api/answer")
    def answer(body: Answer):
        session.path_of(body.index)
        if body.label not in session.store.classes:
            session.add_class(body.label)
        session.answer(body.index, body.label.strip())
        retrainer.poke()
        return session.status()

    @api.post("/api/skip")
    def skip(body: Skip):
        session.skip(body.index)
        return session.status()

    @api.post("/api/undo")
    def undo():
        row = session.undo()
        retrainer.poke()
        return {"item": session.describe(row) if row is not None else None, "status": session.status()}

    @api.post("/api/class")
    def new_class(body: NewClass):
        session.add_class(body.name)
        return session.status()

    @api.get("/image/{index}")
    def image(index: int):
        data = preview_jpeg(session.path_of(index), PREVIEW)
        if not data:
            return JSONResponse({"error": f"image {index} can no longer be read"}, status_code=404)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})

    return api


def serve_label_page(session: LabelSession, *, host: str = "127.0.0.1", port: int = 8000, sock=None,
                     quiet: bool = False, read_timeout: float = 10.0) -> None:
    """Run the labelling page until interrupted; every answer is on disk before the next image shows.

    The address is bound first (`serve.address.bind`); pass `sock`, a socket bound already, to skip that.
    """
    import uvicorn

    from ..serve.address import bind
    from ..serve.guard import allowed_hosts, timed_h11

    sock = sock or bind(host, port)
    bound = sock.getsockname()[1]
    app = create_label_app(session, hosts=allowed_hosts(host, bound), read_timeout=read_timeout)
    shown = f"[{host}]" if ":" in host else host
    print(f"Labelling {len(session.paths)} images at http://{shown}:{bound}/ — answers go to {session.store.csv_path} "
          "as you give them. Ctrl-C stops; the same command continues.", flush=True)
    config = uvicorn.Config(app, log_level="warning" if quiet else "info", http=timed_h11(read_timeout),
                            timeout_keep_alive=5, limit_concurrency=64, server_header=False)
    uvicorn.Server(config).run(sockets=[sock])
    app.state.retrainer.wait()
