"""`transferkit serve`: a trained classifier and a feature set behind an HTTP API and an upload page."""

from __future__ import annotations

from dataclasses import fields

from ..errors import require_extras
from ..serve.state import ENGINES
from ._options import add_command, import_keras, integer, number

EXAMPLES = """  transferkit serve runs/lite0-features                      # http://127.0.0.1:8000/ (docs at /docs)
  transferkit serve runs/lite0-features --features features/ # also /similar and /embed
  curl -F file=@cat.jpg http://127.0.0.1:8000/predict
  transferkit serve runs/lite0-features --engine ray --replicas 4  # the model as a Ray Serve deployment

Binds to 127.0.0.1 unless --host says otherwise. Bad uploads get a 4xx JSON naming the problem; a full queue
a 503 with Retry-After.
"""


def register(sub):
    from ..data.decode import MAX_PIXELS
    from ..serve.app import Limits

    d = {f.name: f.default for f in fields(Limits)}
    p = add_command(sub, "serve", help="Serve a trained run (and a feature set) over HTTP: /predict, /similar, "
                    "/embed, an upload page.", examples=EXAMPLES, run=run)
    p.add_argument("run_dir", metavar="RUN", nargs="?", default=None, help="a finished run folder (or .keras file)")
    p.add_argument("--features", default=None, metavar="DIR", help="a feature folder for /similar and /embed")
    p.add_argument("--host", default="127.0.0.1", help="(default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=integer(0, 65535), default=8000, help="(default: 8000)")
    p.add_argument("--max-batch", type=integer(1), default=d["max_batch"], help=f"images per model call (default: "
                   f"{d['max_batch']})")
    p.add_argument("--max-wait-ms", type=number(0), default=d["max_wait_ms"],
                   help=f"how long a batch waits for more images (default: {d['max_wait_ms']:g})")
    p.add_argument("--max-queue", type=integer(1), default=d["max_queue"],
                   help=f"images waiting before 503 (default: {d['max_queue']})")
    p.add_argument("--max-upload-mb", type=number(0, low_open=True), default=d["max_upload_bytes"] / 2 ** 20,
                   help=f"largest upload (default: {d['max_upload_bytes'] // 2 ** 20})")
    p.add_argument("--timeout", type=number(0, low_open=True), default=d["timeout_s"],
                   help=f"seconds per request; later: 503 with Retry-After (default: {d['timeout_s']:g})")
    p.add_argument("--max-pixels", type=integer(1, MAX_PIXELS), default=d["max_pixels"], metavar="N",
                   help=f"largest image, in pixels (bounds one decode's memory) (default: {d['max_pixels']:,})")
    p.add_argument("--max-decodes", type=integer(1), default=d["max_decodes"], metavar="N",
                   help=f"images decoded at once (default: {d['max_decodes']}, one per core)")
    p.add_argument("--max-gradcam", type=integer(1), default=d["max_gradcam"], metavar="N",
                   help=f"Grad-CAMs in progress; more get 503 (default: {d['max_gradcam']})")
    p.add_argument("--read-timeout", type=number(0, low_open=True), default=d["read_timeout_s"], metavar="S",
                   help=f"seconds of silence allowed while headers or a body arrive; then 408 (default: "
                        f"{d['read_timeout_s']:g})")
    p.add_argument("--keep-alive", type=number(0, low_open=True), default=d["keep_alive_s"], metavar="S",
                   help=f"an idle kept-alive connection is closed after S seconds (default: {d['keep_alive_s']:g})")
    p.add_argument("--max-connections", type=integer(1), default=d["max_connections"], metavar="N",
                   help=f"open connections and requests; more get 503 (default: {d['max_connections']})")
    p.add_argument("--docs", action="store_true",
                   help="serve the OpenAPI page at /docs (its Swagger UI loads from a CDN: needs network)")
    p.add_argument("--engine", default="local", choices=list(ENGINES),
                   help="local: the model in this process; ray: a Ray Serve deployment of --replicas replicas")
    p.add_argument("--replicas", type=integer(1), default=2, help="--engine ray: model replicas (default: 2)")
    p.add_argument("--address", default=None, help="--engine ray: cluster address (default: start a local Ray)")
    p.add_argument("--quiet", "-q", action="store_true", help="no access log")


def run(args) -> int:
    from ..serve.address import bind
    from ..serve.app import Limits, serve

    require_extras("transferkit serve", "serve", *(["ray"] if args.engine == "ray" else []))
    sock = bind(args.host, args.port)  # before anything loads: a port in use is one line, exit status 4
    import_keras()

    limits = Limits(max_upload_bytes=int(args.max_upload_mb * 2 ** 20), timeout_s=args.timeout,
                    max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, max_queue=args.max_queue,
                    max_pixels=args.max_pixels, max_decodes=args.max_decodes, max_gradcam=args.max_gradcam,
                    read_timeout_s=args.read_timeout, keep_alive_s=args.keep_alive,
                    max_connections=args.max_connections)
    serve(args.run_dir, features=args.features, host=args.host, port=args.port, limits=limits, quiet=args.quiet,
          engine=args.engine, replicas=args.replicas, address=args.address, sock=sock, docs=args.docs)
    return 0
