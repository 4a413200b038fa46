"""Whole-or-nothing file writes: every file transferkit writes appears under its final name complete or not at all.

A kill, a full disk or an exception during a write leaves the previous version (or nothing) in place, never a
half-written file; `--resume`, manifests and run folders rely on that.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Iterator


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temporary_name(final: Path) -> Path:
    # ends in the final suffix (Keras checks `.weights.h5` and `.keras`); a leading dot hides it from listings
    suffix = ".weights.h5" if final.name.endswith(".weights.h5") else final.suffix
    return final.with_name(f".{final.name}.tmp-{os.getpid()}{suffix}")


@contextlib.contextmanager
def atomic_path(path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block ends without an error, it replaces `path`.

    For writers that take a file name (Parquet, Keras `save_weights`, NumPy). The temporary file has the same
    suffix, so format checks by suffix pass.

    Example:
    >>> with atomic_path("best.weights.h5") as tmp:  # doctest: +SKIP
    ...     model.save_weights(tmp)
    """
    final = Path(path)
    tmp = _temporary_name(final)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


@contextlib.contextmanager
def atomic_open(path, mode: str = "w", **kwargs):
    """`open(path, mode)` for writing, replacing `path` only when the block ends without an error.

    Example:
    >>> with atomic_open("predictions.csv", newline="") as f:  # doctest: +SKIP
    ...     csv.writer(f).writerows(rows)
    """
    if "b" not in mode:
        kwargs.setdefault("encoding", "utf-8")
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as f:
        yield f


def write_text_atomic(path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` whole or not at all."""
    with atomic_open(path) as f:
        f.write(text)
    return Path(path)


def write_bytes_atomic(path, data: bytes) -> Path:
    """Write `data` to `path` whole or not at all."""
    with atomic_open(path, "wb") as f:
        f.write(data)
    return Path(path)


def write_json_atomic(path, obj, indent: int | None = 1) -> Path:
    """Write `obj` as JSON (plus a final newline) to `path` whole or not at all."""
    return write_text_atomic(path, json.dumps(obj, indent=indent) + "\n")


@contextlib.contextmanager
def atomic_folder(path) -> Iterator[Path]:
    """Yield an empty temporary folder beside `path`; when the block ends without an error, it replaces `path`
    (an older folder there is removed first). On an error the temporary folder is removed.

    Example:
    >>> with atomic_folder("index-avg_pool") as tmp:  # doctest: +SKIP
    ...     np.save(tmp / "vectors.npy", vectors)
    """
    final = Path(path)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
