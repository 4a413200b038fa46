"""The extractor: a compiled backbone-to-features function run on fixed-size uint8 batches."""

from __future__ import annotations

import numpy as np

from ..backbones.build import FeatureModel


class Extractor:
    """Runs a `FeatureModel` on batches of uint8 images, returning float32 arrays per layer.

    Batches are padded to `batch_size` so the compiled function sees one shape
    (no retracing or recompiling for the last, smaller batch).

    Example:
    >>> ex = Extractor(build_feature_model("vgg16", ["fc2"], weights="none"), batch_size=16)  # doctest: +SKIP
    >>> ex(images)["fc2"].shape  # doctest: +SKIP
    (16, 4096)
    """

    def __init__(self, feature_model: FeatureModel, batch_size: int = 32, warm_up: bool = True, fn=None):
        self.feature_model = feature_model
        self.batch_size = batch_size
        # trace/compile for the padded batch shape now (without computing a batch),
        # so the first real batch does not pay for it; `fn` replaces the Keras model (e.g. OpenVINO)
        self._fn = fn or feature_model.compile(batch_size if warm_up else None)

    @property
    def layers(self) -> list[str]:
        return self.feature_model.layers

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        n = len(images)
        outs: list[list[np.ndarray]] = [[] for _ in self.layers]
        for start in range(0, n, self.batch_size):
            chunk = images[start:start + self.batch_size]
            m = len(chunk)
            if m < self.batch_size:
                pad = np.zeros((self.batch_size - m,) + chunk.shape[1:], dtype=chunk.dtype)
                chunk = np.concatenate([chunk, pad])
            for store, arr in zip(outs, self._fn(chunk)):
                store.append(np.asarray(arr[:m], dtype=np.float32))
        return {
            name: (np.concatenate(parts) if parts else np.zeros((0,) + tuple(shape), np.float32))
            for name, parts, shape in zip(self.layers, outs, self.feature_model.shapes)
        }


def make_extractor(fm: FeatureModel, batch_size: int, openvino_model=None, precision: str = "float32") -> Extractor:
    """The Keras feature model compiled for this backend, or the prepared OpenVINO model."""
    if openvino_model is None:
        return Extractor(fm, batch_size=batch_size)
    from .openvino import compile_openvino  # only with an OpenVINO model: the extra is optional

    return Extractor(fm, batch_size=batch_size, fn=compile_openvino(openvino_model, precision))
