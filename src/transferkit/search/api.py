"""Questions asked of a feature set: the images most like a query, near-duplicate groups, the odd ones out."""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import TransferkitError, check_positive_int
from .index import BLOCK, SearchIndex, load_index

# Measured by bench/duplicate_threshold.py (EfficientNet-Lite0 avg_pool, 11 real photos, 66 edited copies):
# every mirrored, cropped, half-size, brightened and JPEG-30 copy scores >= 0.856 against its original, different
# photos <= 0.40; only greyscale copies can fall lower (0.72). docs/search.md has the table.
DEFAULT_THRESHOLD = 0.85
# IVF cells probed when listing near-duplicate pairs of a large set (bench/search.py --growing: with 8 cells and
# the 20 nearest of each row, every exact pair >= 0.9 of 100,000 x 512 was found, 3.6x faster than 32 cells, 50)
DUPLICATE_NPROBE = 8


@dataclass
class Match:
    """One search result row: the query, the rank (1 = most similar), the matching image and its similarity."""

    query: str
    rank: int
    path: str
    similarity: float


def _as_index(features, layer=None) -> SearchIndex:
    """A `SearchIndex` from an index, an extraction output folder, or a `FeatureSet` read from one."""
    if isinstance(features, SearchIndex):
        return features
    folder = getattr(features, "folder", None) if not isinstance(features, (str, Path)) else features
    if not folder:
        raise TransferkitError("Search needs a feature set on disk: pass its folder (or a FeatureSet read with "
                               f"transferkit.load_features). Received: {type(features).__name__}")
    return load_index(folder, layer=layer)


def query_vectors(index: SearchIndex, query) -> tuple[list[str], np.ndarray, list[dict]]:
    """Vectors of a query: a row of the set (by path), or image files/folders extracted exactly as the set was
    (its recorded input configuration, precision and runtime; see `extract_like`).

    Returns:
        (names, vectors, skipped) — skipped are {"path", "reason"} for queries that could not be decoded.
    """
    from ..data.folder import index_images
    from ..extract.runner import extract_like

    queries = [query] if isinstance(query, (str, Path)) else list(query)
    names, rows, files = [], [], []
    for q in queries:
        row = index.row_of(str(q))
        if row is not None:
            names.append(index.paths[row])
            rows.append(index.vectors[row])
        elif Path(q).exists():
            files.append(Path(q))
        else:
            raise TransferkitError(f"The query {str(q)!r} is neither an image file or folder nor a path of the "
                                   f"feature set (paths there are relative to {index.root}).")
    skipped = []
    if files:
        images = []
        for f in files:
            found = index_images(f, labels="none")
            images += [found.absolute(i) for i in range(len(found))]
        with tempfile.TemporaryDirectory(prefix="transferkit-query-") as tmp:
            fs = extract_like(index.manifest, images, tmp, layers=[index.layer])
            root = Path(fs.root)
            names += [str(root / p) for p in fs.paths]
            rows += list(fs.features[index.layer].reshape(len(fs), index.vectors.shape[1]))
            skipped = [{"path": str(root / s["path"]), "reason": s["reason"]} for s in fs.skipped]
    vectors = np.stack(rows).astype(np.float32) if rows else np.zeros((0, index.vectors.shape[1]), np.float32)
    return names, vectors, skipped


def similar(features, query, *, k: int = 10, layer: str | None = None) -> tuple[list[Match], list[dict]]:
    """The `k` images of a feature set most similar (cosine) to each query.

    Args:
        features: an extraction output folder (or a `SearchIndex`).
        query: an image file, a folder of images, a path that is a row of the set, or a list of these.
        k: results per query (a query that is a row of the set is not its own result).

    Returns:
        (matches, skipped): `Match` rows, and the queries that could not be decoded.

    Example:
    >>> matches, _ = similar("features/", "photos/cat.jpg", k=5)  # doctest: +SKIP
    >>> matches[0].path, matches[0].similarity
    ('cats/cat.12.jpg', 0.93)
    """
    index = _as_index(features, layer)
    k = check_positive_int("k", k)
    if k > len(index):
        raise TransferkitError(f"`k` must be at most the number of images in the set ({len(index)}). "
                               f"Received: k={k}")
    names, vectors, skipped = query_vectors(index, query)
    if not len(vectors):
        return [], skipped
    sims, rows = index.search(vectors, min(k + 1, len(index)))
    matches = []
    for name, srow, rrow in zip(names, sims, rows):
        kept = [(s, r) for s, r in zip(srow, rrow) if r >= 0 and index.paths[r] != name][:k]
        matches += [Match(name, rank, index.paths[r], float(s)) for rank, (s, r) in enumerate(kept, 1)]
    return matches, skipped


@dataclass
class DuplicateGroups:
    """Near-duplicate groups: each a list of (path, similarity to the group's first member), first member first."""

    groups: list[list[tuple[str, float]]]
    threshold: float

    @property
    def removable(self) -> int:
        """Images that could go while keeping one of each group."""
        return sum(len(g) - 1 for g in self.groups)

    def summary(self) -> str:
        images = sum(len(g) for g in self.groups)
        return (f"{len(self.groups)} groups of near-duplicates ({images} images, similarity >= {self.threshold}); "
                f"{self.removable} could be removed, keeping one per group.")


