"""A shared feature cache: one extraction folder per (images, model, layer, pooling, input, weights, precision)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .. import backend
from ..backbones.build import weights_identity
from ..data.folder import ImageIndex
from ..data.input_config import InputConfig
from .runner import extract
from .store import FeatureSet


def cache_folder(cache_root, index: ImageIndex, *, model: str, layer: str, pooling: str | None,
                 input_config: InputConfig, weights, precision: str) -> Path:
    """The folder under `cache_root` for these images and settings: a hash of everything that changes the
    features (the images' list, labels and root included), so equal requests share one extraction."""
    key = json.dumps(["v3", model, layer, pooling, input_config.to_dict(), weights_identity(weights), precision,
                      backend.name(), str(index.root), index.fingerprint()], sort_keys=True)
    return Path(cache_root) / f"{model}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def cached_features(cache_root, index: ImageIndex, *, model: str, layer: str, pooling: str | None,
                    input_config: InputConfig, weights="imagenet", precision: str = "auto", batch_size: int = 32,
                    quiet: bool = True) -> FeatureSet:
    """`extract` the images of `index` into their `cache_folder` (resuming or reusing what is there).

    Training's `features` strategy, k-fold runs and the audit read their features through this one door, so
    a folder audited once trains without a second extraction (same model, input and precision).

    Example:
    >>> fs = cached_features("runs/.feature-cache", index_images("data/train"), model="efficientnet_lite0",
    ...                      layer="avg_pool", pooling=None, input_config=spec.input_config())  # doctest: +SKIP
    """
    folder = cache_folder(cache_root, index, model=model, layer=layer, pooling=pooling, input_config=input_config,
                          weights=weights, precision=precision)
    return extract(index, folder, model=model, layers=layer, pooling=pooling or "none", input_config=input_config,
                   weights=weights, precision=precision, batch_size=batch_size, quiet=quiet)
