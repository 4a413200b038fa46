"""Questions asked of a feature set: the images most like a query, near-duplicate groups, the odd ones out."""

from __future__ import annotations

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


@dataclass
class Match:
    """One search result row: the query, the rank (1 = most similar), the matching image and its similarity."""

    query: str
    rank: int
    path: str
    similarity: float


def _as_index(features, layer=None) -> SearchIndex:
    return features if isinstance(features, SearchIndex) else load_index(features, layer=layer)


def query_vectors(index: SearchIndex, query) -> tuple[list[str], np.ndarray, list[dict]]:
    """Vectors of a query: a row of the set (by path), or image files/folders extracted with the set's settings.

    Returns:
        (names, vectors, skipped) — skipped are {"path", "reason"} for queries that could not be decoded.
    """
    from ..data.folder import index_images
    from ..extract import extract

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
        settings = index.manifest["settings"]
        weights = settings["weights"]
        weights = weights.get("path") if weights.get("kind") == "file" else weights.get("kind")
        images = []
        for f in files:
            found = index_images(f, labels="none")
            images += [found.absolute(i) for i in range(len(found))]
        with tempfile.TemporaryDirectory(prefix="transferkit-query-") as tmp:
            fs = extract(images, tmp, model=settings["model"], layers=[index.layer], pooling=settings["pooling"],
                         input_size=settings["input_size"], weights=weights, precision=settings["precision"],
                         seed=settings.get("seed") or 0, quiet=True)
            root = Path(fs.root)
            names += [str(root / p) for p in fs.paths]
            rows += list(fs.features[index.layer].reshape(len(fs), -1))
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
               max_neighbours: int = 50) -> DuplicateGroups:
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
    parent = np.arange(len(index))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in _pairs_above(index, threshold, max_neighbours):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    members: dict[int, list[int]] = {}
    for i in range(len(index)):
        members.setdefault(find(i), []).append(i)
    groups = []
    for rows in members.values():
        if len(rows) < 2:
            continue
        first = index.vectors[rows[0]]
        groups.append([(index.paths[r], float(index.vectors[r] @ first)) for r in rows])
    groups.sort(key=lambda g: (-len(g), g[0][0]))
    return DuplicateGroups(groups, float(threshold))


def _pairs_above(index: SearchIndex, threshold: float, max_neighbours: int):
    if index.kind == "exact":
        for a in range(0, len(index), BLOCK):
            sims = index.vectors[a:a + BLOCK] @ index.vectors.T
            i, j = np.nonzero(sims >= threshold)
            keep = j > i + a
            yield from zip((i[keep] + a).tolist(), j[keep].tolist())
    else:
        sims, rows = index.neighbours(max_neighbours)
        i, j = np.nonzero(sims >= threshold)
        yield from zip(i.tolist(), rows[i, j].tolist())


def outliers(features, *, k: int = 5, top: int = 20, layer: str | None = None) -> list[tuple[str, float]]:
    """The `top` images least like their `k` nearest neighbours: (path, mean similarity to them), oddest first.

    Example:
    >>> outliers("features/", top=5)  # doctest: +SKIP
    """
    index = _as_index(features, layer)
    k, top = check_positive_int("k", k), check_positive_int("top", top)
    sims, _ = index.neighbours(k)
    score = sims.mean(axis=1) if sims.shape[1] else np.ones(len(index))
    order = np.argsort(score, kind="stable")[:top]
    return [(index.paths[i], float(score[i])) for i in order]
