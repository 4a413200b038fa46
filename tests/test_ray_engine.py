"""The Ray Data engine: same rows and features as the local engine, resume, bad files, a killed worker."""

import os
import signal
import threading
import time

import numpy as np
import pytest

import transferkit as tk
from transferkit.errors import TransferkitError

from conftest import HERE, make_image

pytestmark = pytest.mark.slow  # minutes on 2 cores; `scripts/test.sh --quick` leaves them out

ray = pytest.importorskip("ray", reason="the Ray engine needs pip install 'transferkit[ray]'")

COMMON = dict(model="tiny_test", layers=["block2_pool", "avg_pool"], weights="none", precision="float32",
              shard_size=16, batch_size=8)


@pytest.fixture
def ray_env(monkeypatch):
    # Ray workers are new processes: they must import the test backbone's module too.
    monkeypatch.setenv("PYTHONPATH", str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    yield
    assert not ray.is_initialized(), "the engine must stop the Ray instance it started"


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "imgs"
    for i in range(60):
        make_image(root / ("a" if i % 2 else "b") / f"{i:03d}.png", rng, size=(24, 24))
    (root / "a" / "bad.png").write_bytes(b"not a png")
    return root


def test_same_output_as_local_engine(folder, tmp_path, ray_env):
    distributed = tk.extract(folder, tmp_path / "ray", engine="ray", workers=2, **COMMON)
    local = tk.extract(folder, tmp_path / "local", **COMMON)
    assert distributed.paths == local.paths and len(set(distributed.paths)) == 60
    np.testing.assert_array_equal(distributed.labels, local.labels)
    for name in ("block2_pool", "avg_pool"):
        np.testing.assert_allclose(distributed.features[name], local.features[name], rtol=1e-5, atol=1e-6)
    assert distributed.skipped == local.skipped == [{"index": 30, "path": "a/bad.png",
                                                     "reason": "not an image (unrecognised format)"}]
    assert distributed.manifest["settings"] == local.manifest["settings"]


def test_resume_skips_finished_shards(folder, tmp_path, ray_env):
    out = tmp_path / "o"
    tk.extract(folder, out, engine="ray", **COMMON)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")}
    (out / "part-00002.parquet").unlink()
    fs = tk.extract(folder, out, engine="ray", **COMMON)
    after = {p.name: p.stat().st_mtime_ns for p in out.glob("part-*.parquet")}
    assert set(after) == set(stamps)
    assert all(after[n] == stamps[n] for n in stamps if n != "part-00002.parquet")
    assert len(fs) == 60 and len(set(fs.paths)) == 60


def _kill_one_worker_when(out, stop):
    """SIGKILL one model-replica process once the first shard exists."""
    while not stop.is_set():
        if list(out.glob("part-*.parquet")):
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    cmd = open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
                except OSError:
                    continue
                if "_Embedder" in cmd:
                    os.kill(int(pid), signal.SIGKILL)
                    stop.killed = True
                    return
        time.sleep(0.05)


def test_killed_worker_still_gives_complete_output(tmp_path, ray_env):
    rng = np.random.default_rng(1)
    root = tmp_path / "many"
    for i in range(240):
        make_image(root / f"{i:04d}.png", rng, size=(24, 24))
    out = tmp_path / "o"
    stop = threading.Event()
    stop.killed = False
    watcher = threading.Thread(target=_kill_one_worker_when, args=(out, stop), daemon=True)
    watcher.start()
    args = dict(COMMON, batch_size=4, shard_size=8)
    fs = tk.extract(root, out, engine="ray", workers=2, **args)
    stop.set()
    watcher.join(5)
    assert stop.killed, "the test did not manage to kill a worker mid-run"
    assert len(fs) == 240 and fs.paths == sorted(fs.paths) and len(set(fs.paths)) == 240
    local = tk.extract(root, tmp_path / "local", **args)
    np.testing.assert_allclose(fs.features["avg_pool"], local.features["avg_pool"], rtol=1e-5, atol=1e-6)


def test_missing_ray_says_how_to_install(folder, tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(TransferkitError, match=r'pip install "\.\[ray\]"'):
        tk.extract(folder, tmp_path / "o", engine="ray", **COMMON)


def test_int8_on_ray_matches_int8_locally(folder, tmp_path, ray_env, monkeypatch):
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    monkeypatch.setenv("TRANSFERKIT_CACHE", str(tmp_path / "cache"))
    int8 = {**COMMON, "precision": "int8", "calibration": 12}
    local = tk.extract(folder, tmp_path / "local8", **int8)
    distributed = tk.extract(folder, tmp_path / "ray8", engine="ray", workers=1, **int8)  # the cached model
    assert distributed.paths == local.paths and distributed.manifest["settings"]["runtime"] == "openvino"
    for name in ("block2_pool", "avg_pool"):
        np.testing.assert_allclose(distributed.features[name], local.features[name], rtol=1e-5, atol=1e-6)


def test_update_with_the_ray_engine_equals_a_fresh_local_extraction(folder, tmp_path, ray_env):
    out = tmp_path / "out"
    tk.extract(folder, out, **COMMON)
    rng = np.random.default_rng(3)
    for i in range(20):
        make_image(folder / "a" / f"new{i:02d}.png", rng, size=(24, 24))
    os.remove(folder / "b" / "000.png")
    fs = tk.extract(folder, out, engine="ray", workers=2, update=True, **COMMON)
    assert {k: fs.manifest["updates"][-1][k] for k in ("added", "changed", "removed")} == \
        {"added": 20, "changed": 0, "removed": 1}
    fresh = tk.extract(folder, tmp_path / "fresh", **COMMON)
    assert fs.paths == fresh.paths and [s["path"] for s in fs.skipped] == ["a/bad.png"]
    for name in fresh.features:
        np.testing.assert_allclose(fs.features[name], fresh.features[name], atol=1e-5)
