"""What a running server holds — the models, their micro-batchers, the limits — and the steps every endpoint
shares: decode an upload within the limits, run it through a model, refuse what this server does not serve.

Errors are typed: each `RequestError` subclass is one HTTP status, and the app answers every one the same way."""

from __future__ import annotations

import asyncio
import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..data.decode import DecodeError, NotAnImage, TooManyPixels, load_image
from ..errors import TransferkitError
from .batcher import MicroBatcher, QueueFull

ENGINES = ("local", "ray")


class RequestError(Exception):
    """A request the server will not run; `status` (a 4xx) comes from the subclass, the message names the file
    or field and the fix."""

    status = 400


class BadRequest(RequestError):
    status = 400


class NotServed(RequestError):
    status = 404


class TooLarge(RequestError):
    status = 413


class NotAnImageFile(RequestError):
    status = 415


class Unprocessable(RequestError):
    status = 422


# how an image that cannot be decoded is answered, by the kind of failure (the first match in this order)
DECODE_ANSWERS = ((TooManyPixels, TooLarge), (NotAnImage, NotAnImageFile), (DecodeError, BadRequest))


class ServerState:
    """The models a server answers with and the limits it keeps (`Limits`).

    Args:
        run: a run folder (the classifier) or None; features: a feature set (similar images) or None.
        engine: "local" (the classifier in this process) or "ray" (a Ray Serve deployment of `replicas`, on a
            cluster at `address` or a local Ray instance); Grad-CAM always runs on the local model.

    Example:
    >>> state = ServerState("runs/lite0-features", None, Limits())  # doctest: +SKIP
    >>> await state.start()  # doctest: +SKIP
    """

    def __init__(self, run, features, limits, *, engine: str = "local", replicas: int = 2,
                 address: str | None = None):
        from .models import Classifier, Embedder

        if run is None and features is None:
            raise TransferkitError("Pass a run folder to serve its classifier, --features DIR to serve a feature "
                                   "set, or both.")
        if engine not in ENGINES:
            raise TransferkitError(f"`engine` must be one of {list(ENGINES)}. Received: engine={engine!r}")
        self.limits = limits
        self.classifier = Classifier(run, batch_size=limits.max_batch) if run is not None else None
        self.embedder = Embedder(features, batch_size=limits.max_batch) if features is not None else None
        self.batchers = {name: MicroBatcher(fn, max_batch=limits.max_batch, max_wait_ms=limits.max_wait_ms,
                                            max_queue=limits.max_queue)
                         for name, fn in (("predict", self.classifier), ("embed", self.embedder)) if fn is not None}
        # Grad-CAM needs the model's gradients in this process: it runs on the local model's own worker thread,
        # never beside a batch on the same model
        self.gradcam_worker = self.batchers["predict"].worker if self.classifier is not None else None
        if engine == "ray" and self.classifier is not None:
            from .ray_engine import RayRunner

            self.batchers["predict"] = RayRunner(run, replicas=replicas, max_batch=limits.max_batch,
                                                 max_wait_ms=limits.max_wait_ms, address=address)
        self.decoders = ThreadPoolExecutor(limits.max_decodes, thread_name_prefix="transferkit-decode")
        self.gradcam_slots = asyncio.Semaphore(limits.max_gradcam)

    async def start(self) -> None:
        for b in self.batchers.values():
            await b.start()

    async def stop(self) -> None:
        for b in self.batchers.values():  # drain what is in flight
            await b.stop()
        self.decoders.shutdown(wait=False, cancel_futures=True)

    def need(self, kind: str) -> None:
        """Refuse (404) an endpoint whose model this server was not started with."""
        if kind not in self.batchers:
            what = "a run folder (transferkit serve RUN)" if kind == "predict" else "--features DIR"
            raise NotServed(f"This server has no {'classifier' if kind == 'predict' else 'feature set'}; "
                            f"start it with {what}.")

    def check_count(self, files) -> None:
        if len(files) > self.limits.max_files:
            raise TooLarge(f"{len(files)} files in one request; send at most {self.limits.max_files}.")

    @staticmethod
    async def one_file(request) -> None:
        count = len((await request.form()).getlist("file"))
        if count > 1:
            raise BadRequest(f"{count} files in the `file` field; this endpoint takes one (/predict takes "
                             "several).")

    async def decode(self, upload, config) -> np.ndarray:
        """The upload decoded as `config` (an `InputConfig`) says, in a decoding thread (at most `max_decodes` at
        once: each may hold a full-resolution image)."""
        limits, name = self.limits, upload.filename or "upload"
        data = await upload.read(limits.max_upload_bytes + 1)
        if len(data) > limits.max_upload_bytes:
            raise TooLarge(f"{name}: larger than {limits.max_upload_bytes // (1024 * 1024)} MiB; send a smaller "
                           "image.")
        if not data:
            raise BadRequest(f"{name}: the file is empty.")

        def run_decode():
            return load_image(io.BytesIO(data), config.size, crop_fraction=config.crop_fraction,
                              resample=config.resample, max_pixels=limits.max_pixels)

        try:
            return await asyncio.get_running_loop().run_in_executor(self.decoders, run_decode)
        except DecodeError as exc:
            answer = next(answer for kind, answer in DECODE_ANSWERS if isinstance(exc, kind))
            raise answer(f"{name}: {exc.reason}.") from None

    async def run_model(self, kind: str, image: np.ndarray):
        """One image through the `kind` model's micro-batcher; busy (503) when no answer comes within `timeout_s`."""
        try:
            return await asyncio.wait_for(self.batchers[kind].submit(image), self.limits.timeout_s)
        except asyncio.TimeoutError:
            raise QueueFull() from None
