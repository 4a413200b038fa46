"""Stratified, seeded k-fold assignment: which fold holds each labelled row out (one rule for training and audit)."""

from __future__ import annotations

import numpy as np

from ..errors import TransferkitError, plural


def stratified_folds(labels: np.ndarray, folds: int, seed: int = 0, class_names=None) -> np.ndarray:
    """The fold (0 … folds-1) of every row: each class's rows shuffled by `seed`, then dealt round-robin, so every
    fold holds each class in proportion (sizes differ by at most one per class).

    Args:
        labels: integer class of each row.
        folds: k, at least 2; every class needs at least k rows.
        seed: the shuffle (a function of the seed alone: the same folds on every machine and run).
        class_names: names for the error message.

    Raises:
        TransferkitError: k below 2, or a class with fewer than k rows (named, with its count).

    Example:
    >>> stratified_folds(np.array([0, 0, 1, 1, 0, 1]), 2).tolist()
    [1, 0, 0, 1, 0, 0]
    """
    labels = np.asarray(labels)
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise TransferkitError(f"`folds` must be an integer of at least 2 (e.g. 5). Received: folds={folds!r}")
    counts = np.bincount(labels, minlength=len(class_names or []))
    small = np.flatnonzero(counts < folds).tolist()
    if small:
        name = class_names[small[0]] if class_names else small[0]
        have = int(counts[small[0]])
        fix = (f"Pass --folds {have} or fewer, or add images." if have >= 2 else
               f"Add images to {name!r} (at least 2), or leave the class out.")
        raise TransferkitError(f"Class {name!r} has {plural(have, 'image')}, fewer than the {folds} folds: each "
                               f"fold must hold at least one image of every class. {fix}")
    fold = np.empty(len(labels), np.int64)
    rng = np.random.default_rng(seed)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        rng.shuffle(rows)
        fold[rows] = np.arange(len(rows)) % folds
    return fold
