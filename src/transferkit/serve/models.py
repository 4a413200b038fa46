"""What the server runs: a run's classifier and a feature set's extractor, each on batches of decoded images."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._version import __version__
from ..errors import TransferkitError


def bucket(n: int, largest: int) -> int:
    """The padded batch size for `n` images: the next power of two, at most `largest` (a lone request computes
    one image, not a full batch)."""
    return min(largest, 1 << max(0, n - 1).bit_length())


class Classifier:
    """A trained run's model on batches of decoded images: the same input configuration, padding and
    probabilities as `transferkit predict`, so answers are equal."""

    def __init__(self, run, *, batch_size: int = 32):
        from ..train.use import load_run

        self.model, info = load_run(run)
        self.class_names: list[str] = info["class_names"]
        self.input = info["input"]
        self.batch_size = batch_size
        self.name = Path(run).name
        blank = np.zeros((self.input.size, self.input.size, 3), np.uint8)
        size = 1
        while size <= batch_size:  # compile every bucket now, not on a request
            self([blank] * size)
            size *= 2

    def __call__(self, images: list[np.ndarray]) -> list[np.ndarray]:
        from ..train.metrics import probabilities_2d

        out = []
        for a in range(0, len(images), self.batch_size):
            x = np.stack(images[a:a + self.batch_size]).astype("float32")
            n = len(x)
            size = bucket(n, self.batch_size)
            if n < size:  # a few input shapes (powers of two) for the compiled function, not one per count
                x = np.concatenate([x, np.zeros((size - n, *x.shape[1:]), "float32")])
            out += list(probabilities_2d(np.asarray(self.model.predict_on_batch(x)))[:n])
        return out

    def gradcam(self, image: np.ndarray, class_index: int | None = None) -> tuple[int, str]:
        """(class, PNG data URL of the image beside its Grad-CAM overlay) for the class (default: predicted)."""
        from ..viz.explain import gradcam_data_url

        return gradcam_data_url(self.model, image, class_index)

    def describe(self) -> dict:
        return {"model": self.name, "classes": self.class_names, "input": self.input.to_dict(),
                "transferkit_version": __version__}


class Embedder:
    """A feature set's extraction (`extractor_like`: model, layer, pooling, input, precision, int8 model) on
    batches of decoded images, and its search index for the nearest images."""

    def __init__(self, features, *, batch_size: int = 32, layer: str | None = None):
        from ..extract.runner import extractor_like
        from ..search.index import load_index

        self.index = load_index(features, layer=layer)
        self.extractor, self.input = extractor_like(self.index.manifest, layers=[self.index.layer],
                                                   batch_size=batch_size)
        self.root = Path(self.index.root).resolve()

    def __call__(self, images: list[np.ndarray]) -> list[np.ndarray]:
        feats = self.extractor(np.stack(images))[self.index.layer]
        return list(feats.reshape(len(images), -1).astype(np.float32))

    def similar(self, vector: np.ndarray, k: int) -> list[dict]:
        sims, rows = self.index.search(vector[None], min(k, len(self.index)))
        return [{"rank": r + 1, "row": int(row), "path": self.index.paths[row], "similarity": float(s)}
                for r, (s, row) in enumerate(zip(sims[0], rows[0])) if row >= 0]

    def image_file(self, row: int) -> Path:
        """The file of row `row`, which must lie under the set's root (never any other path)."""
        if not 0 <= row < len(self.index):
            raise TransferkitError(f"No row {row} in the feature set (it has {len(self.index)}).")
        path = (self.root / self.index.paths[row]).resolve()
        if self.root not in path.parents or not path.is_file():
            raise TransferkitError(f"Row {row}'s image is not a file under the set's root.")
        return path