def duplicates(features, *, threshold: float = DEFAULT_THRESHOLD, layer: str | None = None,
               max_neighbours: int = 20) -> DuplicateGroups:
    """Group images whose features have cosine similarity >= `threshold`, transitively.

    Exact sets compare every pair (in blocks); approximate ones the `max_neighbours` nearest of each image.

    Example:
    >>> groups = duplicates("features/", threshold=0.9)  # doctest: +SKIP
    >>> print(groups.summary())
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not -1 <= threshold <= 1:
        raise TransferkitError(f"`threshold` must be a cosine similarity from -1 to 1 (e.g. 0.9). "
                               f"Received: threshold={threshold!r}")
    index = _as_index(features, layer)
    return group_pairs(index, _pairs_above(index, threshold, max_neighbours), threshold)


def group_pairs(index: SearchIndex, pairs, threshold: float) -> DuplicateGroups:
    """Near-duplicate groups: the connected components (scipy) of the graph whose edges are `pairs` of rows."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    a, b = (np.asarray(x, dtype=np.int64) for x in zip(*pairs)) if pairs else (np.zeros(0, np.int64),) * 2
    n = len(index)
    graph = coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    # the rows of groups of two or more, by component and ascending within each: one sort, not a scan per group
    order = np.argsort(component, kind="stable")
    order = order[np.bincount(component)[component[order]] >= 2]
    groups = []
    for rows in np.split(order, np.flatnonzero(np.diff(component[order])) + 1) if len(order) else []:
        sims = index.vectors[rows] @ index.vectors[rows[0]]
        groups.append([(index.paths[r], float(s)) for r, s in zip(rows, sims)])
    groups.sort(key=lambda g: (-len(g), g[0][0]))
    return DuplicateGroups(groups, float(threshold))


def _pairs_above(index: SearchIndex, threshold: float, max_neighbours: int) -> list[tuple[int, int]]:
    if index.kind == "exact":
        return scan(index, 0, threshold)[2]
    # near-duplicates sit in the cell of their twin or the next: fewer cells probed than for a query
    sims, rows = dataclasses.replace(index, nprobe=min(index.nprobe, DUPLICATE_NPROBE)).neighbours(max_neighbours)
    i, j = np.nonzero(sims >= threshold)
    return list(zip(i.tolist(), rows[i, j].tolist()))


def scan(index: SearchIndex, k: int, threshold: float | None) -> tuple[np.ndarray, np.ndarray, list]:
    """One blockwise pass over all pairs of an exact index: every row's `k` nearest other rows (similarities,
    rows; as `SearchIndex.neighbours`) and the pairs (i < j) with similarity >= `threshold` (None: no pairs).

    One matrix product per block serves neighbours, near-duplicates and outliers (the explorer needs all three).
    Approximate indexes answer from their neighbour lists instead.
    """
    n = len(index)
    k = max(0, min(int(k), n - 1))
    if index.kind != "exact":
        sims, rows = index.neighbours(max(k, 50 if threshold is not None else k))
        pairs = []
        if threshold is not None:
            i, j = np.nonzero(sims >= threshold)
            pairs = [(a, b) for a, b in zip(i.tolist(), rows[i, j].tolist()) if a < b]
        return sims[:, :k], rows[:, :k], pairs
    sims_out = np.zeros((n, k), np.float32)
    rows_out = np.zeros((n, k), np.int64)
    pairs: list[tuple[int, int]] = []
    for a in range(0, n, BLOCK):
        block = index.vectors[a:a + BLOCK] @ index.vectors.T
        local = np.arange(len(block))
        if threshold is not None:
            i, j = np.nonzero(block >= threshold)
            keep = j > i + a
            pairs += list(zip((i[keep] + a).tolist(), j[keep].tolist()))
        if k:
            block[local, local + a] = -np.inf  # never its own neighbour
            top = np.argpartition(-block, k - 1, axis=1)[:, :k] if k < n - 1 else np.argsort(-block, axis=1)[:, :k]
            top_sims = np.take_along_axis(block, top, axis=1)
            order = np.argsort(-top_sims, axis=1, kind="stable")
            rows_out[a:a + BLOCK] = np.take_along_axis(top, order, axis=1)
            sims_out[a:a + BLOCK] = np.take_along_axis(top_sims, order, axis=1)
    return sims_out, rows_out, pairs


def outliers(features, *, k: int = 5, top: int = 20, layer: str | None = None) -> list[tuple[str, float]]:
    """The `top` images least like their `k` nearest neighbours: (path, mean similarity to them), oddest first.

    Example:
    >>> outliers("features/", top=5)  # doctest: +SKIP
    """
    index = _as_index(features, layer)
    k, top = check_positive_int("k", k), check_positive_int("top", top)
    sims, _ = index.neighbours(k)
    return rank_outliers(index, sims, top)


def outlier_scores(neighbour_sims: np.ndarray) -> np.ndarray:
    """Each row's mean similarity to its nearest neighbours (1 where a set has a single image)."""
    return neighbour_sims.mean(axis=1) if neighbour_sims.shape[1] else np.ones(len(neighbour_sims))


def rank_outliers(index: SearchIndex, neighbour_sims: np.ndarray, top: int,
                  fence: bool = False) -> list[tuple[str, float]]:
    """The `top` rows with the lowest `outlier_scores`, oddest first; with `fence`, only those below Tukey's
    lower fence (Q1 − 1.5 × IQR of all scores), so a set of alike images has no outliers at all."""
    score = outlier_scores(neighbour_sims)
    order = np.argsort(score, kind="stable")[:top]
    if fence and len(score) >= 4:
        q1, q3 = np.percentile(score, [25, 75])
        order = [i for i in order if score[i] < q1 - 1.5 * (q3 - q1)]
    elif fence:
        order = []
    return [(index.paths[i], float(score[i])) for i in order]
