"""Labelling simulated from known answers: each strategy's accuracy on a held-out split against the number of
labels, beside random, over several seeds — the measurement behind `auto`, rerunnable on any labelled pool."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import TransferkitError, check_one_of, check_positive_int
from ..files import atomic_path, write_json_atomic, write_text_atomic
from ..probe import fit_probe
from .select import STRATEGIES, Pool, reduce_features
from .session import C, standardise
from .store import read_label_csv

REACH = 0.95  # "labels needed": the first count whose mean accuracy reaches this share of the all-labels accuracy


@dataclass
class Simulation:
    """Curves of a simulated labelling.

    Attributes:
        rows: one dict per (strategy, seed, labels): test accuracy of the probe fitted on those labels.
        full_accuracy: per seed, the probe fitted on every pool label (the ceiling).
        class_names: the classes, in label order.
        test_size, pool_size: rows held out for testing, rows to label from.
    """

    rows: list[dict]
    full_accuracy: list[float]
    class_names: list[str]
    test_size: int
    pool_size: int
    summary: dict = field(default_factory=dict)

    def mean_curve(self, strategy: str) -> tuple[np.ndarray, np.ndarray]:
        """Label counts and the mean test accuracy over seeds at each."""
        mine = [r for r in self.rows if r["strategy"] == strategy]
        counts = sorted({r["labels"] for r in mine})
        means = [np.mean([r["accuracy"] for r in mine if r["labels"] == n]) for n in counts]
        return np.array(counts), np.array(means)

    def labels_to_reach(self, strategy: str, share: float = REACH) -> int | None:
        """The fewest labels at which the mean accuracy reaches `share` of the mean all-labels accuracy."""
        counts, means = self.mean_curve(strategy)
        target = share * float(np.mean(self.full_accuracy))
        hit = np.flatnonzero(means >= target)
        return int(counts[hit[0]]) if len(hit) else None


def read_truth(path, pool_paths: list[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The pool rows TRUTH.csv labels (`path,label`; relative paths from the CSV's folder) and their classes."""
    truth = read_label_csv(path, "--simulate")
    rows = [i for i, p in enumerate(pool_paths) if p in truth]
    names = [truth[pool_paths[i]] for i in rows]
    if len(set(names)) < 2:
        raise TransferkitError(f"--simulate {str(path)!r} labels {len(rows)} of the pool's {len(pool_paths)} images "
                               f"with {len(set(names))} class(es); it needs at least 2 classes of pool images.")
    classes = sorted(set(names))
    return np.array(rows), np.array([classes.index(n) for n in names]), classes


def simulate(matrix: np.ndarray, labels: np.ndarray, class_names: list[str], *, budget: int = 200,
             strategies=("random", "auto"), seeds: int = 3, batch: int = 10, test_fraction: float = 0.25,
             on_step=None) -> Simulation:
    """Label `budget` images with each strategy, answering from `labels`, and measure the probe on a held-out
    split after every batch; the split and the starting state differ by seed, and are the same for every strategy.

    Args:
        matrix: (rows, dim) features of the labelled rows.
        labels: the true class of each row.
        class_names: class names, label order.
        budget: labels per run.
        strategies: names in `STRATEGIES`.
        seeds: runs per strategy.
        batch: images chosen at a time.
        test_fraction: the share of each class held out for testing.
        on_step: called with (strategy, seed, labels, accuracy) after every batch.

    Example:
    >>> from sklearn.datasets import load_digits  # doctest: +SKIP
    >>> d = load_digits(); sim = simulate(d.data, d.target, [str(i) for i in range(10)], budget=100)  # doctest: +SKIP
    >>> sim.labels_to_reach("auto") < sim.labels_to_reach("random")  # doctest: +SKIP
    True
    """
    for name in strategies:
        check_one_of("--strategy", name, list(STRATEGIES))
    budget, seeds, batch = (check_positive_int(a, v) for a, v in
                            (("--budget", budget), ("--seeds", seeds), ("--batch", batch)))
    x = standardise(matrix)
    reduced = reduce_features(x)
    rows, full = [], []
    for seed in range(seeds):
        test = _held_out(labels, test_fraction, seed)
        pool_rows = np.flatnonzero(~test)
        probe = fit_probe(x[pool_rows], labels[pool_rows], len(class_names), C=C, seed=seed, standardise=False)
        full.append(_accuracy(probe, x[test], labels[test]))
        for name in strategies:
            for n, accuracy in _run(x, reduced, labels, pool_rows, test, name, budget, batch, seed, len(class_names)):
                rows.append({"strategy": name, "seed": seed, "labels": n, "accuracy": accuracy})
                if on_step:
                    on_step(name, seed, n, accuracy)
    sim = Simulation(rows, full, list(class_names), int(test.sum()), len(pool_rows))
    sim.summary = {"full_accuracy_mean": float(np.mean(full)), "reach": REACH, "budget": budget, "seeds": seeds,
                   "batch": batch, "labels_to_reach": {s: sim.labels_to_reach(s) for s in strategies}}
    return sim


