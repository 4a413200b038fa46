"""`extract --update`: a feature set brought to its folder's current state — new and changed files extracted,
removed ones dropped, every other row copied as it is (never decoded again)."""

from __future__ import annotations

import datetime as _dt
import os
import shutil
from pathlib import Path

import numpy as np

from ..data.folder import ImageIndex
from ..errors import TransferkitError, plural, settings_diff
from .manifest import Manifest
from .writer import MANIFEST, SHARD_PATTERN, file_stats, write_shard

UPDATE_KEYS = ("files", "images")  # the settings an update may change: the file list and its length
STAGING = ".update"  # the extraction of new and changed files, inside the set's folder (resumable)


def check_updatable(out: Path, old: dict | None, settings: dict) -> None:
    """Refuse an update of a folder that is no finished feature set, or one made with other settings."""
    if old is None:
        raise TransferkitError(f"--update needs a feature set in {str(out)!r}, and there is none (no {MANIFEST}). "
                               "Run `transferkit extract` without --update first.")
    if old["settings"].get("imported"):
        raise TransferkitError(f"{str(out)!r} was imported from elsewhere; --update extracts images, which cannot "
                               "be extracted like it. Import the new vectors with transferkit import-features.")
    if not old.get("complete"):
        raise TransferkitError(f"The extraction in {str(out)!r} is not finished; re-run it without --update to "
                               "complete it first.")
    keep = lambda s: {k: v for k, v in s.items() if k not in UPDATE_KEYS}  # noqa: E731
    diff = settings_diff(keep(old["settings"]), keep(settings))
    if diff:
        raise TransferkitError(f"{str(out)!r} was extracted with other settings ({'; '.join(diff)}); --update keeps "
                               "a set's settings. Use the same options, or another -o/--output.")


def _old_rows(out: Path, manifest: dict) -> dict[str, tuple]:
    """path -> (shard file, row in it, size, mtime_ns, sha256 or None) of every row of the set."""
    import pyarrow.parquet as pq

    rows = {}
    for shard in manifest["shards"]:
        columns = pq.read_schema(out / shard["file"]).names
        stats = [c for c in ("file_size", "file_mtime_ns", "file_sha256") if c in columns]
        table = pq.read_table(out / shard["file"], columns=["path", *stats])
        paths = table.column("path").to_pylist()
        if len(stats) == 3:
            size, mtime, sha = (table.column(c).to_pylist() for c in stats)
        else:  # written before files were recorded: assumed unchanged at this first update
            size = mtime = sha = [None] * len(paths)
        for r, p in enumerate(paths):
            rows[p] = (shard["file"], r, size[r], mtime[r], sha[r])
    return rows


def plan(index: ImageIndex, old_rows: dict[str, tuple], old_skipped: set[str]) -> dict:
    """What an update does: for each image of the folder, reuse its row (unchanged: same size and mtime, or same
    content hash) or extract it (new, changed, or skipped before); and which old rows go."""
    reuse, stats, extract_rows = {}, {}, []
    counts = {"added": 0, "changed": 0, "removed": 0, "unchanged": 0, "retried": 0}
    for i, p in enumerate(index.paths):
        old = old_rows.get(p)
        if old is None:
            extract_rows.append(i)
            counts["retried" if p in old_skipped else "added"] += 1
            continue
        _, _, size, mtime, sha = old
        try:
            st = os.stat(index.absolute(i))
        except OSError:
            extract_rows.append(i)  # unreadable now: the extraction will say so
            counts["changed"] += 1
            continue
        if size is None or (st.st_size == size and st.st_mtime_ns == mtime):
            same = True
        else:
            fresh = file_stats([index.absolute(i)])
            same = fresh["sha256"][0] == sha
        if same:
            reuse[i] = old
            stats[i] = (st.st_size, st.st_mtime_ns, sha) if sha else None
            counts["unchanged"] += 1
        else:
            extract_rows.append(i)
            counts["changed"] += 1
    present = set(index.paths)
    counts["removed"] = sum(1 for p in old_rows if p not in present) + sum(1 for p in old_skipped if p not in present)
    return {"reuse": reuse, "stats": stats, "extract": extract_rows, "counts": counts}


