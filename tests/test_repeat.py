"""k-fold and repeated-seed training: disjoint folds that cover every labelled image, one extraction for all
folds, mean ± std in metrics.json, report.html and on the command line, resume, and one-line errors."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import transferkit as tk
from conftest import make_split_folder
from transferkit.data.folds import stratified_folds
from transferkit.errors import TransferkitError
from transferkit.data.splits import find_splits, labelled_pool

TINY = dict(model="tiny_test", weights="none", epochs=2)


@pytest.fixture
def data(tmp_path):
    return make_split_folder(tmp_path / "data", {"train": 9, "validation": 3}, ["checks", "stripes"])


def test_stratified_folds_are_balanced_seeded_and_checked():
    labels = np.array([0] * 10 + [1] * 7)
    folds = stratified_folds(labels, 3, seed=0)
    for k in range(3):
        held = labels[folds == k]
        assert 3 <= (held == 0).sum() <= 4 and 2 <= (held == 1).sum() <= 3
    assert (stratified_folds(labels, 3, seed=0) == folds).all()
    assert not (stratified_folds(labels, 3, seed=1) == folds).all()
    with pytest.raises(TransferkitError, match="Class 'b' has 7 images, fewer than the 8 folds"):
        stratified_folds(labels, 8, class_names=["a", "b"])


def test_folds_hold_out_every_labelled_image_exactly_once(data):
    pool, split = labelled_pool(data)
    assert len(pool) == 24 and split.count("validation") == 6 and pool.paths[0].startswith("train/")
    seen = []
    for k in range(1, 5):
        s = find_splits(data, folds=4, fold=k)
        assert set(s.train.paths).isdisjoint(s.validation.paths)
        assert len(s.train) + len(s.validation) == 24 and s.pool is not None
        seen += s.validation.paths
    assert sorted(seen) == sorted(pool.paths)


@pytest.mark.slow
def test_train_folds_reports_mean_and_std_and_extracts_once(data, tmp_path, cli):
    r = cli("train", data, "--folds", "3", "--model", "tiny_test", "--weights", "none", "--epochs", "2",
            "--precision", "bfloat16", "--runs", tmp_path / "runs", "--name", "k", "-q")
    assert r.returncode == 0, r.stderr
    run = tmp_path / "runs" / "k"
    metrics = json.loads((run / "metrics.json").read_text())
    accs = [f["accuracy"] for f in metrics["folds"]]
    assert [f["fold"] for f in metrics["folds"]] == [1, 2, 3] and sum(f["n"] for f in metrics["folds"]) == 24
    assert metrics["accuracy_mean"] == pytest.approx(np.mean(accs))
    assert metrics["accuracy_std"] == pytest.approx(np.std(accs, ddof=1))
    for k in (1, 2, 3):  # each fold is a full run folder whose validation set is its fold
        fold = json.loads((run / f"fold-{k}" / "metrics.json").read_text())
        assert fold["accuracy"] == metrics["folds"][k - 1]["accuracy"] and (run / f"fold-{k}" / "model.keras").is_file()
    assert len(list((tmp_path / "runs" / ".feature-cache").iterdir())) == 1  # one extraction for all folds
    page = (run / "report.html").read_text()
    assert "fold-1/report.html" in page and f"{metrics['accuracy_mean']:.1%} ± {metrics['accuracy_std']:.1%}" in page
    assert f"{metrics['accuracy_mean']:.1%} ± {metrics['accuracy_std']:.1%}" in r.stdout
    assert "fold-3: validation accuracy" in r.stdout
    # the report command redraws it; evaluate re-derives a fold's validation images from its config
    (run / "report.html").unlink()
    assert cli("report", run).returncode == 0 and (run / "report.html").is_file()
    assert tk.evaluate(run / "fold-2", find_splits(data, folds=3, fold=2).validation)["n"] == \
        metrics["folds"][1]["n"]
    r = cli("predict", run, data / "validation")
    assert r.returncode == 1 and "fold-1" in r.stderr.strip().splitlines()[0]


@pytest.mark.slow
def test_train_seeds_repeats_the_split_and_resumes(data, tmp_path):
    result = tk.train(data, strategy="frozen", seeds=2, runs_root=tmp_path / "runs", name="s", precision="bfloat16",
                      **TINY)
    assert [e["seed"] for e in result.metrics["seeds"]] == [0, 1]
    assert [json.loads((result.run_dir / f"seed-{s}" / "config.json").read_text())["seed"] for s in (0, 1)] == [0, 1]
    kept = (result.run_dir / "seed-0" / "model.keras").stat().st_mtime_ns
    (result.run_dir / "seed-1" / "metrics.json").unlink()  # as if the second run had been interrupted
    again = tk.train(data, strategy="frozen", seeds=2, runs_root=tmp_path / "runs", name="s", resume=True,
                     precision="bfloat16", **TINY)
    assert (result.run_dir / "seed-0" / "model.keras").stat().st_mtime_ns == kept  # the finished run stays
    assert again.metrics["seeds"][0] == result.metrics["seeds"][0]
    assert (result.run_dir / "seed-1" / "metrics.json").is_file()
    with pytest.raises(TransferkitError, match="settings differ"):
        tk.train(data, strategy="frozen", seeds=2, runs_root=tmp_path / "runs", name="s", resume=True,
                 precision="bfloat16", **{**TINY, "epochs": 3})


@pytest.mark.parametrize("options, expected", [
    (dict(folds=1), "at least 2"),
    (dict(folds=3, seeds=2), "not both"),
    (dict(folds=3, validation_split=0.2), "takes no `validation_split`"),
    (dict(folds=13), "fewer than the 13 folds"),
])
def test_repeat_errors(data, tmp_path, options, expected):
    with pytest.raises(TransferkitError, match=expected):
        tk.train(data, runs_root=tmp_path / "runs", **TINY, **options)
    assert not os.path.exists(tmp_path / "runs") or not any((tmp_path / "runs").iterdir())
