"""The layout of a labelled image folder: `train/ validation/ [test/] <class>/`, or one `<class>/` folder split
by a seed or dealt into stratified folds — the rule every command that reads such a folder uses."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import TransferkitError
from .folder import ImageIndex, index_images
from .folds import stratified_folds

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
