"""The audit's checks, each from what the run already has: the files, the features, out-of-fold probabilities."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..data.decode import DecodeError, load_image, open_regular
from ..data.folder import ImageIndex
from ..errors import TransferkitError, install_hint
from ..search.api import rank_outliers
from ..search.index import SearchIndex, normalize
from ..search.near_duplicates import NEIGHBOURHOOD, group_pairs, standing_out
from ..search.scan import Pairs, pairs_of, scan
from .. import probe
from .findings import Finding

CONSTANT_STD = 1.0  # grey levels (0–255) of a 32 × 32 rendering: below this an image is one flat colour
IMBALANCE = 1 / 3  # a class below this fraction of the largest class is reported
# Near-duplicate confirmation (docs/audit.md; bench/audit_digits.py and the photo edits of
# bench/duplicate_threshold.py): the 16 × 16 grey thumbnails of a re-encoded, resized, mirrored or turned copy
# correlate >= 0.99 with the original's (best of the 8 orientations), brightened or greyscale ones >= 0.94;
# different photos <= 0.72, different digits up to ~0.98.
PIXEL_MATCH = 0.99
THUMB = 16
# The out-of-fold classifier: a logistic regression this strongly regularised (C = 0.01 on standardised features)
# and cleanlab's `low_self_confidence` filter (as many issues as confident learning estimates, the least
# self-confident first) found the flipped digits best (bench/audit_digits.py; docs/audit.md has the table).
C = 0.01


def image_checks(index: ImageIndex, split: list[str], *, min_size: int,
                 workers: int = 4) -> tuple[list[Finding], dict[str, np.ndarray]]:
    """Unreadable files, images whose shorter side is below `min_size` pixels, and one-colour images; and each
    readable image's `THUMB` × `THUMB` grey thumbnail (zero mean, unit norm), by path, to confirm duplicates."""
    from PIL import Image

    def check(i: int):
        path = index.absolute(i)
        given = index.class_names[index.labels[i]]
        try:
            index.check(i)
            small = load_image(path, 32)
            with open_regular(path) as f, Image.open(f) as im:
                side = min(im.size)
        except DecodeError as exc:
            return Finding(index.paths[i], split[i], "unreadable", 1.0, given, other=exc.reason), None
        except OSError as exc:
            return Finding(index.paths[i], split[i], "unreadable", 1.0, given, other=str(exc)), None
        grey = small.astype(np.float32).mean(axis=2)
        thumb = grey.reshape(THUMB, 32 // THUMB, THUMB, 32 // THUMB).mean(axis=(1, 3))
        thumb -= thumb.mean()
        thumb /= max(float(np.linalg.norm(thumb)), 1e-6)
        if side < min_size:
            return Finding(index.paths[i], split[i], "tiny", round(1 - side / min_size, 4), given,
                           other=f"{side} px"), thumb
        if float(grey.std()) < CONSTANT_STD:
            return Finding(index.paths[i], split[i], "constant", 1.0, given, other=f"value {int(small.mean())}"), thumb
        return None, thumb

    with ThreadPoolExecutor(workers, thread_name_prefix="transferkit-audit") as pool:
        results = list(pool.map(check, range(len(index))))
    thumbs = {index.paths[i]: t for i, (_, t) in enumerate(results) if t is not None}
    return [f for f, _ in results if f is not None], thumbs


def out_of_fold_probabilities(x: np.ndarray, labels: np.ndarray, folds: int, seed: int = 0,
                              class_names=None) -> np.ndarray:
    """Each row's class probabilities from a classifier that never saw it: a logistic regression (C = `C`) on the
    standardised features, trained on the other `folds` − 1 stratified folds (`transferkit.probe`)."""
    return probe.out_of_fold_probabilities(x, labels, folds, seed, class_names, C=C)


def label_findings(paths: list[str], split: list[str], labels: np.ndarray, probs: np.ndarray,
                   class_names: list[str]) -> list[Finding]:
    """Images whose given label confident learning (cleanlab's `find_label_issues`: the number of issues it
    estimates, lowest self-confidence first) flags, with the class the out-of-fold probabilities suggest and 1 − the
    given label's probability as the score."""
    try:
        from cleanlab.filter import find_label_issues
    except ImportError:
        raise TransferkitError(f"The label check needs cleanlab: {install_hint('audit')}.") from None
    flagged = find_label_issues(labels, probs, filter_by="low_self_confidence")
    out = []
    for i in np.flatnonzero(flagged):
        out.append(Finding(paths[i], split[i], "label", round(float(1 - probs[i, labels[i]]), 4),
                           class_names[labels[i]], class_names[int(np.argmax(probs[i]))]))
    return out


def pixel_pairs(thumbs: np.ndarray, block: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Rows (i < j) whose thumbnails (n, THUMB, THUMB; zero mean, unit norm) correlate >= `PIXEL_MATCH`, the best
    of the 8 flips and quarter turns, over all pairs in blocks: copies that the features rank far apart (a
    resized, re-encoded small image) still meet here. O(n² · 8 · THUMB²): a second on 2,000 images."""
    n = len(thumbs)
    flat = thumbs.reshape(n, -1).astype(np.float32)
    views = [np.ascontiguousarray((v[:, :, ::-1] if flip else v).reshape(n, -1), dtype=np.float32)
             for v in (np.rot90(thumbs, turns, axes=(1, 2)) for turns in range(4)) for flip in (False, True)]
    found_a, found_b = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for a in range(0, n, block):
        best = flat[a:a + block] @ views[0].T
        for view in views[1:]:
            np.maximum(best, flat[a:a + block] @ view.T, out=best)
        i, j = np.nonzero(best >= PIXEL_MATCH)
        keep = j > i + a
        found_a.append(i[keep] + a)
        found_b.append(j[keep])
    return np.concatenate(found_a), np.concatenate(found_b)


def similarity_findings(index: SearchIndex, split: list[str], thumbs: np.ndarray | None, threshold: float,
                        k: int = 5) -> list[Finding]:
    """From one `scan` of all pairs: leaks (a validation image with a near-duplicate in train: one row per
    validation image, paired with its most similar train image), near-duplicates within a split (keeper-first
    groups, one row per image beyond the kept one) and outliers (below Tukey's fence of the mean similarity to
    the `k` nearest neighbours). Near-duplicates are `search.near_duplicates`' rule, plus pairs whose thumbnails
    match (`pixel_pairs`: re-encoded, resized, mirrored or turned copies of small images the features rank
    apart), since the audit reads every image anyway."""
    n = len(index)
    given = [index.class_names[index.labels[i]] for i in range(n)]
    sims, rows, candidates = scan(index, min(max(k, NEIGHBOURHOOD), max(0, n - 1)), threshold)
    features = standing_out(index, candidates, threshold, (sims, rows))
    a, b = pixel_pairs(thumbs) if thumbs is not None else (np.zeros(0, np.int64), np.zeros(0, np.int64))
    pairs = pairs_of(index, np.concatenate([features.a, a]), np.concatenate([features.b, b]))
    out = []
    best_train: dict[int, tuple[float, int]] = {}
    same = np.array([split[i] == split[j] for i, j in zip(pairs.a, pairs.b)], bool)
    for i, j, s in zip(pairs.a[~same].tolist(), pairs.b[~same].tolist(), pairs.similarity[~same].tolist()):
        val, train = (i, j) if split[i] == "validation" else (j, i)
        if s > best_train.get(val, (-2.0, -1))[0]:
            best_train[val] = (s, train)
    for val, (s, train) in sorted(best_train.items()):
        out.append(Finding(index.paths[val], split[val], "leak", round(s, 4), given[val], other=index.paths[train]))
    within = Pairs(pairs.a[same], pairs.b[same], pairs.similarity[same])
    for group in group_pairs(index, within, threshold).groups:
        kept = group[0][0]
        for path, s in group[1:]:
            row = index.row_of(path)
            out.append(Finding(path, split[row], "duplicate", round(s, 4), given[row], other=kept))
    if sims.shape[1]:
        for path, score in rank_outliers(index, sims[:, :k], top=n, fence=True):
            row = index.row_of(path)
            out.append(Finding(path, split[row], "outlier", round(1 - score, 4), given[row]))
    return out


def imbalance_findings(labels: np.ndarray, class_names: list[str], folder_of) -> list[Finding]:
    """One row per class with fewer than `IMBALANCE` × the largest class's images (path: the class's folder)."""
    counts = np.bincount(labels, minlength=len(class_names))
    top = counts.max()
    return [Finding(folder_of(c), "", "imbalance", round(float(1 - counts[c] / top), 4), name,
                    other=f"{int(counts[c])} images; largest class {int(top)}")
            for c, name in enumerate(class_names) if counts[c] < IMBALANCE * top]


def search_index(index: ImageIndex, vectors: np.ndarray) -> SearchIndex:
    """An exact in-memory `SearchIndex` over the audited images' feature vectors."""
    return SearchIndex(normalize(vectors.astype(np.float32)), list(index.paths), index.labels,
                       list(index.class_names), str(index.root), "features", "exact")
