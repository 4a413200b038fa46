"""Crash/resume: SIGKILL `transferkit extract` at 10 random moments, and `train` between epochs; resume each."""

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import transferkit as tk
from transferkit.extract.writer import read_shard_meta

from conftest import HERE, make_image, make_split_folder, run_cli_here

pytestmark = pytest.mark.slow  # minutes on 2 cores; `scripts/test.sh --quick` leaves them out

ENV = dict(os.environ, PYTHONPATH=str(HERE) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _popen(*args):
    return subprocess.Popen([sys.executable, str(HERE / "tk_cli.py"), *map(str, args)], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _check_invariants(out):
    """What a reader may see at any moment: a parseable manifest and only whole shards under final names."""
    if (out / "manifest.json").exists():
        manifest = json.loads((out / "manifest.json").read_text())
        for shard in manifest["shards"]:
            assert read_shard_meta(out / shard["file"]) is not None
    for shard in out.glob("part-*.parquet"):
        assert read_shard_meta(shard) is not None, f"{shard.name} is not a complete shard"


def test_extract_killed_at_ten_random_points(tmp_path):
    rng = np.random.default_rng(5)
    images = tmp_path / "imgs"
    for i in range(640):
        make_image(images / ("x" if i % 3 else "y") / f"{i:04d}.png", rng, size=(24, 24))
    (images / "x" / "broken.png").write_bytes(b"\x89PNG broken")
    args = ["extract", images, "--model", "vgg16", "--layer", "block4_pool", "--pooling", "avg", "--input-size",
            "96", "--weights", "none", "--batch-size", "4", "--shard-size", "16", "--precision", "float32", "-q"]
    out = tmp_path / "killed"
    chooser = random.Random(11)
    kills = 0
    while kills < 10:
        before = len(list(out.glob("part-*.parquet")))
        proc = _popen(*args, "-o", out)
        wanted = before + chooser.randint(1, 3)  # let 1-3 more shards land, then kill at a random moment
        deadline = time.time() + 120
        while proc.poll() is None and time.time() < deadline and len(list(out.glob("part-*.parquet"))) < wanted:
            time.sleep(0.01)
        time.sleep(chooser.uniform(0.0, 0.3))
        if proc.poll() is not None:
            break  # finished before this kill
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        _check_invariants(out)
    assert kills >= 10, f"only {kills} kills landed before the run finished"
    final = run_cli_here(*args, "-o", out)  # the kills were real processes; finishing and the reference need not be
    assert final.returncode == 3, final.stderr  # 3: finished, one image skipped
    reference = run_cli_here(*args, "-o", tmp_path / "reference")
    assert reference.returncode == 3, reference.stderr
    a, b = tk.load_features(out), tk.load_features(tmp_path / "reference")
    assert a.paths == b.paths and len(a.paths) == 640 and len(set(a.paths)) == 640
    np.testing.assert_allclose(a.matrix, b.matrix, rtol=1e-6, atol=1e-6)
    assert a.skipped == b.skipped and [s["path"] for s in a.skipped] == ["x/broken.png"]


def test_train_interrupted_between_epochs_resumes(tmp_path):
    data = make_split_folder(tmp_path / "data", {"train": 40, "validation": 10}, ["a", "b"])
    args = ["train", data, "--model", "tiny_test", "--weights", "none", "--strategy", "frozen", "--epochs", "8",
            "--batch-size", "4", "--learning-rate", "1e-3", "--optimizer", "adam", "--precision", "float32",
            "--runs", tmp_path / "runs", "--name", "r", "-q"]
    history = tmp_path / "runs" / "r" / "history.csv"
    proc = _popen(*args)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if history.exists() and len(history.read_text().splitlines()) >= 4:  # header + 3 epochs
            break
        time.sleep(0.05)
    if proc.poll() is not None:
        pytest.fail("training finished before it could be interrupted")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    epochs_before = len(history.read_text().splitlines()) - 1
    assert 3 <= epochs_before < 8
    again = run_cli_here(*args)
    assert again.returncode == 1 and "--resume" in again.stderr  # never overwritten silently
    resumed = run_cli_here(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    with open(history) as f:
        epochs = [int(row["epoch"]) for row in csv.DictReader(f)]
    assert epochs == list(range(8)), epochs  # every epoch once: none repeated, none lost
    metrics = json.loads((tmp_path / "runs" / "r" / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.8
    with open(history) as f:
        scores = [(float(row["val_accuracy"]), -float(row["val_loss"])) for row in csv.DictReader(f)]
    best = max(range(8), key=lambda i: scores[i]) + 1
    assert metrics["stages"][0]["best_epoch"] == best  # the best epoch over both processes, not since the restart
    np.testing.assert_allclose(metrics["loss"], -scores[best - 1][1], rtol=1e-3)


@pytest.mark.parametrize("strategy", ["frozen", "features"])
def test_train_killed_at_random_moments_resumes_to_the_same_metrics(tmp_path, strategy):
    """SIGKILL `train` at random moments (mid-epoch, mid-write), resume each time: every run-folder file stays
    readable, and the finished run equals an uninterrupted one (history, kept epoch, metrics)."""
    data = make_split_folder(tmp_path / "data", {"train": 24, "validation": 8}, ["a", "b"])
    args = ["train", data, "--model", "tiny_test", "--weights", "none", "--strategy", strategy, "--epochs", "8",
            "--batch-size", "4", "--learning-rate", "1e-3", "--optimizer", "adam", "--precision", "float32",
            "--runs", tmp_path / "runs", "-q"]
    run = tmp_path / "runs" / "killed"
    chooser = random.Random(3)
    kills, resume = 0, []
    for _ in range(6):
        proc = _popen(*args, "--name", "killed", *resume)
        resume = ["--resume"]
        time.sleep(chooser.uniform(3.0, 9.0))  # start-up takes a few seconds; then epochs are fractions of one
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        for name in ("config.json", "history.csv", *[p.name for p in run.glob(".stage*.json")]):
            if (run / name).exists() and name.endswith(".json"):
                json.loads((run / name).read_text())  # whole, never half-written
    assert kills >= 2, "the run finished before it could be interrupted twice"
    final = run_cli_here(*args, "--name", "killed", "--resume")
    assert final.returncode == 0, final.stderr
    reference = run_cli_here(*args, "--name", "reference")
    assert reference.returncode == 0, reference.stderr

    def read(folder):
        with open(folder / "history.csv") as f:
            rows = list(csv.DictReader(f))
        return rows, json.loads((folder / "metrics.json").read_text())

    (rows, metrics), (ref_rows, ref_metrics) = read(run), read(tmp_path / "runs" / "reference")
    assert [int(r["epoch"]) for r in rows] == list(range(8))  # every epoch once: none repeated, none lost
    for got, want in zip(rows, ref_rows):
        for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
            np.testing.assert_allclose(float(got[key]), float(want[key]), rtol=1e-4, atol=1e-6, err_msg=key)
    assert metrics["stages"][0]["best_epoch"] == ref_metrics["stages"][0]["best_epoch"]
    np.testing.assert_allclose(metrics["loss"], ref_metrics["loss"], rtol=1e-4)
    assert metrics["accuracy"] == ref_metrics["accuracy"]
    assert not list(run.glob(".stage*")) and not list(run.glob(".backup-*")) and not list(run.glob(".*.tmp-*"))
    assert (run / "report.html").is_file()
