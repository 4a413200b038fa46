"""Training data: a `train/ validation/ [test/] <class>/` folder as Keras `PyDataset`s of decoded images."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.decode import DecodeError, load_image
from ..data.folder import ImageIndex, index_images
from ..data.folds import stratified_folds
from ..data.input_config import InputConfig
from ..errors import TransferkitError, warn_skipped

VALIDATION_NAMES = ("validation", "val", "valid")


@dataclass
class Splits:
    """The indexed splits of a training folder, sharing one class list (`pool`: the labelled images the folds of a
    k-fold run were dealt from, when it is one)."""

    train: ImageIndex
    validation: ImageIndex
    test: ImageIndex | None
    class_names: list[str]
    pool: ImageIndex | None = None


def _check_root(data) -> Path:
    root = Path(data)
    if root.is_file() and root.suffix.lower() == ".csv":  # a path,label list (e.g. from `transferkit audit`)
        return root
    if not root.is_dir():
        raise TransferkitError(f"The training folder {str(root)!r} does not exist"
                               + (" (it is a file)." if root.exists() else "."))
    return root


def _validation_dir(root: Path) -> Path | None:
    return next((root / n for n in VALIDATION_NAMES if (root / n).is_dir()), None)


def _index_classes(folder: Path, where: str) -> ImageIndex:
    """The labelled images of `folder`; at least two classes."""
    found = index_images(folder)
    if found.labels is None:
        raise TransferkitError(f"{str(folder)!r} has no class sub-folders: put each class's images in {where}<class>/.")
    if len(found.class_names) < 2:
        raise TransferkitError(f"Training needs at least 2 classes; {str(folder)!r} has {found.class_names}.")
    return found


def _index_validation(val_dir: Path, root: Path, classes: list[str]) -> ImageIndex:
    """The validation folder's images, labelled by train/'s class list (a class train/ lacks is an error)."""
    found = index_images(val_dir)
    extra = sorted(set(found.class_names) - set(classes))
    if extra:
        raise TransferkitError(
            f"{val_dir.name}/ of {str(root)!r} has class folders that train/ lacks: {extra} (train/ has "
            f"{classes}). Add them to train/ or remove them from {val_dir.name}/.")
    return index_images(val_dir, class_names=classes)


def labelled_pool(data) -> tuple[ImageIndex, list[str]]:
    """Every labelled image of a training folder as one index rooted at the folder — `train/…` and
    `validation/…` rows of a split folder, or all of a plain `<class>/` folder — and each row's split name
    ("train", "validation" or "" for a plain folder). k-fold runs and the audit deal their folds from it."""
    root = _check_root(data)
    if not (root / "train").is_dir():
        plain = _index_classes(root, "")
        return plain, [""] * len(plain)
    train = _index_classes(root / "train", "train/")
    parts = [("train", train)]
    val_dir = _validation_dir(root)
    if val_dir is not None:
        parts.append((val_dir.name, _index_validation(val_dir, root, train.class_names)))
    paths = [f"{name}/{p}" for name, idx in parts for p in idx.paths]
    labels = np.concatenate([idx.labels for _, idx in parts]).astype(np.int32)
    split = [("validation" if name in VALIDATION_NAMES else name) for name, idx in parts for _ in idx.paths]
    outside = frozenset(f"{name}/{p}" for name, idx in parts for p in idx.outside)
    return ImageIndex(root.resolve(), paths, labels, train.class_names, outside=outside), split


def find_splits(data, *, validation_split: float | None = None, seed: int = 0, folds: int | None = None,
                fold: int | None = None) -> Splits:
    """Index `DATA/train`, `DATA/validation` (or `val`) and optional `DATA/test`.

    Without a validation folder, `validation_split` (e.g. 0.2) holds out a stratified, seeded fraction of
    `train` — or, with `validation_split`, of a plain `DATA/<class>/` folder (no train/ inside).
    With `folds` and `fold` (1 … folds), train and validation are fold `fold` of `stratified_folds` over every
    labelled image (`labelled_pool`: train/ and validation/, or a plain `<class>/` folder), dealt by `seed`.

    Raises:
        TransferkitError: when the layout is not `train/<class>/...` or classes differ.
    """
    root = _check_root(data)
    if folds is not None:
        return _fold_splits(root, folds, fold, seed)
    plain = not (root / "train").is_dir() and validation_split is not None and _validation_dir(root) is None
    if root.is_file() and not plain:
        raise TransferkitError(f"The CSV {str(root)!r} is one list of images: pass --validation-split 0.2 or "
                               "--folds 5 to validate on part of it.")
    if not (root / "train").is_dir() and not plain:
        raise TransferkitError(f"{str(root)!r} must contain a train/ folder with one sub-folder per class "
                               "(and validation/), or be a folder of <class>/ sub-folders with --validation-split 0.2.")
    train_dir = root if plain else root / "train"
    train = _index_classes(train_dir, "" if plain else "train/")
    classes = train.class_names
    val_dir = _validation_dir(root)
    if val_dir is not None and validation_split:
        raise TransferkitError(f"{str(root)!r} has a {val_dir.name}/ folder; drop --validation-split or the folder.")
    if val_dir is not None:
        validation = _index_validation(val_dir, root, classes)
    elif validation_split:
        if not 0 < validation_split < 1:
            raise TransferkitError(f"`validation_split` must be between 0 and 1. Received: {validation_split}")
        train, validation = _split(train, validation_split, seed)
    else:
        raise TransferkitError(f"{str(root)!r} has no validation/ folder. Add one, or pass --validation-split 0.2.")
    test = index_images(root / "test", class_names=classes) if (root / "test").is_dir() and not plain else None
    return Splits(train, validation, test, classes)


def _fold_splits(root: Path, folds: int, fold: int | None, seed: int) -> Splits:
    pool, _ = labelled_pool(root)
    assigned = stratified_folds(pool.labels, folds, seed, pool.class_names)
    if isinstance(fold, bool) or not isinstance(fold, int) or not 1 <= fold <= folds:
        raise TransferkitError(f"`fold` must be from 1 to {folds}. Received: fold={fold!r}")
    held = assigned == fold - 1
    test_dir = root / "test"
    test = index_images(test_dir, class_names=pool.class_names) if (root / "train").is_dir() and test_dir.is_dir() \
        else None
    return Splits(pool.subset(np.flatnonzero(~held)), pool.subset(np.flatnonzero(held)), test, pool.class_names,
                  pool=pool)


def run_validation_index(config: dict) -> ImageIndex | None:
    """The validation images of a run, re-derived from its config.json settings; None when they are gone."""
    try:
        return find_splits(config["data"], validation_split=config.get("validation_split"),
                           seed=config.get("seed", 0), folds=config.get("folds"), fold=config.get("fold")).validation
    except (TransferkitError, KeyError, OSError):
        return None


def _split(index: ImageIndex, fraction: float, seed: int) -> tuple[ImageIndex, ImageIndex]:
    rng = np.random.default_rng(seed)
    held = []
    for c in range(len(index.class_names)):
        idx = np.flatnonzero(index.labels == c)
        rng.shuffle(idx)
        held.extend(idx[: max(1, int(round(len(idx) * fraction)))].tolist())
    held_set = set(held)
    keep = [i for i in range(len(index)) if i not in held_set]
    return index.subset(keep), index.subset(sorted(held_set))


def drop_unreadable(index: ImageIndex, size: int, workers: int = 4) -> tuple[ImageIndex, list[dict]]:
    """Decode every image once; return the index without unreadable files and the list of those skipped."""
    def check(i):
        try:
            index.check(i)
            load_image(index.absolute(i), 8)
            return None
        except DecodeError as exc:
            return {"path": index.paths[i], "reason": exc.reason}

    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(check, range(len(index))))
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
