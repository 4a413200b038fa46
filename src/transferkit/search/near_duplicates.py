"""What a near-duplicate is — one definition for `duplicates`, `explore` and `audit` — and how pairs become groups.

Two images are near-duplicates when the cosine similarity s of their features is at or above the threshold
**and** stands out from the pair's neighbourhood: s ≥ L + STANDOUT × (1 − L), with L the mean of the two images'
similarities to their `NEIGHBOURHOOD`-th nearest neighbour. In a collection of distinct photos L is low
(0.1–0.4 with EfficientNet-Lite0) and the threshold decides; where every image has many close look-alikes (8 × 8
digits upscaled: L ≈ 0.93) only pairs far closer than the look-alikes count. A set of `NEIGHBOURHOOD` images or
fewer has no neighbourhood to measure: the threshold alone decides there.

Groups are made keeper-first, not by transitive chaining: the image with the most near-duplicates keeps its
group, which holds exactly the images that are near-duplicates *of it*; then the next keeper among the images
left. Every member's similarity is to its group's kept image, so removing the other members never removes an
image unlike everything kept (docs/search.md has the measurements behind both rules).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .index import BLOCK, SearchIndex
from .scan import Pairs, pairs_of, scan

# bench/duplicate_threshold.py (EfficientNet-Lite0 avg_pool): every mirrored, 5 %-cropped, half-size, brightened
# and JPEG-30 copy of 11 real photos scores >= 0.856 against its original, different photos <= 0.40.
DEFAULT_THRESHOLD = 0.85
# bench/duplicate_threshold.py --rules: the 10th neighbour and 3/4 of the way to 1 group no two of scikit-learn's
# 1,797 digits (at 32 or 96 px) while keeping every edited photo copy the threshold alone finds and every
# planted pair of bench/search.py (at 1,000,000 rows too, where the larger of the two levels lost 4 of 2,000);
# smaller neighbourhoods miss copies in families of 7 (a photo and 6 edits).
NEIGHBOURHOOD = 10
STANDOUT = 0.75
# neighbour lists of an approximate index: the 20 nearest of every row, 8 cells probed (bench/search.py --growing:
# every exact pair >= 0.9 of 100,000 x 512 found, 3.6x faster than 32 cells and 50 neighbours)
MAX_NEIGHBOURS = 20
DUPLICATE_NPROBE = 8


@dataclass(repr=False)
class DuplicateGroups:
    """Near-duplicate groups: each a list of (path, similarity to the group's kept image), the kept image first
    (similarity 1.0), then its near-duplicates, most similar first.

    Example:
    >>> g = DuplicateGroups([[("a.jpg", 1.0), ("a_copy.jpg", 0.97)]], 0.85)
    >>> g.removable, g.kept()
    (1, ['a.jpg'])
    """

    groups: list[list[tuple[str, float]]]
    threshold: float
    root: str = ""  # the folder the paths are relative to (thumbnails in a notebook)

    @property
    def removable(self) -> int:
        """Images that could go while keeping the first of each group (each a near-duplicate of that one)."""
        return sum(len(g) - 1 for g in self.groups)

    def kept(self) -> list[str]:
        """The image each group keeps."""
        return [g[0][0] for g in self.groups]

    def summary(self) -> str:
        images = sum(len(g) for g in self.groups)
        return (f"{len(self.groups)} groups of near-duplicates ({images} images); {self.removable} could be "
                f"removed, keeping the first of each group (each one a near-duplicate of it, similarity >= "
                f"{self.threshold:g}).")

    def __repr__(self) -> str:
        return f"DuplicateGroups({self.summary()})"

    def _repr_html_(self, shown: int = 12) -> str:
        """What a notebook cell shows: each group's images side by side, the kept one first, with similarities."""
        from ..data.thumbnails import gallery
        from ..templates import render_template

        groups = [{"caption": f"group {i}: keep {g[0][0]}",
                   "images": gallery([(p, [p if len(p) <= 24 else "…" + p[-23:], "kept" if j == 0 else f"{s:.3f}"])
                                     for j, (p, s) in enumerate(g)], root=self.root or None)}
                  for i, g in enumerate(self.groups[:shown], 1)]
        return render_template("nb_images.html", title=self.summary(), groups=groups,
                               more=max(0, len(self.groups) - shown))


def check_threshold(threshold) -> float:
    """`threshold` as a float, or one clear error unless it is a cosine similarity from -1 to 1."""
    from ..errors import TransferkitError

    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not -1 <= threshold <= 1:
        raise TransferkitError(f"`threshold` must be a cosine similarity from -1 to 1 (e.g. 0.9). "
                               f"Received: threshold={threshold!r}")
    return float(threshold)


def candidate_pairs(index: SearchIndex, threshold: float) -> tuple[Pairs, tuple[np.ndarray, np.ndarray] | None]:
    """Pairs at or above `threshold` — every pair of an exact index (blockwise), the `MAX_NEIGHBOURS` nearest of
    each row for an approximate one — and, for the latter, the neighbour lists they came from."""
    if index.kind == "exact":
        return scan(index, 0, threshold)[2], None
    # near-duplicates sit in the cell of their twin or the next: fewer cells probed than for a query
    sims, rows = dataclasses.replace(index, nprobe=min(index.nprobe, DUPLICATE_NPROBE)).neighbours(MAX_NEIGHBOURS)
    i, m = np.nonzero((sims >= threshold) & (rows >= 0))
    return pairs_of(index, i, rows[i, m]), (sims, rows)


def neighbourhood_levels(index: SearchIndex, rows: np.ndarray,
                         neighbours: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Each of `rows`' similarity to its `NEIGHBOURHOOD`-th nearest other row (-1 when the set has no more than
    `NEIGHBOURHOOD` images); from `neighbours` (similarities, rows; nearest first) when they reach that far,
    else from one blockwise product of those rows against the set."""
    rows = np.asarray(rows, np.int64)
    if len(index) <= NEIGHBOURHOOD:
        return np.full(len(rows), -1.0, np.float32)
    if neighbours is not None and neighbours[0].shape[1] >= NEIGHBOURHOOD:
        return neighbours[0][rows, NEIGHBOURHOOD - 1].astype(np.float32)
    out = np.empty(len(rows), np.float32)
    for start in range(0, len(rows), BLOCK):
        part = rows[start:start + BLOCK]
        block = index.vectors[part] @ index.vectors.T
        block[np.arange(len(part)), part] = -np.inf  # never its own neighbour
        out[start:start + BLOCK] = -np.partition(-block, NEIGHBOURHOOD - 1, axis=1)[:, NEIGHBOURHOOD - 1]
    return out


def standing_out(index: SearchIndex, pairs: Pairs, threshold: float,
                 neighbours: tuple[np.ndarray, np.ndarray] | None = None) -> Pairs:
    """The `pairs` that are near-duplicates: at or above `threshold` and standing out from the pair's
    neighbourhood (the module's rule)."""
    if not len(pairs):
        return pairs
    involved, where = np.unique(np.concatenate([pairs.a, pairs.b]), return_inverse=True)
    level = neighbourhood_levels(index, involved, neighbours)
    level_a, level_b = level[where[:len(pairs)]], level[where[len(pairs):]]
    level = (level_a + level_b) / 2
    keep = (pairs.similarity >= threshold) & (pairs.similarity >= level + STANDOUT * (1 - level))
    return Pairs(pairs.a[keep], pairs.b[keep], pairs.similarity[keep])


def near_duplicate_pairs(index: SearchIndex, threshold: float = DEFAULT_THRESHOLD) -> Pairs:
    """Every near-duplicate pair of a feature index (the module's rule), a < b.

    Example:
    >>> pairs = near_duplicate_pairs(load_index("features/"), 0.85)  # doctest: +SKIP
    """
    candidates, neighbours = candidate_pairs(index, check_threshold(threshold))
    return standing_out(index, candidates, threshold, neighbours)


def group_pairs(index: SearchIndex, pairs: Pairs, threshold: float) -> DuplicateGroups:
    """Keeper-first groups of near-duplicate `pairs`: the image with the most near-duplicates (then the first by
    row) keeps a group of exactly its own near-duplicates not yet grouped; repeated over the rest. No chaining:
    every member is a near-duplicate of its group's first image."""
    from scipy.sparse import coo_matrix

    n = len(index)
    if not len(pairs):
        return DuplicateGroups([], float(threshold), index.root)
    ones = np.ones(2 * len(pairs), np.int8)
    graph = coo_matrix((ones, (np.concatenate([pairs.a, pairs.b]), np.concatenate([pairs.b, pairs.a]))),
                       shape=(n, n)).tocsr()
    degree = np.diff(graph.indptr)
    order = np.lexsort((np.arange(n), -degree))
    grouped = np.zeros(n, bool)
    groups = []
    for keeper in order[:np.count_nonzero(degree)]:
        if grouped[keeper]:
            continue
        members = graph.indices[graph.indptr[keeper]:graph.indptr[keeper + 1]]
        members = members[~grouped[members]]
        if not len(members):
            continue
        grouped[keeper] = True
        grouped[members] = True
        sims = index.vectors[members] @ index.vectors[keeper]
        by_similarity = np.lexsort((members, -sims))
        groups.append([(index.paths[keeper], 1.0)] + [(index.paths[members[m]], float(sims[m]))
                                                       for m in by_similarity])
    groups.sort(key=lambda g: (-len(g), g[0][0]))
    return DuplicateGroups(groups, float(threshold), index.root)
