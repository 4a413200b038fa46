"""`extract --update`: a grown, changed and shrunk folder gives the rows of a fresh extraction, untouched rows are
copied (never decoded again), bad input gets one line with the set intact, and a kill leaves the old or the new
set; `save_features` / `import-features` make a searchable set of vectors from elsewhere."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import transferkit as tk
from conftest import HERE, make_image, run_cli, run_cli_here
from transferkit.errors import TransferkitError
from transferkit.extract.writer import read_shard_meta

KW = dict(model="tiny_test", weights="none", pooling="avg", shard_size=16, precision="bfloat16")
ARGS = ["--model", "tiny_test", "--weights", "none", "--pooling", "avg", "--shard-size", "16", "--precision",
        "bfloat16", "-q"]


def grow(src, rng, *, added=10, changed=3, removed=5):
    """Add, rewrite and delete images of `src` (in place); returns the paths added and changed."""
    new = [make_image(src / "a" / f"new{i:02d}.png", rng, size=(40, 40)) for i in range(added)]
    changed_paths = []
    for i in range(changed):
        path = src / "b" / f"{i:03d}.png"
        make_image(path, rng, size=(40, 40))
        os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))  # a new mtime even on coarse clocks
        changed_paths.append(path)
    for i in range(removed):
        os.remove(src / "a" / f"{20 + i:03d}.png")
    return new, changed_paths


@pytest.fixture
def photo_set(tmp_path):
    rng = np.random.default_rng(0)
    src = tmp_path / "src"
    for c in ("a", "b"):
        for i in range(30):
            make_image(src / c / f"{i:03d}.png", rng, size=(40, 40))
    before = tk.extract(src, tmp_path / "out", **KW)
    return src, tmp_path / "out", before


def test_update_equals_a_fresh_extraction_and_decodes_only_what_changed(photo_set, tmp_path, monkeypatch):
    src, out, before = photo_set
    new, changed = grow(src, np.random.default_rng(1))
    (src / "b" / "005.png").touch()  # a new mtime, the same bytes: the hash says unchanged
    from transferkit.data import input_config

    decoded = []
    real = input_config.InputConfig.load
    monkeypatch.setattr(input_config.InputConfig, "load", lambda self, path: decoded.append(path) or real(self, path))
    fs = tk.extract(src, out, update=True, **KW)
    monkeypatch.undo()
    assert sorted(map(str, decoded)) == sorted(str(p) for p in new + changed)
    update = fs.manifest["updates"][-1]
    assert (update["added"], update["changed"], update["removed"], update["unchanged"]) == (10, 3, 5, 52)
    fresh = tk.extract(src, tmp_path / "fresh", **KW)
    assert fs.paths == fresh.paths and (fs.labels == fresh.labels).all()
    np.testing.assert_allclose(fs.matrix, fresh.matrix, atol=1e-5)
    old = dict(zip(before.paths, before.matrix))
    for p, row in zip(fs.paths, fs.matrix):
        if p in old and p not in {"b/000.png", "b/001.png", "b/002.png"}:
            assert row.tobytes() == old[p].tobytes()  # copied, not recomputed
    # a copy of a new image finds it as itself
    shutil.copy(new[4], tmp_path / "query.png")
    matches, _ = tk.search.similar(out, tmp_path / "query.png", k=1)
    assert matches[0].path == "a/new04.png" and matches[0].similarity > 0.9999
    # nothing changed: nothing decoded, the rows stay, the update is still recorded
    again = tk.extract(src, out, update=True, **KW)
    assert again.manifest["updates"][-1]["unchanged"] == 65 and len(again.manifest["updates"]) == 2
    assert again.paths == fs.paths and np.array_equal(again.matrix, fs.matrix)
    # a plain re-run of the same command finds the set complete
    assert len(tk.extract(src, out, **KW)) == 65


@pytest.mark.slow
def test_update_cli_prints_counts_and_bad_input_is_one_line(photo_set, tmp_path, cli):
    src, out, _ = photo_set
    grow(src, np.random.default_rng(2), added=2, changed=1, removed=1)
    r = cli("extract", src, "-o", out, "--update", *ARGS)
    assert r.returncode == 0, r.stderr
    assert "added 2, changed 1, removed 1" in r.stdout
    manifest = (out / "manifest.json").read_bytes()
    cases = [
        (["extract", src, "-o", tmp_path / "nothing", "--update", *ARGS], "no manifest.json"),
        (["extract", src, "-o", out, "--update", *ARGS[:-3], "--precision", "float32"], "other settings"),
        (["extract", tmp_path / "gone", "-o", out, "--update", *ARGS], "does not exist"),
        (["extract", src, "-o", out, "--update", "--overwrite", *ARGS], "not both"),
    ]
    for args, expected in cases:
        r = cli(*args)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 1 and len(lines) == 1 and expected in lines[0], r.stderr
        assert (out / "manifest.json").read_bytes() == manifest  # the set is untouched
    assert not (tmp_path / "nothing").exists()


@pytest.mark.slow
def test_update_killed_at_random_moments_leaves_old_or_new(tmp_path):
    rng = np.random.default_rng(3)
    src = tmp_path / "src"
    for i in range(200):
        make_image(src / ("a" if i % 2 else "b") / f"{i:03d}.png", rng, size=(32, 32))
    args = ["--model", "vgg16", "--layer", "block3_pool", "--pooling", "avg", "--input-size", "64", "--weights",
            "none", "--batch-size", "4", "--shard-size", "16", "--precision", "float32", "-q"]
    out = tmp_path / "out"
    assert run_cli("extract", src, "-o", out, *args).returncode == 0
    for i in range(200, 330):  # 130 new images: several staged shards to be killed between
        make_image(src / "a" / f"{i:03d}.png", rng, size=(32, 32))
    for i in range(0, 20, 2):
        os.remove(src / "b" / f"{i:03d}.png")
    env = dict(os.environ, PYTHONPATH=str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    chooser = random.Random(7)
    kills = 0
    for _ in range(6):
        proc = subprocess.Popen([sys.executable, str(HERE / "tk_cli.py"), "extract", src, "-o", out, "--update",
                                 *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(chooser.uniform(2.0, 6.0))
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        manifest = json.loads((out / "manifest.json").read_text())  # always parseable: old or new
        rows = sum(s["rows"] for s in manifest["shards"])
        assert rows in (200, 320), rows
        for shard in manifest["shards"]:
            assert read_shard_meta(out / shard["file"]) is not None
    assert kills >= 2
    final = run_cli_here("extract", src, "-o", out, "--update", *args)
    assert final.returncode == 0, final.stderr
    assert run_cli_here("extract", src, "-o", tmp_path / "fresh", *args).returncode == 0
    a, b = tk.load_features(out), tk.load_features(tmp_path / "fresh")
    assert a.paths == b.paths and len(a) == 320
    np.testing.assert_allclose(a.matrix, b.matrix, atol=1e-5)
    assert not (out / ".update").exists()


@pytest.mark.slow
def test_save_features_is_searchable_and_refuses_new_images(tmp_path, cli):
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(300, 24)).astype(np.float32)
    matrix[7] = matrix[3] + 0.01 * rng.normal(size=24)
    paths = [f"photos/{i:03d}.jpg" for i in range(300)]
    fs = tk.save_features(tmp_path / "set", matrix, paths, labels=["cat" if i % 3 else "dog" for i in range(300)])
    assert fs.class_names == ["cat", "dog"] and fs.manifest["settings"]["imported"]
    np.testing.assert_array_equal(fs.matrix, matrix)
    groups = tk.search.duplicates(tmp_path / "set", threshold=0.95)
    assert [[p for p, _ in g] for g in groups.groups] == [["photos/003.jpg", "photos/007.jpg"]]
    matches, _ = tk.search.similar(tmp_path / "set", "photos/003.jpg", k=1)
    assert matches[0].path == "photos/007.jpg"
    make_image(tmp_path / "new.png", rng)
    with pytest.raises(TransferkitError, match="imported from elsewhere"):
        tk.search.similar(tmp_path / "set", tmp_path / "new.png")
    with pytest.raises(TransferkitError, match="already exists"):
        tk.save_features(tmp_path / "set", matrix, paths)
    with pytest.raises(TransferkitError, match="listed twice"):
        tk.save_features(tmp_path / "other", matrix[:2], ["a.jpg", "a.jpg"])
    with pytest.raises(TransferkitError, match="NaN"):
        tk.save_features(tmp_path / "other", np.full((2, 3), np.nan), ["a.jpg", "b.jpg"])
    # the command line: a .npy with a paths file, and a Parquet file with a vector column
    np.save(tmp_path / "m.npy", matrix)
    (tmp_path / "paths.txt").write_text("\n".join(paths))
    r = cli("import-features", tmp_path / "m.npy", "--paths", tmp_path / "paths.txt", "-o", tmp_path / "cli-set")
    assert r.returncode == 0 and "Imported 300 rows × 24" in r.stdout, r.stderr
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"path": paths, "vec": [list(map(float, row)) for row in matrix]}), tmp_path / "v.parquet")
    r = cli("import-features", tmp_path / "v.parquet", "-o", tmp_path / "pq-set")
    assert r.returncode == 0, r.stderr
    np.testing.assert_allclose(tk.load_features(tmp_path / "pq-set").matrix, matrix, atol=1e-6)
    r = cli("import-features", tmp_path / "m.npy", "-o", tmp_path / "x")
    assert r.returncode == 1 and "--paths" in r.stderr.strip().splitlines()[0]
    r = cli("extract", tmp_path, "-o", tmp_path / "set", "--update", *ARGS)
    assert r.returncode == 1 and "imported" in r.stderr


def test_approximate_index_follows_an_update_without_training_again(photo_set, tmp_path):
    pytest.importorskip("faiss")
    from transferkit.search.index import build_index, load_index

    src, out, _ = photo_set
    built = build_index(out, kind="ivf", nlist=4)
    trained = json.loads((out / "index-avg_pool" / "index.json").read_text())
    new, changed = grow(src, np.random.default_rng(4))
    fs = tk.extract(src, out, update=True, **KW)
    index = load_index(out)
    info = json.loads((out / "index-avg_pool" / "index.json").read_text())
    assert info["last_update"] == {"added": 10, "changed": 3, "removed": 5}
    assert info["trained_rows"] == trained["trained_rows"] == 60 and info["rows"] == 65 == len(index)
    assert index.ann.ntotal == 65 and built.ann.ntotal == 60
    index.nprobe = 4  # every cell: the approximate answer must equal the exact one
    sims, rows = index.search(fs.matrix, 1)
    assert [index.paths[r] for r in rows[:, 0]] == fs.paths  # each row finds itself, by its row number
    assert np.allclose(sims[:, 0], 1, atol=1e-5)
    again = load_index(out)  # up to date now: loaded, not updated again
    assert json.loads((out / "index-avg_pool" / "index.json").read_text())["updated"] == info["updated"]
    assert again.paths == fs.paths
