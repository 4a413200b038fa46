"""Which images to ask about next: random, margin (uncertain), typical (TypiClust's cold start), diverse
batches of uncertain images, and auto (the one measured best), one function per strategy in `STRATEGIES`.

Every strategy sees the same `Pool` view: `x` (rows of standardised, reduced features), which rows are labelled,
and the current probe's probabilities (None before two classes have labels)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# TypiClust (Hacohen et al., ICML 2022): typicality is the inverse mean distance to a point's 20 nearest
# neighbours; clusters of fewer than 5 points are left out; at most 500 clusters keep k-means cheap.
NEIGHBOURS = 20
MIN_CLUSTER = 5
MAX_CLUSTERS = 500
# typical-then-diverse: typical images until this many labels per class seen so far, then uncertain images in
# diverse batches (the candidates: this many times the batch's least certain images, one from each of `batch`
# clusters).
TYPICAL_PER_CLASS = 5
CANDIDATES = 10


@dataclass
class Pool:
    """What a strategy may look at.

    Attributes:
        x: (rows, dim) features, standardised and reduced (`reduce_features`).
        labelled: bool per row, labelled (or skipped: never asked again).
        probs: (rows, classes) probabilities of the current probe, or None.
        n_classes: classes with at least one label.
    """

    x: np.ndarray
    labelled: np.ndarray
    probs: np.ndarray | None
    n_classes: int


def reduce_features(matrix: np.ndarray, dims: int = 64, seed: int = 0) -> np.ndarray:
    """Standardised features projected on their first `dims` principal components (all when fewer): distances
    for clustering and typicality that cost little and are not dominated by a few loud dimensions."""
    x = np.asarray(matrix, np.float64)
    x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-6)
    if x.shape[1] <= dims or len(x) <= dims:
        return x.astype(np.float32)
    from sklearn.decomposition import PCA

    return PCA(dims, random_state=seed, svd_solver="randomized").fit_transform(x).astype(np.float32)


def random_choice(pool: Pool, k: int, rng: np.random.Generator) -> np.ndarray:
    """`k` unlabelled rows at random."""
    free = np.flatnonzero(~pool.labelled)
    return rng.choice(free, size=min(k, len(free)), replace=False)


def margin(pool: Pool, k: int, rng: np.random.Generator) -> np.ndarray:
    """The `k` unlabelled rows whose two likeliest classes are closest (random before there is a probe)."""
    if pool.probs is None:
        return random_choice(pool, k, rng)
    free = np.flatnonzero(~pool.labelled)
    return free[np.argsort(_margins(pool.probs[free]), kind="stable")[:k]]


def typical(pool: Pool, k: int, rng: np.random.Generator) -> np.ndarray:
    """TypiClust: k-means into (labelled + k) clusters; from each of the k clusters with the fewest labelled rows
    (the largest first), its most typical unlabelled row."""
    free = np.flatnonzero(~pool.labelled)
    if len(free) <= k:
        return free
    n_clusters = min(int(pool.labelled.sum()) + k, MAX_CLUSTERS, len(pool.x))
    assigned = _kmeans(pool.x, n_clusters, rng)
    sizes = np.bincount(assigned, minlength=n_clusters)
    covered = np.bincount(assigned[pool.labelled], minlength=n_clusters)
    order = sorted(range(n_clusters), key=lambda c: (covered[c], -sizes[c]))
    chosen = []
    for c in order:
        if len(chosen) == k:
            break
        members = np.flatnonzero(assigned == c)
        candidates = members[~pool.labelled[members]]
        if sizes[c] < MIN_CLUSTER or len(candidates) == 0:
            continue
        chosen.append(candidates[np.argmax(_typicality(pool.x[members], pool.x[candidates]))])
    if len(chosen) < k:  # small clusters only: fill at random
        rest = np.setdiff1d(free, chosen)
        chosen.extend(rng.choice(rest, size=min(k - len(chosen), len(rest)), replace=False))
    return np.asarray(chosen, dtype=int)


def diverse_margin(pool: Pool, k: int, rng: np.random.Generator) -> np.ndarray:
    """The least certain rows in a diverse batch: the `CANDIDATES` × k lowest margins, k-means into k clusters,
    the least certain row of each."""
    if pool.probs is None:
        return typical(pool, k, rng)
    free = np.flatnonzero(~pool.labelled)
    if len(free) <= k:
        return free
    margins = _margins(pool.probs[free])
    candidates = free[np.argsort(margins, kind="stable")[:CANDIDATES * k]]
    assigned = _kmeans(pool.x[candidates], min(k, len(candidates)), rng)
    by_row = dict(zip(free.tolist(), margins.tolist()))
    chosen = [min(candidates[assigned == c], key=by_row.__getitem__) for c in np.unique(assigned)]
    return np.asarray(chosen, dtype=int)


def typical_then_diverse(pool: Pool, k: int, rng: np.random.Generator) -> np.ndarray:
    """Typical images while few labels exist (fewer than `TYPICAL_PER_CLASS` per class seen, or fewer than two
    classes), then uncertain images in diverse batches (`diverse_margin`)."""
    per_class = pool.labelled.sum() / max(pool.n_classes, 1)
    if pool.probs is None or pool.n_classes < 2 or per_class < TYPICAL_PER_CLASS:
        return typical(pool, k, rng)
    return diverse_margin(pool, k, rng)


def auto(pool: Pool, k: int, rng: np.random.Generator) -> np.ndarray:
    """The strategy that needed the fewest labels in `bench/label_strategies.py` (digits, ELPV binary and
    4-class; docs/label.md): `margin` — random images until the probe knows two classes, then the least certain.
    Typical cold starts and diverse batches were measured beside it and needed more labels on these sets."""
    return margin(pool, k, rng)


STRATEGIES = {"auto": auto, "random": random_choice, "margin": margin, "typical": typical,
              "diverse-margin": diverse_margin, "typical-then-diverse": typical_then_diverse}


def _margins(probs: np.ndarray) -> np.ndarray:
    top = np.sort(probs, axis=1)[:, -2:]
    return top[:, 1] - top[:, 0] if probs.shape[1] > 1 else np.zeros(len(probs))


def _typicality(members: np.ndarray, candidates: np.ndarray, most: int = 2000) -> np.ndarray:
    """1 / the mean distance of each candidate to its nearest neighbours among the cluster's members (at most
    `most` members, evenly spaced, stand for a larger cluster)."""
    if len(members) > most:
        members = members[np.linspace(0, len(members) - 1, most).astype(int)]
    k = min(NEIGHBOURS, len(members) - 1)
    squared = ((candidates ** 2).sum(1)[:, None] + (members ** 2).sum(1)[None, :]
               - 2.0 * candidates.astype(np.float64) @ members.T.astype(np.float64))
    d = np.sqrt(np.maximum(squared, 0.0))
    nearest = np.sort(d, axis=1)[:, 1:k + 1] if k > 0 else d  # column 0: the candidate itself (distance 0)
    return 1.0 / (nearest.mean(axis=1) + 1e-9)


def _kmeans(x: np.ndarray, n_clusters: int, rng: np.random.Generator) -> np.ndarray:
    from sklearn.cluster import KMeans, MiniBatchKMeans

    seed = int(rng.integers(2**31 - 1))
    if len(x) > 5000:
        model = MiniBatchKMeans(n_clusters, random_state=seed, n_init=1, batch_size=2048)
    else:
        model = KMeans(n_clusters, random_state=seed, n_init=1)
    return model.fit_predict(x)
