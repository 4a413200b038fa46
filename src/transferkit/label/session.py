"""A labelling session: a pool's cached features, the answers so far, the probe fitted to them, and the next images
to ask about."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np

from ..errors import TransferkitError, check_one_of
from ..files import write_json_atomic, write_text_atomic
from ..probe import fit_probe, out_of_fold_probabilities
from .select import STRATEGIES, Pool, reduce_features
from .store import AnswerStore

# The probe's regularisation on pool-standardised features: C = 0.1 learned fastest from few labels on digits and
# ELPV (docs/label.md); the audit's stronger C = 0.01 suits its many labels and noise.
C = 1.0


def standardise(matrix: np.ndarray) -> np.ndarray:
    """Features scaled by the whole pool's mean and spread (known before any label, so every fit shares them)."""
    x = np.asarray(matrix, np.float32)
    return (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-6)


def cross_validated_accuracy(x: np.ndarray, labels: np.ndarray, seed: int = 0) -> tuple[float | None, np.ndarray]:
    """Accuracy of out-of-fold predictions over the labelled rows (up to 5 folds, as many as the smallest class
    allows; None below 2 per class), and the out-of-fold probabilities (rows × present classes; empty if None)."""
    present, y = np.unique(labels, return_inverse=True)
    counts = np.bincount(y)
    if len(present) < 2 or counts.min() < 2:
        return None, np.zeros((0, 0))
    probs = out_of_fold_probabilities(x, y, int(min(5, counts.min())), seed, C=C, standardise=False)
    return float((probs.argmax(axis=1) == y).mean()), probs


