"""A cosine-similarity search index over an extraction output: exact for small sets, faiss IVF for large ones.

The index lives beside the shards (`OUT/index-<layer>/`) and is recorded in the manifest with a fingerprint of
the shards it was built from; when the features change (a resumed extraction added shards, --overwrite), the
fingerprint differs and the index is rebuilt, never used stale.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import TransferkitError, check_one_of, check_positive_int
from ..extract.store import load_features, read_manifest
from ..extract.writer import MANIFEST
from ..files import atomic_folder, write_json_atomic

# Up to this many rows a query is one exact matrix product over all vectors (measured: 100k × 512 exact is
# ~20 ms per query on 2 cores); above it an IVF index (bench/search.py, docs/performance.md).
EXACT_LIMIT = 100_000
KINDS = ("auto", "exact", "ivf")
BLOCK = 1024  # rows per block in exact all-pairs work, so memory stays flat


def _faiss():
    try:
        import faiss
    except ImportError:
        raise TransferkitError("Approximate search over more than "
                               f"{EXACT_LIMIT:,} images needs faiss: pip install 'transferkit[search]' "
                               "(or pip install faiss-cpu), or pass kind='exact'.") from None
    return faiss


def normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float32, flattened), so inner product = cosine similarity."""
    x = np.asarray(x, dtype=np.float32)
    x = x.reshape(x.shape[0], int(np.prod(x.shape[1:])))
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def fingerprint(manifest: dict, layer: str) -> str:
    """What the index was built from: the layer and every finished shard (name, rows, range)."""
    shards = [(s["file"], s.get("rows"), s.get("start"), s.get("stop")) for s in manifest.get("shards", [])]
    key = json.dumps([layer, manifest.get("settings", {}).get("files"), shards], sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:24]


@dataclass
class SearchIndex:
    """Unit-length feature vectors of one layer, their image paths, and an optional approximate index.

    Example:
    >>> index = load_index("features/")  # doctest: +SKIP
    >>> sims, rows = index.search(index.vectors[:1], k=5)
    """

    vectors: np.ndarray  # (n, d) float32, unit rows
    paths: list[str]
    labels: np.ndarray | None
    class_names: list[str]
    root: str
    layer: str
    kind: str  # "exact" or "ivf"
    manifest: dict = field(default_factory=dict)
    ann: object = None  # faiss index for kind "ivf"
    nprobe: int = 32

    def __len__(self) -> int:
        return len(self.paths)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The `k` most similar rows of each query: (similarities (m, k), row numbers (m, k)), best first."""
        queries = normalize(queries)
        k = min(int(k), len(self))
        if queries.shape[1] != self.vectors.shape[1]:
            raise TransferkitError(f"The queries have {queries.shape[1]} dimensions and the index "
                                   f"{self.vectors.shape[1]}: they come from other features.")
        if self.kind == "ivf":
            self.ann.nprobe = self.nprobe
            sims, rows = self.ann.search(queries, k)
            return sims, rows
        sims_out = np.empty((len(queries), k), np.float32)
        rows_out = np.empty((len(queries), k), np.int64)
        for a in range(0, len(queries), BLOCK):
            sims = queries[a:a + BLOCK] @ self.vectors.T
            top = np.argpartition(-sims, k - 1, axis=1)[:, :k] if k < len(self) else np.tile(
                np.arange(len(self)), (len(sims), 1))
            top_sims = np.take_along_axis(sims, top, axis=1)
            order = np.argsort(-top_sims, axis=1, kind="stable")
            rows_out[a:a + BLOCK] = np.take_along_axis(top, order, axis=1)
            sims_out[a:a + BLOCK] = np.take_along_axis(top_sims, order, axis=1)
        return sims_out, rows_out

    def neighbours(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Every row's `k` nearest other rows (itself left out): (similarities, row numbers), each (n, k)."""
        k = min(int(k), len(self) - 1)
        if k < 1:
            return np.zeros((len(self), 0), np.float32), np.zeros((len(self), 0), np.int64)
        sims, rows = self.search(self.vectors, k + 1)
        own = rows == np.arange(len(self))[:, None]
        # drop the row itself (or, for exact duplicates ranked after it, the last column)
        keep = np.where(own.any(axis=1, keepdims=True), ~own, np.arange(k + 1)[None, :] < k)
        return sims[keep].reshape(len(self), k), rows[keep].reshape(len(self), k)

    def row_of(self, path: str) -> int | None:
        """The row of an image given by its path relative to the root, or by its absolute path."""
        lookup = self.__dict__.get("_lookup")
        if lookup is None:  # built once, on the first lookup
            lookup = self.__dict__["_lookup"] = {p: i for i, p in enumerate(self.paths)}
        if path in lookup:
            return lookup[path]
        try:
            rel = os.path.relpath(os.path.abspath(path), self.root).replace(os.sep, "/")
        except ValueError:
            return None
        return lookup.get(rel)


