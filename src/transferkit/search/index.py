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

from ..errors import TransferkitError, check_one_of, check_positive_int, install_hint
from ..extract.store import load_features, read_manifest
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
                               f"{EXACT_LIMIT:,} images needs faiss: {install_hint('search')}, or pass "
                               "kind='exact'.") from None
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
    >>> index = load_index("features/")
    >>> sims, rows = index.search(index.vectors[:1], k=2)
    >>> rows.shape, int(rows[0, 0]), index.paths[0]
    ((1, 2), 0, 'cat/cat0.png')
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
    ids: np.ndarray | None = None  # "ivf": each row's id in `ann` (`row_ids`); None: the row numbers

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
            sims, found = self.ann.search(queries, k)
            return sims, self._rows_of(found)
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

    def _rows_of(self, found: np.ndarray) -> np.ndarray:
        """Row numbers of ids the approximate index returned (-1 stays -1)."""
        if self.ids is None:
            return found
        order = self.__dict__.get("_id_order")
        if order is None:
            order = self.__dict__["_id_order"] = np.argsort(self.ids, kind="stable")
        at = np.searchsorted(self.ids[order], found).clip(0, len(order) - 1)
        return np.where(found >= 0, order[at], -1)

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


def row_ids(paths: list[str]) -> np.ndarray:
    """A stable 63-bit id per image path: an approximate index keeps its rows by these ids, so rows can be removed
    and added when the set changes, whatever the new row order."""
    return np.array([int.from_bytes(hashlib.blake2b(p.encode("utf-8", "surrogateescape"), digest_size=8).digest(),
                                    "little") & 0x7FFF_FFFF_FFFF_FFFF for p in paths], dtype=np.int64)


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
    ids = row_ids(fs.paths) if kind == "ivf" else None
    if ids is not None and len(np.unique(ids)) < len(ids):  # a 63-bit collision: keep row numbers
        ids = None
    with atomic_folder(out) as tmp:
        np.save(tmp / "vectors.npy", vectors)
        ann = _build_ann(vectors, kind, nlist, tmp, info, ids)
        write_json_atomic(tmp / "index.json", info)
    _record(features_dir, manifest, layer, out, info)
    if not quiet:
        article = "an" if kind[0] in "aeiou" else "a"
        print(f"built {article} {kind} index of {len(vectors):,} × {vectors.shape[1]} ({layer}) in {out}")
    return SearchIndex(vectors, fs.paths, fs.labels, fs.class_names, fs.root, layer, kind, manifest, ann, ids=ids)


def _record(features_dir: Path, manifest, layer: str, out: Path, info: dict) -> None:
    """Name the layer's index in the set's manifest (a `Manifest`, as `read_manifest` returns it)."""
    manifest.setdefault("index", {})[layer] = {"dir": out.name, **{k: info[k] for k in ("kind", "rows",
                                                                                         "fingerprint")}}
    manifest.write(features_dir)


# an approximate index follows a changed set by removing and adding rows until the set has grown this many times
# past the rows its cells were trained on; then it is trained again
RETRAIN_GROWTH = 4


