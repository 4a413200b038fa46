"""Embeddings from elsewhere (CLIP, DINOv2, …) written as a feature folder that transferkit's search reads."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from ..errors import TransferkitError
from ..files import atomic_folder
from .store import FeatureSet, load_features
from .manifest import Manifest
from .writer import shard_name, write_shard

IMPORT_SHARD = 65_536  # rows per shard of an imported set


def save_features(out, matrix, paths, *, labels=None, class_names=None, layer: str = "embedding", root=None,
                  overwrite: bool = False, source: str | None = None) -> FeatureSet:
    """Write vectors computed elsewhere as a feature folder (shards + manifest, marked imported), so `similar`,
    `duplicates`, `explore` and `index` work on them. Written all at once: a kill leaves no half folder.

    Args:
        out: the folder to write (refused when it exists, unless `overwrite`).
        matrix: (n, d) numbers, one row per image (any float or int dtype; stored as float32).
        paths: n image paths, unique (relative to `root`, or absolute).
        labels: optional n class indices (with `class_names`) or n class names.
        class_names: the class of each index in `labels`.
        layer: the name the vectors go by (`--layer`).
        root: the folder the paths are relative to (default: their common folder when absolute, else "").
        source: where the vectors came from, recorded in the manifest (e.g. the .npy file).

    Returns:
        The `FeatureSet` read back.

    Example:
    >>> save_features("clip-set/", np.load("clip.npy"), open("paths.txt").read().splitlines())  # doctest: +SKIP
    """
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or not len(matrix) or not np.issubdtype(matrix.dtype, np.number):
        raise TransferkitError(f"`matrix` must be a 2-D array of numbers with a row per image. Received: shape "
                               f"{matrix.shape}, dtype {matrix.dtype}")
    matrix = matrix.astype(np.float32)
    bad = np.flatnonzero(~np.isfinite(matrix).all(axis=1))
    if len(bad):
        raise TransferkitError(f"Row {int(bad[0])} of `matrix` holds NaN or infinite values ({len(bad)} rows do); "
                               "remove them or compute the vectors again.")
    paths = [str(p) for p in paths]
    if len(paths) != len(matrix):
        raise TransferkitError(f"`paths` must name one image per row: {len(paths)} paths for {len(matrix)} rows.")
    seen: dict[str, int] = {}
    for i, p in enumerate(paths):
        if not p.strip():
            raise TransferkitError(f"Path {i + 1} is empty: every row needs its image's path.")
        if p in seen:
            raise TransferkitError(f"The path {p!r} is listed twice (rows {seen[p] + 1} and {i + 1}); each image "
                                   "may appear once.")
        seen[p] = i
    label_arr, class_names = _labels(labels, class_names, len(paths))
    if root is None:
        root = os.path.commonpath([os.path.dirname(p) for p in paths]) if all(os.path.isabs(p) for p in paths) else ""
    if root:
        paths = [os.path.relpath(p, root).replace(os.sep, "/") if os.path.isabs(p) else p for p in paths]
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise TransferkitError(f"{str(out)!r} already exists. Choose another output folder, or pass --overwrite "
                               "to replace it.")
    digest = hashlib.sha256(matrix.tobytes() + "\n".join(paths).encode("utf-8", "surrogateescape")).hexdigest()
    settings = {"imported": True, "model": "imported", "layers": [layer], "pooling": "none",
                "source": source, "files": digest, "images": len(paths), "shard_size": IMPORT_SHARD}
    n_shards = max(1, -(-len(paths) // IMPORT_SHARD))
    done: dict[int, dict] = {}
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_folder(out) as tmp:
            for k in range(n_shards):
                start, stop = k * IMPORT_SHARD, min((k + 1) * IMPORT_SHARD, len(paths))
                meta = {"shard": k, "start": start, "stop": stop, "rows": stop - start, "skipped": []}
                write_shard(tmp, k, positions=np.arange(start, stop), paths=paths[start:stop],
                            labels=None if label_arr is None else label_arr[start:stop], class_names=class_names,
                            features={layer: matrix[start:stop]}, meta=meta)
                done[k] = {**meta, "file": shard_name(k)}
            manifest = Manifest.new(settings, root=root, class_names=class_names)
            manifest["layers"] = {layer: {"shape": [int(matrix.shape[1])], "pooling": "none", "dtype": "float32"}}
            manifest.record_shards(done, n_shards)
            manifest.write(tmp)
    except OSError as exc:
        raise TransferkitError(f"Cannot write {str(out)!r}: {exc.strerror or exc}.") from None
    return load_features(out)


def _labels(labels, class_names, n: int):
    """(int32 labels or None, class names) from indices with names, or from names alone (sorted classes)."""
    if labels is None:
        return None, list(class_names or [])
    labels = list(labels)
    if len(labels) != n:
        raise TransferkitError(f"`labels` must give one label per row: {len(labels)} labels for {n} rows.")
    if all(isinstance(x, str) for x in labels):
        names = list(class_names) if class_names else sorted(set(labels))
        position = {c: i for i, c in enumerate(names)}
        unknown = sorted(set(labels) - set(position))
        if unknown:
            raise TransferkitError(f"Labels {unknown[:5]} are not among `class_names` {names}.")
        return np.array([position[x] for x in labels], np.int32), names
    arr = np.asarray(labels)
    if not np.issubdtype(arr.dtype, np.integer):
        raise TransferkitError(f"`labels` must be class indices (with `class_names`) or class names. Received "
                               f"dtype {arr.dtype}")
    if not class_names:
        class_names = [str(c) for c in range(int(arr.max()) + 1)]
    if arr.min() < 0 or arr.max() >= len(class_names):
        raise TransferkitError(f"`labels` must be from 0 to {len(class_names) - 1} (one per class name). Received "
                               f"values from {int(arr.min())} to {int(arr.max())}")
    return arr.astype(np.int32), list(class_names)