def read_columns(path: Path, layers: list[str]) -> dict:
    """A shard as arrays: each layer (rows, width) and, where recorded, the file columns."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    out = {"path": table.column("path").to_pylist()}
    for layer in layers:
        flat = table.column(layer).combine_chunks().flatten().to_numpy(zero_copy_only=False)
        out[layer] = flat.reshape(table.num_rows, -1)
    for col in ("file_size", "file_mtime_ns", "file_sha256"):
        if col in table.column_names:
            out[col] = table.column(col).to_pylist()
    return out


class _Shards:
    """Old shards read on demand, the last few kept (rows of an update come in nearly the old order)."""

    def __init__(self, folder: Path, layers: list[str], keep: int = 3):
        self.folder, self.layers, self.keep, self.cache = folder, layers, keep, {}

    def get(self, name: str) -> dict:
        if name not in self.cache:
            if len(self.cache) >= self.keep:
                self.cache.pop(next(iter(self.cache)))
            self.cache[name] = read_columns(self.folder / name, self.layers)
        return self.cache[name]


def _extract_new(index: ImageIndex, rows: list[int], staging: Path, layers: list[str], extract_subset):
    """Extract the new and changed images into `staging` (resuming one staged for the same files); returns their
    rows by path, (columns, row), and the reasons of those that could not be read."""
    fresh: dict[str, tuple] = {}
    skipped_now: dict[str, str] = {}
    if not rows:
        return fresh, skipped_now
    sub = index.subset(rows)
    try:
        staged = json_or_none(staging / MANIFEST)
        if staged is not None and staged.get("settings", {}).get("files") != sub.fingerprint():
            shutil.rmtree(staging)  # staged for another state of the folder
    except OSError:
        pass
    fs = extract_subset(sub, staging)
    for s in fs.skipped:
        skipped_now[s["path"]] = s["reason"]
    for shard in fs.manifest["shards"]:
        columns = read_columns(staging / shard["file"], layers)
        for r, p in enumerate(columns["path"]):
            fresh[p] = (columns, r)
    return fresh, skipped_now


def update_set(out: Path, index: ImageIndex, old: dict, settings: dict, *, extract_subset,
               quiet: bool = True) -> dict:
    """Bring the feature set in `out` to `index`; returns the update's counts (also appended to the manifest's
    `updates`). New shards are written beside the old ones and the manifest that names them is the one commit:
    a kill before it leaves the old set, after it the new one; re-running resumes the staged extraction.

    Args:
        extract_subset: `f(sub_index, folder)` extracting images with the set's settings (the runner's
            `run_plan` of the set's plan).
    """
    old_skipped = {s["path"] for s in old.get("skipped", [])}
    layers = list(old["layers"])
    work = plan(index, _old_rows(out, old), old_skipped)
    staging = out / STAGING
    fresh, skipped_now = _extract_new(index, work["extract"], staging, layers, extract_subset)
    shapes = [tuple(old["layers"][n]["shape"]) for n in layers]
    size = settings["shard_size"]
    generation = len(old.get("updates", [])) + 1
    tables = _Shards(out, layers)
    done: dict[int, dict] = {}
    n = len(index)
    for k in range(max(1, -(-n // size))):
        start, stop = k * size, min((k + 1) * size, n)
        pos, feats, files = [], {layer: [] for layer in layers}, {"size": [], "mtime_ns": [], "sha256": []}
        shard_skipped = []
        for i in range(start, stop):
            p = index.paths[i]
            if i in work["reuse"]:
                name, r, *_ = work["reuse"][i]
                table = tables.get(name)
            elif p in fresh:
                table, r = fresh[p]
            else:
                shard_skipped.append({"index": i, "path": p, "reason": skipped_now.get(p, "could not be read")})
                continue
            pos.append(i)
            for layer in layers:
                feats[layer].append(table[layer][r])
            stat = work["stats"].get(i) if i in work["reuse"] else None
            if stat is None and "file_size" in table:
                stat = (table["file_size"][r], table["file_mtime_ns"][r], table["file_sha256"][r])
            if stat is None:  # a row of a set written before files were recorded
                one = file_stats([index.absolute(i)])
                stat = (one["size"][0], one["mtime_ns"][0], one["sha256"][0])
            for key, value in zip(("size", "mtime_ns", "sha256"), stat):
                files[key].append(value)
        positions = np.array(pos, dtype=np.int64)
        arrays = {layer: (np.stack(v).reshape(len(v), *shape) if v else np.zeros((0, *shape), np.float32))
                  for (layer, v), shape in zip(feats.items(), shapes)}
        name = f"part-u{generation}-{k:05d}.parquet"
        meta = {"shard": k, "start": start, "stop": stop, "rows": len(pos), "skipped": shard_skipped}
        labels = index.labels[positions] if index.labels is not None else None
        write_shard(out, k, positions=positions, paths=[index.paths[i] for i in pos], labels=labels,
                    class_names=index.class_names, features=arrays, meta=meta, files=files, name=name)
        done[k] = {**meta, "file": name}
    counts = {**work["counts"], "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    manifest = Manifest.new(settings, root=index.root, class_names=index.class_names, ignored=index.ignored,
                            created=old.get("created"), keep=old)
    manifest.record_shards(done, len(done))
    manifest.add_update(counts)
    manifest.pop("npy_files", None)
    manifest.write(out)  # the commit
    keep = {s["file"] for s in manifest["shards"]}
    for p in out.iterdir():
        if SHARD_PATTERN.match(p.name) and p.name not in keep:
            p.unlink()
    shutil.rmtree(staging, ignore_errors=True)
    return counts  # the command line prints `describe(counts)` once; Python callers read manifest["updates"]


def describe(counts: dict) -> str:
    """ "added 10, changed 3, removed 5 (1,000 unchanged)" """
    line = (f"added {counts['added']}, changed {counts['changed']}, removed {counts['removed']} "
            f"({plural(counts['unchanged'], 'row')} unchanged")
    return line + (f", {counts['retried']} skipped before, tried again)" if counts.get("retried") else ")")


def json_or_none(path: Path) -> dict | None:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None