def _choose_layer(manifest: dict, layer: str | None, where) -> str:
    layers = list(manifest["layers"])
    if layer is None:
        if len(layers) > 1:
            raise TransferkitError(f"{where} holds several layers {layers}; choose one with --layer.")
        return layers[0]
    check_one_of("layer", layer, layers)
    return layer


def index_dir(features_dir, layer: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in layer)
    return Path(features_dir) / f"index-{safe}"


def build_index(features_dir, *, layer: str | None = None, kind: str = "auto", nlist: int | None = None,
                quiet: bool = True) -> SearchIndex:
    """Build (or rebuild) the search index of an extraction output folder and record it in the manifest.

    Args:
        features_dir: a folder written by `transferkit extract`.
        layer: which layer's features (needed when several were extracted).
        kind: "exact", "ivf" (faiss inverted lists; approximate, for large sets) or "auto" (ivf above
            `EXACT_LIMIT` rows).
        nlist: IVF cells (default about 4·√n).

    Example:
    >>> index = build_index("features/")  # doctest: +SKIP
    """
    check_one_of("kind", kind, KINDS)
    features_dir = Path(features_dir)
    manifest = read_manifest(features_dir)
    layer = _choose_layer(manifest, layer, repr(str(features_dir)))
    fs = load_features(features_dir, layers=[layer])
    if len(fs) == 0:
        raise TransferkitError(f"{str(features_dir)!r} holds no features (every image was skipped); "
                               "nothing to search.")
    vectors = normalize(fs.features[layer])
    kind = ("ivf" if len(vectors) > EXACT_LIMIT else "exact") if kind == "auto" else kind
    out = index_dir(features_dir, layer)
    ann = None
    info = {"format": "transferkit.index", "layer": layer, "kind": kind, "rows": len(vectors),
            "dim": int(vectors.shape[1]), "fingerprint": fingerprint(manifest, layer),
            "built": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    with atomic_folder(out) as tmp:
        np.save(tmp / "vectors.npy", vectors)
        ann = _build_ann(vectors, kind, nlist, tmp, info)
        write_json_atomic(tmp / "index.json", info)
    manifest.setdefault("index", {})[layer] = {"dir": out.name, **{k: info[k] for k in ("kind", "rows",
                                                                                         "fingerprint")}}
    write_json_atomic(features_dir / MANIFEST, manifest)
    if not quiet:
        article = "an" if kind[0] in "aeiou" else "a"
        print(f"built {article} {kind} index of {len(vectors):,} × {vectors.shape[1]} ({layer}) in {out}")
    return SearchIndex(vectors, fs.paths, fs.labels, fs.class_names, fs.root, layer, kind, manifest, ann)


def load_index(features_dir, *, layer: str | None = None, quiet: bool = True) -> SearchIndex:
    """The search index of `features_dir`, built first when missing or when the features changed since."""
    features_dir = Path(features_dir)
    manifest = read_manifest(features_dir)
    layer = _choose_layer(manifest, layer, repr(str(features_dir)))
    out = index_dir(features_dir, layer)
    try:
        info = json.loads((out / "index.json").read_text())
    except (OSError, ValueError):
        info = None
    if info is None or info.get("fingerprint") != fingerprint(manifest, layer):
        if info is not None and not quiet:
            print(f"The features in {features_dir} changed since the index was built; rebuilding it.")
        return build_index(features_dir, layer=layer, kind=info.get("kind", "auto") if info else "auto", quiet=quiet)
    fs = load_features(features_dir, layers=[])  # paths and labels only
    vectors = np.load(out / "vectors.npy", mmap_mode="r")
    if len(vectors) != len(fs.paths):
        return build_index(features_dir, layer=layer, quiet=quiet)
    ann = _faiss().read_index(str(out / "ivf.faiss")) if info["kind"] == "ivf" else None
    return SearchIndex(np.asarray(vectors), fs.paths, fs.labels, fs.class_names, fs.root, layer, info["kind"],
                       manifest, ann)


def _build_ann(vectors: np.ndarray, kind: str, nlist: int | None, folder: Path, info: dict):
    """The faiss IVF index of `vectors` for kind "ivf" (written into `folder`; `info` gets its nlist), else None."""
    if kind != "ivf":
        return None
    faiss = _faiss()
    nlist = check_positive_int("nlist", nlist) if nlist is not None else max(1, int(4 * np.sqrt(len(vectors))))
    nlist = min(nlist, len(vectors))
    quantizer = faiss.IndexFlatIP(vectors.shape[1])
    ann = faiss.IndexIVFFlat(quantizer, vectors.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
    sample = vectors[np.random.default_rng(0).permutation(len(vectors))[: max(nlist * 40, 10_000)]]
    ann.train(sample)
    ann.add(vectors)
    faiss.write_index(ann, str(folder / "ivf.faiss"))
    info["nlist"] = nlist
    return ann
