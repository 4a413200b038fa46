"""Questions asked of a feature set: the images most like a query, near-duplicate groups, the odd ones out."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import TransferkitError, check_positive_int
from .index import SearchIndex, load_index
from .near_duplicates import DEFAULT_THRESHOLD, DuplicateGroups, check_threshold, group_pairs, near_duplicate_pairs

@dataclass
class Match:
    """One search result row: the query, the rank (1 = most similar), the matching image and its similarity."""

    query: str
    rank: int
    path: str
    similarity: float


class Matches(list):
    """`Match` rows (a list), shown in a notebook as each query beside its most similar images."""

    def __init__(self, rows=(), root: str = ""):
        super().__init__(rows)
        self.root = root

    def _repr_html_(self, shown: int = 8) -> str:
        from ..data.thumbnails import gallery
        from ..templates import render_template

        by_query: dict[str, list[Match]] = {}
        for m in self:
            by_query.setdefault(m.query, []).append(m)
        groups = [{"caption": f"most similar to {query}",
                   "images": gallery([(query, ["query"])], root=self.root)
                   + gallery([(m.path, [m.path if len(m.path) <= 24 else "…" + m.path[-23:], f"{m.similarity:.3f}"])
                              for m in rows], root=self.root)}
                  for query, rows in list(by_query.items())[:shown]]
        return render_template("nb_images.html", title=f"{len(self)} similar images", groups=groups,
                               more=max(0, len(by_query) - shown))


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
    slots = []  # per query, in the order given: a row of the set, or the image files it names
    for q in queries:
        row = index.row_of(str(q))
        if row is not None:
            slots.append(("row", row))
        elif Path(q).exists():
            found = index_images(Path(q), labels="none")
            slots.append(("files", [found.absolute(i) for i in range(len(found))]))
        else:
            raise TransferkitError(f"The query {str(q)!r} is neither an image file or folder nor a path of the "
                                   f"feature set (paths there are relative to {index.root}).")
    images = list(dict.fromkeys(f for kind, value in slots if kind == "files" for f in value))
    extracted, skipped = {}, []
    if images:
        with tempfile.TemporaryDirectory(prefix="transferkit-query-") as tmp:
            fs = extract_like(index.manifest, images, tmp, layers=[index.layer])
            root = Path(fs.root)
            matrix = fs.features[index.layer].reshape(len(fs), index.vectors.shape[1])
            extracted = {str(root / p): v for p, v in zip(fs.paths, matrix)}
            skipped = [{"path": str(root / s["path"]), "reason": s["reason"]} for s in fs.skipped]
    names, rows = [], []
    for kind, value in slots:
        if kind == "row":
            names.append(index.paths[value])
            rows.append(index.vectors[value])
            continue
        for f in value:
            if f in extracted:
                names.append(f)
                rows.append(extracted[f])
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
    >>> matches, skipped = similar("features/", "images/cat/cat0.png", k=3)
    >>> len(matches), "cat/cat0.png" in [m.path for m in matches], skipped  # the query itself is left out
    (3, False, [])
    """
    index = _as_index(features, layer)
    k = check_positive_int("k", k)
    if k > len(index):
        raise TransferkitError(f"`k` must be at most the number of images in the set ({len(index)}). "
                               f"Received: k={k}")
    names, vectors, skipped = query_vectors(index, query)
    if not len(vectors):
        return Matches([], index.root), skipped
    sims, rows = index.search(vectors, min(k + 1, len(index)))
    matches = Matches([], index.root)
    for name, srow, rrow in zip(names, sims, rows):
        kept = [(s, r) for s, r in zip(srow, rrow) if r >= 0 and index.paths[r] != name][:k]
        matches += [Match(name, rank, index.paths[r], float(s)) for rank, (s, r) in enumerate(kept, 1)]
    return matches, skipped


def duplicates(features, *, threshold: float = DEFAULT_THRESHOLD, layer: str | None = None) -> DuplicateGroups:
    """Groups of near-duplicate images: each group's first image and the images that are near-duplicates of it.

    A near-duplicate has cosine similarity >= `threshold` to the kept image and stands out from the two images'
    nearest neighbours (`near_duplicates` has the rule); groups never chain (A like B and B like C does not put A
    with C unless A is like C). Exact sets compare every pair (in blocks); approximate ones the 20 nearest of each
    image.

    Example:
    >>> groups = duplicates("features/", threshold=0.9)  # doctest: +SKIP
    >>> print(groups.summary())  # doctest: +SKIP
    """
    threshold = check_threshold(threshold)
    index = _as_index(features, layer)
    return group_pairs(index, near_duplicate_pairs(index, threshold), threshold)


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
