"""`transferkit label`: from a pool of images (some labelled by their sub-folder, most not) to a labels CSV, with
the model in the loop — on a local page, simulated from known answers, or as predicted labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..backbones.registry import DEFAULT_MODEL
from ..errors import TransferkitError, check_one_of, check_positive_int
from .select import STRATEGIES
from .session import LabelSession
from .store import read_label_csv

UNLABELLED_FOLDERS = ("unlabelled", "unlabeled")  # sub-folders whose images wait for labels like top-level ones


def features_folder(out) -> Path:
    """Where the pool's features are cached by default: `<labels>-features/` beside the labels CSV."""
    out = Path(out)
    return out.with_name(out.stem + "-features")


def pool_features(pool, features=None, *, out="labels.csv", model: str = DEFAULT_MODEL,
                  input_size: int | None = None, weights="imagenet", precision: str = "auto", batch_size: int = 32,
                  quiet: bool = False):
    """The pool's features, extracted once into `features` (default `features_folder(out)`) and brought up to date
    with the pool on every later call (new and changed images extracted, removed ones dropped)."""
    from ..extract.runner import extract

    folder = Path(features) if features is not None else features_folder(out)
    update = (folder / "manifest.json").is_file()
    return extract(pool, folder, model=model, input_size=input_size, weights=weights, precision=precision,
                   batch_size=batch_size, labels="none", quiet=quiet, update=update)


def given_labels(root, paths: list[str], labels_csv=None) -> dict[str, str]:
    """Absolute path -> class for images labelled before: by a class sub-folder of the pool (not `unlabelled/`),
    and by `labels_csv` (`path,label`, relative paths from its folder), which wins."""
    root = Path(root)
    given = {}
    for p in paths:
        head = p.split("/", 1)[0]
        if "/" in p and head.lower() not in UNLABELLED_FOLDERS:
            given[str(root / p)] = head
    if labels_csv is not None:
        given.update(read_label_csv(labels_csv, "--labels"))
    return given


def check_options(*, strategy: str, batch: int, budget: int | None, seeds: int, min_confidence: float) -> None:
    """Every option's value, before anything is extracted."""
    check_one_of("--strategy", strategy, list(STRATEGIES))
    check_positive_int("--batch", batch)
    check_positive_int("--seeds", seeds)
    if budget is not None:
        check_positive_int("--budget", budget)
    if not 0.0 <= min_confidence <= 1.0:
        raise TransferkitError(f"--min-confidence must be between 0 and 1. Received: {min_confidence}")


def open_session(fs, out="labels.csv", *, labels_csv=None, classes=None, strategy: str = "auto", batch: int = 10,
                 seed: int = 0) -> LabelSession:
    """A `LabelSession` over a feature set of the pool, continuing the answers of `out` if there are any.

    Example:
    >>> fs = pool_features("pool/", out="labels.csv", weights="none")  # doctest: +SKIP
    >>> session = open_session(fs, "labels.csv", classes=["cat", "dog"])  # doctest: +SKIP
    """
    root = Path(fs.root)
    paths = [str(root / p) for p in fs.paths]
    if fs.skipped:
        from ..errors import warn_skipped

        warn_skipped(fs.skipped)
    given = given_labels(root, fs.paths, labels_csv)
    return LabelSession(paths, np.asarray(fs.matrix, np.float32), out, given=given, classes=classes,
                        strategy=strategy, batch=batch, seed=seed)
