"""An extraction, planned: every option validated once into an `ExtractPlan` — the images, the model and how
images become its input, the output and how it is written — whose `settings` are the manifest's record of it."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from .. import backend
from ..backbones.build import normalize_weights, weights_identity
from ..backbones.registry import DEFAULT_MODEL, POOLINGS, BackboneSpec, get_backbone, with_crop, with_input
from ..data.folder import ImageIndex, index_images
from ..data.input_config import InputConfig
from ..errors import TransferkitError, check_one_of, check_positive_int
from .engines import ENGINES
from .openvino import DEFAULT_CALIBRATION, RUNTIMES

FORMATS = ("parquet", "npy")


@dataclass(frozen=True)
class ExtractPlan:
    """One extraction, checked: `build` validates the options of `extract` (same names and defaults) and
    resolves what "auto" and the model's defaults mean on this machine; `settings` is what the manifest records
    and what a resumed or updated run must match.

    Example:
    >>> plan = ExtractPlan.build("images/", "out/", model="vgg16", layers="fc2", weights="none")
    >>> plan.layers, plan.input.size, len(plan.index), plan.settings["model"]
    (['fc2'], 224, 6, 'vgg16')
    """

    index: ImageIndex
    out: Path
    spec: BackboneSpec
    layers: list[str]
    pooling: str
    input: InputConfig
    weights: object
    precision: str  # resolved: never "auto"
    runtime: str  # "keras" or "openvino"
    labels: str = "inferred"
    batch_size: int = 32
    shard_size: int = 1024
    format: str = "parquet"
    workers: int | None = None
    seed: int = 0
    engine: str = "local"
    address: str | None = None
    gpus_per_worker: float = 0.0
    calibration: int = DEFAULT_CALIBRATION
    openvino_like: dict | None = None

    @classmethod
    def build(cls, images, out, *, model: str = DEFAULT_MODEL, layers=None, pooling: str = "none",
              input_size: int | None = None, weights="imagenet", batch_size: int = 32, precision: str = "auto",
              labels: str = "inferred", shard_size: int = 1024, format: str = "parquet", workers: int | None = None,
              seed: int = 0, engine: str = "local", address: str | None = None, gpus_per_worker: float = 0.0,
              runtime: str | None = None, calibration: int = DEFAULT_CALIBRATION, crop="model",
              input_config: InputConfig | None = None, openvino_like: dict | None = None) -> "ExtractPlan":
        """Validate the options (see `extract` for each) and index the images."""
        if input_config is not None:
            if input_size is not None or crop != "model":
                raise TransferkitError("Pass either `input_config` or `input_size`/`crop`, not both.")
            spec, input_size = with_input(get_backbone(model), input_config), input_config.size
        else:
            spec = with_crop(get_backbone(model), crop)
        check_one_of("pooling", pooling, POOLINGS)
        check_one_of("precision", precision, backend.PRECISIONS)
        check_one_of("format", format, FORMATS)
        check_one_of("engine", engine, ENGINES)
        batch_size = check_positive_int("batch_size", batch_size)
        shard_size = check_positive_int("shard_size", shard_size)
        layer_list = [layers] if isinstance(layers, str) else list(layers or [spec.default_layer])
        config = spec.input_config(input_size or spec.input_size)  # validates size, crop and resampling
        normalize_weights(weights)
        used_precision = backend.resolve_precision(precision, spec.cpu_bfloat16)
        runtime = _check_runtime(runtime, used_precision)
        if used_precision == "int8" and openvino_like is None:
            calibration = check_positive_int("calibration", calibration)
        out = Path(os.path.expanduser(str(out)))
        return cls(index=index_images(images, labels=labels), out=out, spec=spec,
                   layers=layer_list, pooling=pooling, input=config, weights=weights, precision=used_precision,
                   runtime=runtime, labels=labels, batch_size=batch_size, shard_size=shard_size, format=format,
                   workers=workers,
                   seed=seed, engine=engine, address=address, gpus_per_worker=gpus_per_worker,
                   calibration=calibration, openvino_like=openvino_like)

    @property
    def settings(self) -> dict:
        """The manifest's "settings": what made the set; a resumed run must have the same."""
        settings = {
            "model": self.spec.name, "layers": self.layers, "pooling": self.pooling, "input": self.input.to_dict(),
            "weights": weights_identity(self.weights), "precision": self.precision,
            "backend": backend.name(), "labels": self.labels, "files": self.index.fingerprint(),
            "images": len(self.index), "shard_size": self.shard_size,
            "seed": self.seed if normalize_weights(self.weights) is None else None,
        }
        if self.runtime == "openvino":  # only then, so outputs of earlier versions still resume
            settings["runtime"] = "openvino"
            if self.precision == "int8" and self.openvino_like is not None:
                settings["calibration"] = {"like": (self.openvino_like.get("calibration") or {}).get("files_sha256")}
            elif self.precision == "int8":
                settings["calibration"] = {"images": min(self.calibration, len(self.index)), "seed": self.seed}
        return settings

    def of(self, index: ImageIndex, out, **changes) -> "ExtractPlan":
        """The same extraction of other images into another folder (an update's new and changed files)."""
        return dataclasses.replace(self, index=index, out=Path(out), **changes)


def _check_runtime(runtime: str | None, precision: str) -> str:
    """The runtime to use: int8 runs only on OpenVINO; otherwise Keras unless OpenVINO is asked for."""
    if runtime is None:
        return "openvino" if precision == "int8" else "keras"
    check_one_of("runtime", runtime, RUNTIMES)
    if precision == "int8" and runtime != "openvino":
        raise TransferkitError("`precision='int8'` runs on OpenVINO. Received: runtime='keras'; drop --runtime or "
                               "pass --runtime openvino.")
    if precision == "float16" and runtime == "openvino":
        raise TransferkitError("The OpenVINO runtime runs float32, bfloat16 or int8 on CPUs. Received: "
                               "precision='float16'.")
    return runtime
