"""The Ray Data engine: decoding as Ray tasks, one model replica per Ray actor, results streamed to the writer.

The driver keeps the single writer (shards + manifest), so the output format, resume and bad-file handling are
exactly the local engine's; Ray supplies parallelism across cores, GPUs and nodes, and re-runs the work of a
worker that dies.
"""

from __future__ import annotations

import logging
from typing import Iterator

import numpy as np

from ..errors import TransferkitError, install_hint


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise TransferkitError(f"--engine ray needs Ray Data: {install_hint('ray')}.") from None
    return ray


def _decode(batch: dict, *, input_config: dict) -> dict:
    """Ray task: decode a batch of paths; failures become rows with an error and a blank image."""
    from ..data.decode import DecodeError
    from ..data.input_config import InputConfig

    config = InputConfig.from_dict(input_config)
    images = np.zeros((len(batch["path"]), config.size, config.size, 3), np.uint8)
    errors = []
    for i, path in enumerate(batch["path"]):
        try:
            images[i] = config.load(path)
            errors.append("")
        except DecodeError as exc:
            errors.append(exc.reason)
    return {"position": np.asarray(batch["position"], np.int64), "image": images, "error": np.array(errors)}


class _Embedder:
    """Ray actor: builds the feature model once, then runs batches of decoded images through it."""

    def __init__(self, spec, layers, pooling, input_size, weights, precision, seed, batch_size, openvino_model=None,
                 runtime_precision="float32"):
        from ..backbones.build import build_feature_model
        from ..backbones.registry import is_registered, register_backbone
        from .extractor import make_extractor

        if not is_registered(spec.name):  # a backbone registered only in the driver (plugins, tests)
            register_backbone(spec, overwrite=True)
        fm = build_feature_model(spec, layers, pooling=pooling, input_size=input_size, weights=weights,
                                 precision=precision, seed=seed)
        self.extractor = make_extractor(fm, batch_size, openvino_model, runtime_precision)
        self.layers = fm.layers
        self.shapes = fm.shapes

    def __call__(self, batch: dict) -> dict:
        ok = batch["error"] == ""
        out = {"position": batch["position"], "error": batch["error"]}
        feats = self.extractor(batch["image"][ok]) if ok.any() else None
        for i, (name, shape) in enumerate(zip(self.layers, self.shapes)):
            full = np.zeros((len(ok), *shape), np.float32)
            if feats is not None:
                full[ok] = feats[name]
            out[f"feature_{i}"] = full
        return out


def ray_batches(job) -> Iterator[tuple]:
    """Yield (positions, features, errors) for the positions in `job.ranges`, computed on a Ray cluster.

    Args:
        job: an `engines.EngineJob`. Its feature model's settings are sent to the actors (not the model);
            `address` is a running cluster ("auto", "ray://host:10001", ...), None starts a local Ray and
            stops it after; `workers` is the number of model replicas (default one per GPU when
            `gpus_per_worker` > 0, else 2).
    """
    ray = _ray()
    index, fm, ranges, batch_size = job.index, job.feature_model, job.ranges, job.batch_size
    address, workers, gpus_per_worker = job.address, job.workers, job.gpus_per_worker
    started = False
    if not ray.is_initialized():
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                     **({} if address else {"object_store_memory": 512 * 1024 * 1024}))
        except Exception as exc:  # connection failures are user errors here
            raise TransferkitError(f"Cannot start or join Ray (address={address!r}): {exc}") from None
        started = address is None
    try:
        cpus = float(ray.cluster_resources().get("CPU", 1.0))
        gpus = float(ray.cluster_resources().get("GPU", 0.0))
        if workers is None:
            workers = max(1, int(gpus / gpus_per_worker)) if gpus_per_worker else 2
        # leave room for decoding tasks: an actor pool that takes every CPU would starve them
        actor_cpus = min(1.0, max(0.25, (cpus - 0.5) / workers))
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True
        ctx.enable_progress_bars = False  # transferkit's own bar counts images
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        positions = np.concatenate([np.arange(a, b) for a, b in ranges]).astype(np.int64)
        items = ray.data.from_items([{"position": int(p), "path": index.absolute(int(p))} for p in positions])
        spec = fm.spec
        decoded = items.map_batches(_decode, batch_size=batch_size, batch_format="numpy", num_cpus=0.25,
                                    fn_kwargs=dict(input_config=fm.input_config.to_dict()))
        embedded = decoded.map_batches(
            _Embedder, batch_size=batch_size, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=actor_cpus,
            num_gpus=gpus_per_worker or None,
            fn_constructor_kwargs=dict(spec=spec, layers=fm.layers, pooling=job.pooling, input_size=fm.input_size,
                                       weights=job.weights, precision=fm.precision, seed=job.seed,
                                       batch_size=batch_size, openvino_model=job.openvino_model,
                                       runtime_precision=job.precision))
        for batch in embedded.iter_batches(batch_size=None, batch_format="numpy"):
            pos = np.asarray(batch["position"], np.int64)
            bad = batch["error"] != ""
            errors = [(int(p), str(e)) for p, e in zip(pos[bad], batch["error"][bad])]
            feats = {name: np.asarray(batch[f"feature_{i}"])[~bad] for i, name in enumerate(fm.layers)}
            yield pos[~bad], feats, errors
    finally:
        if started:
            ray.shutdown()

