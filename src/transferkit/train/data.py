"""Training data: a `train/ validation/ [test/] <class>/` folder as Keras `PyDataset`s of decoded images."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .. import interrupts
from ..data.decode import DecodeError, load_image
from ..data.folder import ImageIndex
from ..data.input_config import InputConfig
from ..errors import TransferkitError, warn_skipped

def drop_unreadable(index: ImageIndex, size: int, workers: int = 4) -> tuple[ImageIndex, list[dict]]:
    """Decode every image once; return the index without unreadable files and the list of those skipped."""
    def check(i):
        try:
            index.check(i)
            load_image(index.absolute(i), 8)
            return None
        except DecodeError as exc:
            return {"path": index.paths[i], "reason": exc.reason}

    results, pool = [], ThreadPoolExecutor(workers)
    try:
        for result in pool.map(check, range(len(index))):
            results.append(result)
            interrupts.check()  # a safe point for Ctrl-C inside a training run
    finally:
        pool.shutdown(cancel_futures=True)
    bad = [r for r in results if r]
    warn_skipped({"path": str(index.root / r["path"]), "reason": r["reason"]} for r in bad)
    if not bad:
        return index, []
    keep = [i for i, r in enumerate(results) if r is None]
    return index.subset(keep), bad


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
    """The order of `n` rows in epoch `epoch`: a function of (seed, epoch) only, so a resumed run sees the same
    order in each epoch as an uninterrupted one."""
    return np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)


def targets(labels: np.ndarray, n_classes: int, onehot: bool = False) -> np.ndarray:
    """Training targets: float 0/1 for two classes (one sigmoid unit); class indices, or one-hot rows when the loss
    needs them (label smoothing or mixup with more than two classes)."""
    if n_classes == 2:
        return labels.astype("float32")
    return np.eye(n_classes, dtype="float32")[labels] if onehot else labels.astype("int32")


def mixup(x: np.ndarray, y: np.ndarray, alpha: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """mixup (Zhang et al., ICLR 2018): each example blended with another of its batch, λ ~ Beta(α, α) per batch,
    inputs and targets alike (targets must be floats: 0/1 or one-hot)."""
    lam = float(rng.beta(alpha, alpha))
    other = rng.permutation(len(x))
    return (lam * x + (1 - lam) * x[other]).astype(x.dtype), (lam * y + (1 - lam) * y[other]).astype("float32")


def cutmix(x: np.ndarray, y: np.ndarray, alpha: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """CutMix (Yun et al., ICCV 2019): a box of each image replaced by the same box of another image of its batch,
    λ ~ Beta(α, α) per batch; the box (area about 1 − λ, centre uniform, clipped at the border) and the targets'
    weights follow the pasted area exactly. `x` is a batch of images (n, h, w, c)."""
    if x.ndim != 4:
        raise TransferkitError(f"CutMix needs a batch of images (n, h, w, c). Received: shape {x.shape}")
    lam = float(rng.beta(alpha, alpha))
    other = rng.permutation(len(x))
    h, w = x.shape[1:3]
    side = math.sqrt(1 - lam)
    cy, cx = int(rng.integers(h)), int(rng.integers(w))
    top, bottom = np.clip([cy - round(side * h / 2), cy + round(side * h / 2)], 0, h)
    left, right = np.clip([cx - round(side * w / 2), cx + round(side * w / 2)], 0, w)
    mixed = x.copy()
    mixed[:, top:bottom, left:right] = x[other, top:bottom, left:right]
    kept = 1 - (bottom - top) * (right - left) / (h * w)
    return mixed, (kept * y + (1 - kept) * y[other]).astype("float32")


@dataclass(frozen=True)
class BatchMix:
    """How a training batch is mixed with itself: mixup (α `mixup`), CutMix (α `cutmix`, images only), or, with
    both above 0, one of them per batch with even odds (timm's `Mixup` switch). False when both are 0.

    Example:
    >>> mix = BatchMix(mixup=0.2)  # doctest: +SKIP
    >>> x, y = mix(x, y, np.random.default_rng(0))  # doctest: +SKIP
    """

    mixup: float = 0.0
    cutmix: float = 0.0

    def __bool__(self) -> bool:
        return self.mixup > 0 or self.cutmix > 0

    def __call__(self, x: np.ndarray, y: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
        if self.cutmix > 0 and (self.mixup <= 0 or rng.random() < 0.5):
            return cutmix(x, y, self.cutmix, rng)
        return mixup(x, y, self.mixup, rng)

    def without_cutmix(self) -> "BatchMix":
        """The mixing for stages that train on feature vectors, which have no pixels to cut."""
        return BatchMix(mixup=self.mixup)


def _batches(n: int, load, *, batch_size: int, shuffle: bool, seed: int, epoch: int, mix: BatchMix | None = None):
    """A `keras.utils.PyDataset` over rows 0..n-1 in `epoch_order`, each batch made by `load(rows)` (and mixed as
    `mix` says, by a random state of (seed, epoch, batch) alone)."""
    import keras

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.epoch = epoch
            self.order = epoch_order(n, seed, epoch, shuffle)

        def __len__(self):
            return math.ceil(n / batch_size)

        def __getitem__(self, i):
            x, y = load(self.order[i * batch_size:(i + 1) * batch_size])
            if mix:
                x, y = mix(x, y, np.random.default_rng([seed, self.epoch, i, 1]))
            return x, y

        def on_epoch_end(self):
            self.epoch += 1
            self.order = epoch_order(n, seed, self.epoch, shuffle)

    return Batches()


def make_dataset(index: ImageIndex, input_config: InputConfig, *, batch_size: int, shuffle: bool, seed: int = 0,
                 onehot: bool = False, mix: BatchMix | None = None, workers: int = 4, epoch: int = 0):
    """A `keras.utils.PyDataset` of (float32 images in [0, 255], `targets`), decoded by a thread pool as
    `input_config` says; `epoch` is the epoch its first pass serves (a resumed stage's next epoch); `mix`: how
    batches are mixed (`BatchMix`; None: not at all)."""
    pool = ThreadPoolExecutor(workers, thread_name_prefix="transferkit-train")
    n_classes = len(index.class_names)

    def load(rows):
        images = list(pool.map(lambda r: input_config.load(index.absolute(r)), rows))
        return np.stack(images).astype("float32"), targets(index.labels[rows], n_classes, onehot)

    return _batches(len(index), load, batch_size=batch_size, shuffle=shuffle, seed=seed, epoch=epoch, mix=mix)


def array_dataset(x: np.ndarray, y: np.ndarray, *, batch_size: int, shuffle: bool, seed: int = 0, epoch: int = 0,
                  mix: BatchMix | None = None):
    """(x, y) arrays as a `keras.utils.PyDataset` in `epoch_order` (for resumable, reproducible head training)."""
    return _batches(len(x), lambda rows: (x[rows], y[rows]), batch_size=batch_size, shuffle=shuffle, seed=seed,
                    epoch=epoch, mix=mix)
