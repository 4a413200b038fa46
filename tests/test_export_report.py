"""Export of a trained run (ONNX, OpenVINO, SavedModel, LiteRT) checked in each runtime, and report.html."""

import json
import shutil

import numpy as np
import pytest

import transferkit as tk
from transferkit.errors import TransferkitError
from transferkit.train.export import FORMATS

from conftest import dump_dom, make_split_folder

FAST = dict(weights="none", learning_rate=1e-3, optimizer="adam", precision="float32", batch_size=10)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    binary = make_split_folder(root / "two", {"train": 12, "validation": 4}, ["checks", "stripes"])
    three = make_split_folder(root / "three", {"train": 8, "validation": 3}, ["a", "b", "c"])
    return {"binary": tk.train(binary, model="tiny_test", strategy="features", runs_root=root / "runs", name="two",
                               epochs=3, **FAST),
            "three": tk.train(three, model="tiny_test", strategy="frozen", runs_root=root / "runs", name="three",
                              epochs=2, **FAST)}


SUFFIX = {"onnx": "m.onnx", "openvino": "m.xml", "saved_model": "m_savedmodel", "litert": "m.tflite"}


@pytest.mark.parametrize("format", list(FORMATS))
@pytest.mark.parametrize("task", ["binary", "three"])
def test_every_format_matches_model_keras_in_its_own_runtime(runs, format, task, tmp_path):
    for module in FORMATS[format].needs:
        pytest.importorskip(module)
    run = runs[task].run_dir
    path = tmp_path / SUFFIX[format]
    meta = tk.export(run, format=format, path=path)
    assert meta["check"]["max_abs_difference"] <= 1e-4 and "validation images" in meta["check"]["images"]
    assert json.loads((tmp_path / (path.name + ".json")).read_text())["class_names"] == meta["class_names"]
    # an independent run in the format's runtime, on a batch size the check did not use
    x = np.random.default_rng(1).uniform(0, 255, (5, 32, 32, 3)).astype("float32")
    probs = np.asarray(FORMATS[format].runner(path)(x))
    assert probs.shape == (5, len(meta["class_names"]))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    keras_probs = np.asarray(runs[task].model(x))
    expected = np.concatenate([1 - keras_probs, keras_probs], 1) if keras_probs.shape[1] == 1 else keras_probs
    np.testing.assert_allclose(probs, expected, atol=1e-4)
    assert not list(tmp_path.glob(".*export-tmp"))


def test_bad_exports_are_one_clear_error_and_leave_nothing(runs, tmp_path, monkeypatch):
    run = runs["binary"].run_dir
    with pytest.raises(TransferkitError, match="`format` must be one of.*Did you mean 'onnx'"):
        tk.export(run, format="onxx", path=tmp_path / "m.onnx")
    with pytest.raises(TransferkitError, match="is a .onnx file"):
        tk.export(run, format="onnx", path=tmp_path / "m.bin")
    with pytest.raises(TransferkitError, match="does not exist"):
        tk.export(run, format="onnx", path=tmp_path / "missing" / "m.onnx")
    with pytest.raises(TransferkitError, match="is not a run folder"):
        tk.export(tmp_path, format="onnx", path=tmp_path / "m.onnx")
    unfinished = tmp_path / "unfinished"
    shutil.copytree(run, unfinished)
    (unfinished / "metrics.json").unlink()
    with pytest.raises(TransferkitError, match="not finished"):
        tk.export(unfinished, format="onnx", path=tmp_path / "m.onnx")
    pytest.importorskip("onnxruntime")
    spec = FORMATS["onnx"]
    monkeypatch.setitem(FORMATS, "onnx", spec.__class__(spec.keras_format, spec.suffix, spec.needs,
                                                         lambda path: (lambda x: spec.runner(path)(x) + 0.01)))
    with pytest.raises(TransferkitError, match="differs from model.keras by 0.01"):
        tk.export(run, format="onnx", path=tmp_path / "m.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["unfinished"]  # nothing half-written


@pytest.mark.slow
def test_export_cli(cli, runs, tmp_path):
    pytest.importorskip("onnxruntime")
    r = cli("export", runs["binary"].run_dir, "--format", "onnx", "-o", tmp_path / "c.onnx")
    assert r.returncode == 0, r.stderr
    assert "largest difference from model.keras" in r.stdout and (tmp_path / "c.onnx.json").exists()
    r = cli("export", runs["binary"].run_dir, "--format", "onnx", "-o", tmp_path / "nope" / "c.onnx")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "does not exist" in r.stderr


@pytest.mark.slow
def test_report_is_written_by_train_and_by_the_command(cli, runs):
    run = runs["binary"].run_dir
    page = (run / "report.html").read_text()
    assert "Validation accuracy" in page and page.count("data:image/png;base64") >= 4  # curves, confusion, ...
    assert "Validation features (PCA)" in page  # a features run
    assert "Grad-CAM" in page and "stripes" in page
    assert f"ROC-AUC {runs['binary'].metrics['roc_auc']:.3f}" in page  # a binary task
    (run / "report.html").unlink()
    r = cli("report", run)
    assert r.returncode == 0 and (run / "report.html").exists(), r.stderr
    r = cli("report", run.parent)
    assert r.returncode == 1 and "not a finished run folder" in r.stderr


def test_report_renders_in_a_real_browser(runs):
    page = runs["three"].run_dir / "report.html"
    r = dump_dom(page.as_uri())
    assert "Highest-loss validation images" in r.stdout, r.stderr[-2000:]
    assert r.stdout.count("<img ") >= 4 and "not available" not in r.stdout
    assert "Uncaught" not in r.stderr