class LabelSession:
    """Labelling a pool with a model in the loop.

    Args:
        paths: absolute path of each pool row.
        matrix: (rows, dim) features of the pool, row-aligned with `paths`.
        csv_path: the labels CSV (and its journal beside it); an existing journal is continued.
        given: path -> class for images labelled before (class sub-folders, a CSV).
        classes: class names to offer from the start.
        strategy: a name in `STRATEGIES`.
        batch: images chosen at a time.
        seed: selection's random state.

    Example:
    >>> session = LabelSession(fs_paths, fs.matrix, "labels.csv", classes=["cat", "dog"])  # doctest: +SKIP
    >>> first = session.next_batch()  # doctest: +SKIP
    >>> session.answer(first[0]["index"], "cat")  # doctest: +SKIP
    """

    def __init__(self, paths: list[str], matrix: np.ndarray, csv_path, *, given: dict | None = None,
                 classes: list[str] | None = None, strategy: str = "auto", batch: int = 10, seed: int = 0):
        check_one_of("--strategy", strategy, list(STRATEGIES))
        if len(paths) == 0:
            raise TransferkitError("The pool has no images to label.")
        self.paths = list(paths)
        self.row_of = {p: i for i, p in enumerate(self.paths)}
        self.x = standardise(matrix)
        self.reduced = reduce_features(self.x, seed=seed)
        self.store = AnswerStore(csv_path, given=given, classes=classes,
                                 keep=lambda p: p in self.row_of or os.path.exists(p))
        self.strategy, self.batch, self.seed = strategy, batch, seed
        self.rng = np.random.default_rng(seed)
        self.probs: np.ndarray | None = None
        self.estimate: float | None = None
        self.curve: list[dict] = []
        self.lock = threading.RLock()
        self.fitted_version = -1  # the answers' version (`AnswerStore.version`) the probe was fitted at
        self.store.write_csv()
        self.refit()

    # --- the model ------------------------------------------------------------------------------------------
    def labelled_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Row numbers and class numbers (in `store.classes` order) of the labelled images of the pool."""
        known = [(self.row_of[p], self.store.classes.index(c)) for p, c in self.store.labels().items()
                 if p in self.row_of]
        rows, labels = (np.array(v, dtype=int) for v in zip(*known)) if known else (np.zeros(0, int),) * 2
        return rows, labels

    def refit(self) -> None:
        """Fit the probe on every label (≥ 2 classes), predict the pool, estimate accuracy by cross-validation
        and add a point to the curve. The fit runs outside the session's lock: answers go on meanwhile."""
        with self.lock:
            rows, labels = self.labelled_rows()
            n_classes, version = len(self.store.classes), self.store.version
        if len(np.unique(labels)) < 2:
            with self.lock:
                self.probs, self.estimate, self.fitted_version = None, None, version
            return
        started = time.perf_counter()
        probe = fit_probe(self.x[rows], labels, n_classes, C=C, seed=self.seed, standardise=False)
        probs = probe.predict_proba(self.x)
        estimate, _ = cross_validated_accuracy(self.x[rows], labels, self.seed)
        with self.lock:
            if n_classes < len(self.store.classes):  # a class was added meanwhile: it has no probability yet
                probs = np.pad(probs, ((0, 0), (0, len(self.store.classes) - n_classes)))
            self.probs, self.estimate, self.fitted_version = probs, estimate, version
            self.curve = [c for c in self.curve if c["labels"] < len(rows)]
            self.curve.append({"labels": len(rows), "cv_accuracy": estimate,
                               "seconds": round(time.perf_counter() - started, 3)})

    # --- asking ---------------------------------------------------------------------------------------------
    def unanswered(self) -> np.ndarray:
        return np.array([not self.store.answered(p) for p in self.paths])

    def next_batch(self, k: int | None = None, exclude=()) -> list[dict]:
        """The next images to ask about (`k`, default the session's batch), each with the model's suggestion."""
        with self.lock:
            labelled = ~self.unanswered()
            labelled[list(exclude)] = True
            if labelled.all():
                return []
            rows, labels = self.labelled_rows()
            pool = Pool(self.reduced, labelled, self.probs, len(np.unique(labels)))
            chosen = STRATEGIES[self.strategy](pool, k or self.batch, self.rng)
            return [self.describe(int(i)) for i in chosen]

    def describe(self, row: int) -> dict:
        """One image as the page shows it: its row, path, and the model's suggestion and confidence."""
        item = {"index": row, "path": self.paths[row], "suggestion": None, "confidence": None}
        if self.probs is not None:
            best = int(self.probs[row].argmax())
            item.update(suggestion=self.store.classes[best], confidence=round(float(self.probs[row, best]), 4))
        return item

    # --- answers --------------------------------------------------------------------------------------------
    def answer(self, row: int, label: str) -> None:
        with self.lock:
            self.store.answer(self.path_of(row), label)

    def skip(self, row: int) -> None:
        with self.lock:
            self.store.skip(self.path_of(row))

    def undo(self) -> int | None:
        """Take back the last answer; the row it was for (to ask again), or None."""
        with self.lock:
            path = self.store.undo()
            return self.row_of.get(path) if path is not None else None

    def add_class(self, name: str) -> None:
        name = name.strip()
        if not name or len(name) > 100 or any(c in name for c in "/\\\n\r\t\0"):
            raise TransferkitError(f"A class name must be 1–100 characters without slashes or line breaks. "
                                   f"Received: {name[:100]!r}")
        with self.lock:
            self.store.add_class(name)

    def path_of(self, row: int) -> str:
        """The absolute path of pool row `row` (an error naming the valid range otherwise)."""
        if not 0 <= row < len(self.paths):
            raise TransferkitError(f"No image {row} in the pool (0 … {len(self.paths) - 1}).")
        return self.paths[row]

    # --- reporting ------------------------------------------------------------------------------------------
    def status(self) -> dict:
        with self.lock:
            rows, _ = self.labelled_rows()
            return {"classes": list(self.store.classes), "counts": self.store.counts(), "labelled": len(rows),
                    "skipped": len(self.store.skipped), "pool": len(self.paths),
                    "unanswered": int(self.unanswered().sum()), "cv_accuracy": self.estimate,
                    "curve": list(self.curve), "strategy": self.strategy, "csv": str(self.store.csv_path)}

    def export_predicted(self, out, min_confidence: float = 0.9) -> dict:
        """Write `path,label,confidence` for every unlabelled image the probe labels with at least
        `min_confidence`, and `<out>.json` with the estimated accuracy at that threshold: the share right among
        the labelled images whose out-of-fold confidence reaches it. Returns that summary."""
        if not 0.0 <= min_confidence <= 1.0:
            raise TransferkitError(f"--min-confidence must be between 0 and 1. Received: {min_confidence}")
        with self.lock:
            if self.fitted_version != self.store.version:
                self.refit()
            if self.probs is None:
                raise TransferkitError("No model yet: label images of at least two classes first.")
            rows, labels = self.labelled_rows()
            present = np.unique(labels)
            _, oof = cross_validated_accuracy(self.x[rows], labels, self.seed)
            free = np.flatnonzero(self.unanswered())
            best, confidence = self.probs[free].argmax(axis=1), self.probs[free].max(axis=1)
            keep = confidence >= min_confidence
            lines = ["path,label,confidence"] + [
                _csv_row(self.paths[r], self.store.classes[c], p) for r, c, p in
                zip(free[keep], best[keep], confidence[keep])]
            summary = {"min_confidence": min_confidence, "unlabelled": int(len(free)), "written": int(keep.sum()),
                       "labelled": int(len(rows)), "estimated_accuracy": None, "estimated_from": 0}
            if len(oof):
                sure = oof.max(axis=1) >= min_confidence
                right = present[oof.argmax(axis=1)] == labels
                summary.update(estimated_from=int(sure.sum()),
                               estimated_accuracy=float(right[sure].mean()) if sure.any() else None)
        out = Path(out)
        write_text_atomic(out, "\n".join(lines) + "\n")
        write_json_atomic(out.with_suffix(".json"), summary)
        return summary


def _csv_row(path: str, label: str, confidence: float) -> str:
    import csv
    import io

    text = io.StringIO()
    csv.writer(text, lineterminator="").writerow([path, label, f"{confidence:.4f}"])
    return text.getvalue()