def _run(x, reduced, labels, pool_rows, test, strategy, budget, batch, seed, n_classes):
    """One simulated labelling: (labels, test accuracy) after each batch."""
    rng = np.random.default_rng(1000 + seed)
    labelled = np.ones(len(x), bool)
    labelled[pool_rows] = False  # the test rows are never candidates
    probs, taken = None, []
    while len(taken) < min(budget, len(pool_rows)):
        present = np.unique(labels[taken]) if taken else np.zeros(0, int)
        pool = Pool(reduced, labelled, probs, len(present))
        chosen = STRATEGIES[strategy](pool, min(batch, budget - len(taken)), rng)
        labelled[chosen] = True
        taken.extend(int(i) for i in chosen)
        y = labels[taken]
        if len(np.unique(y)) < 2:
            yield len(taken), float(np.mean(labels[test] == y[0]))  # one class known: every answer is that class
            continue
        probe = fit_probe(x[taken], y, n_classes, C=C, seed=seed, standardise=False)
        probs = probe.predict_proba(x)
        yield len(taken), _accuracy(probe, x[test], labels[test])


def _accuracy(probe, x, y) -> float:
    return float((probe.predict_proba(x).argmax(axis=1) == y).mean())


def _held_out(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A stratified held-out mask: `fraction` of each class (at least one row of each)."""
    rng = np.random.default_rng(seed)
    test = np.zeros(len(labels), bool)
    for c in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == c))
        test[rows[:max(1, int(round(fraction * len(rows))))]] = True
    return test


def write_simulation(sim: Simulation, out) -> list[Path]:
    """curve.csv (strategy, seed, labels, accuracy), summary.json and curve.png (mean ± spread per strategy, and
    the all-labels accuracy) in the folder `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    text = io.StringIO()
    writer = csv.DictWriter(text, ["strategy", "seed", "labels", "accuracy"], lineterminator="\n")
    writer.writeheader()
    writer.writerows({**r, "accuracy": f"{r['accuracy']:.4f}"} for r in sim.rows)
    written = [write_text_atomic(out / "curve.csv", text.getvalue()),
               write_json_atomic(out / "summary.json", {**sim.summary, "classes": sim.class_names,
                                                        "test_size": sim.test_size, "pool_size": sim.pool_size})]
    try:
        import matplotlib
    except ImportError:
        return written
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=100)
    for strategy in dict.fromkeys(r["strategy"] for r in sim.rows):
        counts, means = sim.mean_curve(strategy)
        per_seed = [[r["accuracy"] for r in sim.rows if r["strategy"] == strategy and r["labels"] == n]
                    for n in counts]
        low, high = [min(v) for v in per_seed], [max(v) for v in per_seed]
        reach = sim.labels_to_reach(strategy)
        ax.plot(counts, means, label=f"{strategy} ({REACH:.0%} at {reach if reach else '>' + str(counts[-1])} labels)")
        ax.fill_between(counts, low, high, alpha=0.2)
    full = float(np.mean(sim.full_accuracy))
    ax.axhline(full, color="grey", linestyle="--", label=f"every label ({sim.pool_size}): {full:.1%}")
    ax.axhline(REACH * full, color="grey", linestyle=":", label=f"{REACH:.0%} of that")
    ax.set_xlabel("labels")
    ax.set_ylabel(f"test accuracy ({sim.test_size} held-out images)")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(out / "curve.png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return [*written, out / "curve.png"]
