"""The writer: numbered Parquet shards written under a temporary name then renamed, and the JSON manifest."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np

from ..data.decode import DecodeError, open_regular
from ..files import atomic_open, atomic_path

SHARD_PATTERN = re.compile(r"^part-(?:u\d+-)?(\d{5})\.parquet$")  # part-00000, or part-u2-00000 after update 2
MANIFEST = "manifest.json"
META_KEY = b"transferkit"


def written_by_extraction(name: str) -> bool:
    """Whether a file of an output folder is one extraction writes (shards, manifest, the npy files, and the
    temporary files of a killed write, which start with a dot): the files `--overwrite` may remove."""
    return bool(SHARD_PATTERN.match(name)) or name == MANIFEST or name in ("labels.npy", "paths.txt") or (
        name.startswith("features") and name.endswith(".npy")) or name.startswith(
        (".part-", f".{MANIFEST}", ".features", ".paths"))


def shard_name(k: int) -> str:
    return f"part-{k:05d}.parquet"


def _pa():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - pyarrow is a core dependency
        raise ImportError("transferkit needs pyarrow to write features: pip install pyarrow") from exc
    return pa, pq


def write_shard(out: Path, k: int, *, positions: np.ndarray, paths: list[str], labels, class_names: list[str],
                features: dict[str, np.ndarray], meta: dict, files: dict | None = None,
                name: str | None = None) -> Path:
    """Write shard `k` (as `name`, default `shard_name(k)`) atomically: a reader sees the whole shard or none of it.

    Columns: `index` (position in the sorted file list), `path` (relative to the
    input folder), `label` and `class_name` (null when unlabelled), optionally `file_size`, `file_mtime_ns` and
    `file_sha256` (what `extract --update` compares: `files`, from `file_stats`), then one
    fixed-size float32 list column per layer (maps flattened; shapes in the manifest).
    """
    pa, pq = _pa()
    n = len(positions)
    cols = {
        "index": pa.array(positions.astype(np.int64)),
        "path": pa.array(paths, type=pa.string()),
        "label": pa.array(labels if labels is not None else [None] * n, type=pa.int32()),
        "class_name": pa.array([class_names[i] for i in labels] if labels is not None else [None] * n,
                               type=pa.string()),
    }
    if files is not None:
        cols["file_size"] = pa.array(files["size"], type=pa.int64())
        cols["file_mtime_ns"] = pa.array(files["mtime_ns"], type=pa.int64())
        cols["file_sha256"] = pa.array(files["sha256"], type=pa.string())
    for layer, arr in features.items():
        width = int(np.prod(arr.shape[1:])) if arr.ndim > 1 else 1
        flat = np.ascontiguousarray(arr, dtype=np.float32).reshape(n, width)  # n may be 0: every file bad
        cols[layer] = pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), width)
    table = pa.table(cols).replace_schema_metadata({META_KEY: json.dumps(meta).encode()})
    final = out / (name or shard_name(k))
    with atomic_path(final) as tmp:  # a reader sees the whole shard or none of it
        pq.write_table(table, tmp, compression="zstd" if _zstd_ok(pa) else "snappy")
    return final


def file_stats(paths: list[str]) -> dict:
    """Size, modification time (ns) and SHA-256 of each file: how `extract --update` tells a changed file."""
    size, mtime, sha = [], [], []
    for path in paths:
        try:
            h = hashlib.sha256()
            with open_regular(path) as f:  # never a pipe swapped in since it was decoded
                st = os.fstat(f.fileno())
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
        except (OSError, DecodeError):  # gone since it was decoded: unknown, so the next update extracts it again
            size.append(-1)
            mtime.append(-1)
            sha.append("")
            continue
        size.append(st.st_size)
        mtime.append(st.st_mtime_ns)
        sha.append(h.hexdigest())
    return {"size": size, "mtime_ns": mtime, "sha256": sha}


def _zstd_ok(pa) -> bool:
    try:
        return pa.Codec.is_available("zstd")
    except Exception:  # pragma: no cover
        return False


def read_shard_meta(path: Path) -> dict | None:
    """The shard's own metadata, or None when the file is not a complete, readable shard."""
    _, pq = _pa()
    try:
        md = pq.read_metadata(path)
        meta = json.loads(md.metadata[META_KEY])
        if md.num_rows != meta["rows"]:
            return None
        return meta
    except Exception:
        return None


def write_npy(out: Path, shards: list[Path], layers: dict[str, dict], n_rows: int) -> list[str]:
    """Concatenate the shards into `features.npy` (or `features-<layer>.npy`), `labels.npy` and `paths.txt`.

    Streams shard by shard into memory-mapped files, so memory stays flat.
    """
    _, pq = _pa()
    with contextlib.ExitStack() as stack:
        written, mmaps = [], {}
        for name, info in layers.items():
            fname = "features.npy" if len(layers) == 1 else f"features-{safe_name(name)}.npy"
            tmp = stack.enter_context(atomic_path(out / fname))
            mmaps[name] = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n_rows, *info["shape"]))
            written.append(fname)
        labels = np.full(n_rows, -1, dtype=np.int32)
        fpaths = stack.enter_context(atomic_open(out / "paths.txt", errors="surrogateescape"))
        row = 0
        for shard in shards:
            table = pq.read_table(shard)
            n = table.num_rows
            for name, info in layers.items():
                flat = table.column(name).combine_chunks().flatten().to_numpy(zero_copy_only=False)
                mmaps[name][row:row + n] = flat.reshape(n, *info["shape"])
            lab = table.column("label").to_numpy(zero_copy_only=False)
            labels[row:row + n] = np.where(np.isnan(lab.astype(float)), -1, lab).astype(np.int32)
            for p in table.column("path").to_pylist():
                fpaths.write(p.replace("\n", "\\n") + "\n")
            row += n
        for name in list(mmaps):
            mmaps.pop(name).flush()
        with atomic_path(out / "labels.npy") as tmp:
            np.save(tmp, labels)
    return written + ["labels.npy", "paths.txt"]


def safe_name(name: str) -> str:
    """A layer name made safe as a file name part (never a path)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name).lstrip(".") or "layer"
