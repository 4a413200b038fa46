"""The table of extraction engines: each turns position ranges of an index into (positions, features, errors).

An engine is a function `engine(job) -> iterator of (positions, {layer: array}, [(position, reason)])`; the
runner cuts that stream into shards, so every engine gets the same output, resume and bad-file handling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from .. import interrupts
from ..backbones.build import FeatureModel
from ..data.folder import ImageIndex
from .extractor import make_extractor
from .reader import ImageReader


@dataclass
class EngineJob:
    """What an engine computes: the feature model over `ranges` of `index`, and how to run it."""

    index: ImageIndex
    feature_model: FeatureModel
    ranges: list[tuple[int, int]]
    batch_size: int
    pooling: str  # the user's pooling argument (a remote engine rebuilds the feature model from settings)
    weights: object
    seed: int = 0
    workers: int | None = None  # local: decoding threads; ray: model replicas
    address: str | None = None  # ray: cluster address
    gpus_per_worker: float = 0.0  # ray: GPUs per model replica
    openvino_model: object = None  # a prepared OpenVINO model file: run it instead of the Keras model
    precision: str = "float32"  # what the OpenVINO model runs in (float32, bfloat16, int8)


def local_batches(job: EngineJob) -> Iterator[tuple]:
    """The local engine: threads decode ahead while the compiled model runs in this process."""
    fm = job.feature_model
    with interrupts.deferred():  # a Ctrl-C while TensorFlow traces the model would be lost: take it afterwards
        extractor = make_extractor(fm, job.batch_size, job.openvino_model, job.precision)
    reader = ImageReader(job.index, fm.input_config, batch_size=job.batch_size, workers=job.workers)
    empty = {n: np.zeros((0, *s), np.float32) for n, s in zip(fm.layers, fm.shapes)}
    for start, stop in job.ranges:
        for batch in reader.iter_range(start, stop):
            feats = extractor(batch.images) if len(batch.positions) else empty
            interrupts.check()  # where a training run takes a Ctrl-C (a no-op outside `interrupts.deferred()`)
            yield batch.positions, feats, batch.errors


def _ray_batches(job: EngineJob) -> Iterator[tuple]:
    from .ray_engine import ray_batches  # imported only when chosen: the Ray engine needs the optional `ray` extra

    return ray_batches(job)


ENGINES = {"local": local_batches, "ray": _ray_batches}
