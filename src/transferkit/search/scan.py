"""One pass over all pairs of a feature index: nearest neighbours and candidate pairs above a similarity."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .index import BLOCK, SearchIndex


@dataclass
class Pairs:
    """Near-duplicate pairs of rows, a < b, with their feature similarity."""

    a: np.ndarray
    b: np.ndarray
    similarity: np.ndarray

    def __len__(self) -> int:
        return len(self.a)

    @classmethod
    def empty(cls) -> "Pairs":
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))


def pairs_of(index: SearchIndex, i, j) -> Pairs:
    """Pairs (min, max) of rows, each once, self-pairs dropped, with their feature similarity."""
    i, j = np.asarray(i, np.int64), np.asarray(j, np.int64)
    keep = i != j
    a, b = np.minimum(i, j)[keep], np.maximum(i, j)[keep]
    _, first = np.unique(a * len(index) + b, return_index=True)
    a, b = a[first], b[first]
    s = np.einsum("nd,nd->n", index.vectors[a], index.vectors[b]) if len(a) else np.zeros(0, np.float32)
    return Pairs(a, b, s.astype(np.float32))


def scan(index: SearchIndex, k: int, threshold: float | None) -> tuple[np.ndarray, np.ndarray, Pairs]:
    """One blockwise pass over all pairs of an exact index: every row's `k` nearest other rows (similarities,
    rows; as `SearchIndex.neighbours`) and the candidate pairs (a < b) with similarity >= `threshold` (None: no
    pairs; `near_duplicates.standing_out` decides which are near-duplicates).

    One matrix product per block serves neighbours, near-duplicates and outliers (the explorer needs all three).
    Approximate indexes answer from their neighbour lists instead.
    """
    n = len(index)
    k = max(0, min(int(k), n - 1))
    if index.kind != "exact":
        sims, rows = index.neighbours(max(k, 50 if threshold is not None else k))
        pairs = Pairs.empty()
        if threshold is not None:
            i, m = np.nonzero((sims >= threshold) & (rows >= 0))
            pairs = pairs_of(index, i, rows[i, m])
        return sims[:, :k], rows[:, :k], pairs
    sims_out = np.zeros((n, k), np.float32)
    rows_out = np.zeros((n, k), np.int64)
    found_a, found_b = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for a in range(0, n, BLOCK):
        block = index.vectors[a:a + BLOCK] @ index.vectors.T
        local = np.arange(len(block))
        if threshold is not None:
            i, j = np.nonzero(block >= threshold)
            keep = j > i + a
            found_a.append(i[keep] + a)
            found_b.append(j[keep])
        if k:
            block[local, local + a] = -np.inf  # never its own neighbour
            top = np.argpartition(-block, k - 1, axis=1)[:, :k] if k < n - 1 else np.argsort(-block, axis=1)[:, :k]
            top_sims = np.take_along_axis(block, top, axis=1)
            order = np.argsort(-top_sims, axis=1, kind="stable")
            rows_out[a:a + BLOCK] = np.take_along_axis(top, order, axis=1)
            sims_out[a:a + BLOCK] = np.take_along_axis(top_sims, order, axis=1)
    return sims_out, rows_out, pairs_of(index, np.concatenate(found_a), np.concatenate(found_b))