def update_index(features_dir, *, layer: str, info: dict, quiet: bool = True) -> SearchIndex | None:
    """Bring an approximate index to the features' current state by removing the rows that went or changed and
    adding the new and changed ones (faiss `remove_ids` / `add_with_ids`), not training it again. None when it
    cannot (no ids recorded, a collision, or the set outgrew the trained cells): build it instead."""
    features_dir = Path(features_dir)
    out = index_dir(features_dir, layer)
    if info.get("kind") != "ivf" or not (out / "ids.npy").is_file():
        return None
    manifest = read_manifest(features_dir)
    fs = load_features(features_dir, layers=[layer])
    if not len(fs) or len(fs) > RETRAIN_GROWTH * info.get("trained_rows", info["rows"]):
        return None
    vectors = normalize(fs.features[layer])
    ids = row_ids(fs.paths)
    old_ids = np.load(out / "ids.npy")
    if len(np.unique(ids)) < len(ids) or vectors.shape[1] != info.get("dim"):
        return None
    old_vectors = np.load(out / "vectors.npy", mmap_mode="r")
    order = np.argsort(old_ids, kind="stable")
    at = np.searchsorted(old_ids[order], ids).clip(0, len(order) - 1)
    known = old_ids[order][at] == ids
    old_row = order[at]
    same = known.copy()
    for a in range(0, len(ids), 65_536):  # in blocks: memory stays flat
        rows = np.flatnonzero(known[a:a + 65_536]) + a
        same[rows] = (old_vectors[old_row[rows]] == vectors[rows]).all(axis=1)
    gone = np.setdiff1d(old_ids, ids[known], assume_unique=True)
    changed = ids[known & ~same]
    add = np.flatnonzero(~same)
    faiss = _faiss()
    ann = faiss.read_index(str(out / "ivf.faiss"))
    if len(gone) or len(changed):
        ann.remove_ids(np.concatenate([gone, changed]).astype(np.int64))
    if len(add):
        ann.add_with_ids(vectors[add], ids[add])
    info = {**info, "rows": len(vectors), "fingerprint": fingerprint(manifest, layer),
            "trained_rows": info.get("trained_rows", info["rows"]),
            "updated": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "last_update": {"added": int((~known).sum()), "changed": int(len(changed)), "removed": int(len(gone))}}
    with atomic_folder(out) as tmp:
        np.save(tmp / "vectors.npy", vectors)
        np.save(tmp / "ids.npy", ids)
        faiss.write_index(ann, str(tmp / "ivf.faiss"))
        write_json_atomic(tmp / "index.json", info)
    _record(features_dir, manifest, layer, out, info)
    if not quiet:
        u = info["last_update"]
        print(f"updated the {info['kind']} index of {str(features_dir)!r}: added {u['added']}, changed "
              f"{u['changed']}, removed {u['removed']} ({len(vectors):,} rows)")
    return SearchIndex(vectors, fs.paths, fs.labels, fs.class_names, fs.root, layer, "ivf", manifest, ann, ids=ids)


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
        updated = update_index(features_dir, layer=layer, info=info, quiet=quiet) if info is not None else None
        if updated is not None:
            return updated
        if info is not None and not quiet:
            print(f"The features in {features_dir} changed since the index was built; rebuilding it.")
        return build_index(features_dir, layer=layer, kind=info.get("kind", "auto") if info else "auto", quiet=quiet)
    fs = load_features(features_dir, layers=[])  # paths and labels only
    vectors = np.load(out / "vectors.npy", mmap_mode="r")
    if len(vectors) != len(fs.paths):
        return build_index(features_dir, layer=layer, quiet=quiet)
    ann = _faiss().read_index(str(out / "ivf.faiss")) if info["kind"] == "ivf" else None
    ids = np.load(out / "ids.npy") if info["kind"] == "ivf" and (out / "ids.npy").is_file() else None
    return SearchIndex(np.asarray(vectors), fs.paths, fs.labels, fs.class_names, fs.root, layer, info["kind"],
                       manifest, ann, ids=ids)


def _build_ann(vectors: np.ndarray, kind: str, nlist: int | None, folder: Path, info: dict,
               ids: np.ndarray | None = None):
    """The faiss IVF index of `vectors` for kind "ivf" (written into `folder` with the rows' `ids`; `info` gets
    its nlist), else None."""
    if kind != "ivf":
        return None
    faiss = _faiss()
    nlist = check_positive_int("nlist", nlist) if nlist is not None else max(1, int(4 * np.sqrt(len(vectors))))
    nlist = min(nlist, len(vectors))
    quantizer = faiss.IndexFlatIP(vectors.shape[1])
    ann = faiss.IndexIVFFlat(quantizer, vectors.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
    sample = vectors[np.random.default_rng(0).permutation(len(vectors))[: max(nlist * 40, 10_000)]]
    ann.train(sample)
    if ids is None:
        ann.add(vectors)
    else:
        ann.add_with_ids(vectors, ids)
        np.save(folder / "ids.npy", ids)
    faiss.write_index(ann, str(folder / "ivf.faiss"))
    info["nlist"] = nlist
    info["trained_rows"] = len(vectors)
    return ann
