"""`explore.html`: one self-contained page to browse a feature set — gallery, neighbours, duplicates, outliers, map."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from urllib.parse import quote

import numpy as np

from ..data.thumbnails import thumbnail
from ..errors import TransferkitError
from ..files import atomic_folder, write_text_atomic
from ..templates import render_template
from .api import rank_outliers
from .near_duplicates import DEFAULT_THRESHOLD, NEIGHBOURHOOD, check_threshold, group_pairs, standing_out
from .scan import scan
from .index import SearchIndex, load_index
from .project import project_2d

INLINE_LIMIT = 2_000  # up to this many images everything is inside the page (thumbnails as data URLs)
CHUNK = 1_000  # rows per data file beside the page of a larger set
MAP_SAMPLE = 5_000  # points on the map at most (a seeded sample beyond that)
SHOWN_GROUPS = 1_000  # near-duplicate groups listed on the page at most


def explore(features, out, *, k: int = 8, threshold: float = DEFAULT_THRESHOLD, layer: str | None = None,
            title: str | None = None, inline_limit: int = INLINE_LIMIT) -> Path:
    """Write one HTML page (no server, no network) to browse a feature set.

    The page has a paged thumbnail gallery; for the selected image its `k` nearest neighbours; the
    near-duplicate groups (similarity >= `threshold`); the outliers; and a 2-D PCA map coloured by class.
    Up to `inline_limit` images it is one self-contained file; above, it stays small: the rows (paths,
    neighbours) go into `OUT_files/rows-NNNNN.js` beside it, loaded a page at a time, thumbnails are the image
    files themselves (linked relative to the page; the browser loads only those shown), and the map shows a
    sample of `MAP_SAMPLE`.

    Example:
    >>> explore("features/", "explore.html")  # doctest: +SKIP
    """
    threshold = check_threshold(threshold)
    index = features if isinstance(features, SearchIndex) else load_index(features, layer=layer)
    out = Path(out)
    if out.exists() and out.is_dir():
        raise TransferkitError(f"{str(out)!r} is a folder; pass the HTML file to write, e.g. {out / 'explore.html'}.")
    if not out.parent.exists():
        raise TransferkitError(f"The folder {str(out.parent)!r} does not exist; create it or choose another -o.")
    n = len(index)
    k_odd = min(5, max(1, n - 1))
    # one pass: neighbours (as many as the near-duplicate rule looks at), candidate pairs, outliers
    sims, rows, pairs = scan(index, max(k, k_odd, NEIGHBOURHOOD), threshold)
    groups = group_pairs(index, standing_out(index, pairs, threshold, (sims, rows)), threshold)
    odd = rank_outliers(index, sims[:, :k_odd], top=min(50, n), fence=True) if n > 1 else []
    sims, rows = np.round(sims[:, :k], 4), rows[:, :k]
    row = {p: i for i, p in enumerate(index.paths)}
    large = n > inline_limit
    sample = np.sort(np.random.default_rng(0).choice(n, MAP_SAMPLE, replace=False)) if n > MAP_SAMPLE else np.arange(n)
    xy = project_2d(index.vectors[sample]) if len(sample) >= 2 else np.zeros((len(sample), 2))
    span = np.ptp(xy, axis=0)
    xy = (xy - xy.min(axis=0)) / np.where(span > 0, span, 1)
    root = Path(index.root)
    thumb = (lambda p: _link(root / p, out.parent)) if large else (lambda p: thumbnail(root / p))
    labels = index.labels
    shown = groups.groups[:SHOWN_GROUPS]
    data = {
        "title": title or f"{index.manifest.get('settings', {}).get('model', '')} {index.layer} — {root}",
        "n": n, "classes": index.class_names, "threshold": threshold, "outlier_k": k_odd,
        "groups": [[[row[p], round(s, 4)] for p, s in g] for g in shown], "groups_total": len(groups.groups),
        "outliers": [[row[p], round(s, 4)] for p, s in odd],
        "map": {"rows": sample.tolist(), "xy": np.round(xy, 4).tolist(),
                "labels": labels[sample].tolist() if labels is not None else None},
    }

    def rows_of(a: int, b: int) -> dict:
        return {"paths": index.paths[a:b], "labels": labels[a:b].tolist() if labels is not None else None,
                "thumbs": [thumb(p) for p in index.paths[a:b]], "neighbours": rows[a:b].tolist(),
                "similarities": sims[a:b].tolist()}

    files = out.with_name(out.stem + "_files")
    try:
        if large:
            extra = {row[p] for g in shown for p, _ in g} | {row[p] for p, _ in odd}
            data.update(chunk=CHUNK, chunks=files.name, extra=[
                [i, index.paths[i], thumb(index.paths[i]), int(labels[i]) if labels is not None else None]
                for i in sorted(extra)])
            with atomic_folder(files) as tmp:
                for c, a in enumerate(range(0, n, CHUNK)):
                    payload = json.dumps(rows_of(a, min(n, a + CHUNK)), separators=(",", ":"))
                    write_text_atomic(tmp / f"rows-{c:05d}.js", f"EXPLORE_ROWS({c},{a},{payload});\n")
        else:
            data.update(chunk=0, rows=rows_of(0, n))
            if files.is_dir():
                shutil.rmtree(files)  # the data files of an earlier, larger page of this name
        # `|tojson` in the template: a path or class name cannot end or change the <script> block
        page = render_template("explore.html", title=data["title"], data=data)
        write_text_atomic(out, page)
    except OSError as exc:
        raise TransferkitError(f"Cannot write {out}: {exc.strerror or exc}.") from None
    return out


def _link(path: Path, page_folder: Path) -> str:
    """A URL to the image file relative to the page (absolute file URL when on another drive)."""
    try:
        rel = os.path.relpath(path, page_folder)
    except ValueError:
        return path.resolve().as_uri()
    return quote(rel.replace(os.sep, "/"))
