"""`explore.html`: one self-contained page to browse a feature set — gallery, neighbours, duplicates, outliers, map."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np

from ..errors import TransferkitError
from ..files import write_text_atomic
from ..templates import render_template
from .api import DEFAULT_THRESHOLD, group_pairs, rank_outliers, scan
from .index import SearchIndex, load_index
from .project import project_2d

THUMB = 96  # pixels on the longer side; ~2–4 kB each as JPEG


def thumbnail(path: Path) -> str:
    """A small JPEG of the image as a data URL ('' when it can no longer be read)."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            im.thumbnail((THUMB, THUMB))
            if im.mode not in ("RGB", "L"):
                im = im.convert("RGBA")
                back = Image.new("RGB", im.size, "white")
                back.paste(im, mask=im.getchannel("A"))
                im = back
            buf = io.BytesIO()
            im.convert("RGB").save(buf, "JPEG", quality=75)
    except (OSError, ValueError, Image.DecompressionBombError):
        return ""
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def explore(features, out, *, k: int = 8, threshold: float = DEFAULT_THRESHOLD, layer: str | None = None,
            title: str | None = None) -> Path:
    """Write one HTML file (no server, no network) to browse a feature set.

    The page has a paged thumbnail gallery; for the selected image its `k` nearest neighbours; the
    near-duplicate groups (similarity >= `threshold`); the outliers; and a 2-D PCA map coloured by class.

    Example:
    >>> explore("features/", "explore.html")  # doctest: +SKIP
    """
    index = features if isinstance(features, SearchIndex) else load_index(features, layer=layer)
    out = Path(out)
    if out.exists() and out.is_dir():
        raise TransferkitError(f"{str(out)!r} is a folder; pass the HTML file to write, e.g. {out / 'explore.html'}.")
    if not out.parent.exists():
        raise TransferkitError(f"The folder {str(out.parent)!r} does not exist; create it or choose another -o.")
    n = len(index)
    k_odd = min(5, max(1, n - 1))
    sims, rows, pairs = scan(index, max(k, k_odd), threshold)  # one pass: neighbours, duplicates, outliers
    groups = group_pairs(index, pairs, threshold)
    odd = rank_outliers(index, sims[:, :k_odd], top=min(50, n), fence=True) if n > 1 else []
    sims, rows = sims[:, :k], rows[:, :k]
    row = {p: i for i, p in enumerate(index.paths)}
    xy = project_2d(index.vectors) if n >= 2 else np.zeros((n, 2))
    span = np.ptp(xy, axis=0)
    xy = (xy - xy.min(axis=0)) / np.where(span > 0, span, 1)
    root = Path(index.root)
    data = {
        "title": title or f"{index.manifest.get('settings', {}).get('model', '')} {index.layer} — {root}",
        "paths": index.paths,
        "labels": index.labels.tolist() if index.labels is not None else None,
        "classes": index.class_names,
        "thumbs": [thumbnail(root / p) for p in index.paths],
        "neighbours": rows.tolist(),
        "similarities": np.round(sims, 4).tolist(),
        "groups": [[[row[p], round(s, 4)] for p, s in g] for g in groups.groups],
        "outliers": [[row[p], round(s, 4)] for p, s in odd],
        "xy": np.round(xy, 4).tolist(),
        "threshold": threshold,
        "outlier_k": k_odd,
    }
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    page = render_template("explore.html", TITLE=html.escape(data["title"]), DATA=payload)
    try:
        write_text_atomic(out, page)
    except OSError as exc:
        raise TransferkitError(f"Cannot write {out}: {exc.strerror or exc}.") from None
    return out
