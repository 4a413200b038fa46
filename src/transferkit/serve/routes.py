"""The endpoints, as FastAPI routers over the app's `ServerState`: classify (/predict, /gradcam), search
(/embed, /similar, /image), and about (/health, the upload page and its script).

(No `from __future__ import annotations` here: FastAPI reads the endpoints' annotations at runtime.)"""

import asyncio

import numpy as np
from fastapi import APIRouter, Depends, File, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from .._version import __version__
from ..errors import TransferkitError
from .batcher import QueueFull
from .schemas import ERRORS, EmbedAnswer, GradcamAnswer, HealthAnswer, PredictAnswer, SimilarAnswer
from .state import NotServed, ServerState, Unprocessable


def state(request: Request) -> ServerState:
    """The app's `ServerState` (a FastAPI dependency)."""
    return request.app.state.transferkit


classify = APIRouter(tags=["classify"], responses=ERRORS)
search = APIRouter(tags=["search"], responses=ERRORS)
about = APIRouter(tags=["about"])


@classify.post("/predict", response_model=PredictAnswer,
               summary="Class probabilities of one or more images (multipart field `file`)")
async def predict(file: list[UploadFile] = File(...), s: ServerState = Depends(state)):
    s.need("predict")
    s.check_count(file)
    names, top = s.classifier.class_names, s.limits.top
    images = [await s.decode(f, s.classifier.input) for f in file]
    probs = await asyncio.gather(*(s.run_model("predict", im) for im in images))
    out = []
    for f, p in zip(file, probs):
        order = np.argsort(-p, kind="stable")[:top]
        out.append({"file": f.filename, "probabilities": {c: float(v) for c, v in zip(names, p)},
                    "top": [{"class": names[i], "probability": float(p[i])} for i in order]})
    return {"model": s.classifier.name, "transferkit_version": __version__, "predictions": out}


@classify.post("/gradcam", response_model=GradcamAnswer,
               summary="Where the model looked: the Grad-CAM of the predicted (or given) class")
async def gradcam(request: Request, file: UploadFile = File(...), class_name: str | None = None,
                  s: ServerState = Depends(state)):
    s.need("predict")
    await s.one_file(request)
    names = s.classifier.class_names
    if class_name is not None and class_name not in names:
        raise Unprocessable(f"class_name must be one of {names}. Received: {class_name!r}")
    if s.gradcam_slots.locked():  # bounded: a burst of Grad-CAMs cannot queue up in front of /predict
        raise QueueFull(f"The server is busy ({s.limits.max_gradcam} Grad-CAMs in progress); retry shortly.")
    async with s.gradcam_slots:
        image = await s.decode(file, s.classifier.input)
        target = None if class_name is None else names.index(class_name)
        chosen, overlay = await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(
            s.gradcam_worker, s.classifier.gradcam, image, target), s.limits.timeout_s)
    return {"file": file.filename, "class": names[chosen], "overlay": overlay}


@search.post("/embed", response_model=EmbedAnswer,
             summary="The feature vector of an image, as the feature set's were extracted")
async def embed(request: Request, file: UploadFile = File(...), s: ServerState = Depends(state)):
    s.need("embed")
    await s.one_file(request)
    vector = await s.run_model("embed", await s.decode(file, s.embedder.input))
    return {"file": file.filename, "layer": s.embedder.index.layer, "dim": int(vector.size),
            "vector": vector.tolist(), "transferkit_version": __version__}


@search.post("/similar", response_model=SimilarAnswer,
             summary="The k images of the feature set most like an uploaded image")
async def similar(request: Request, file: UploadFile = File(...), k: int = 8, s: ServerState = Depends(state)):
    s.need("embed")
    await s.one_file(request)
    if not 1 <= k <= 100:
        raise Unprocessable(f"k must be from 1 to 100. Received: k={k}")
    vector = await s.run_model("embed", await s.decode(file, s.embedder.input))
    found = await run_in_threadpool(s.embedder.similar, vector, k)
    for item in found:
        item["image"] = f"/image/{item.pop('row')}"
    return {"file": file.filename, "neighbours": found, "transferkit_version": __version__}


@search.get("/image/{row}", response_class=FileResponse,
            summary="An image of the feature set (files under the set's root only)")
async def image(row: int, s: ServerState = Depends(state)):
    s.need("embed")
    try:
        return FileResponse(s.embedder.image_file(row))
    except TransferkitError as exc:
        raise NotServed(str(exc)) from None


@about.get("/health", response_model=HealthAnswer, summary="Whether the server runs, and what it serves")
async def health(s: ServerState = Depends(state)):
    return {"status": "ok", "transferkit_version": __version__,
            "classifier": s.classifier.describe() if s.classifier else None,
            "features": len(s.embedder.index) if s.embedder else None,
            "batches": {k: b.batches for k, b in s.batchers.items()}}


@about.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page(request: Request):
    return request.app.state.page


@about.get("/page.js", include_in_schema=False)
async def page_script(request: Request):
    return Response(request.app.state.script, media_type="text/javascript")
