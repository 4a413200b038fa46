"""Reliability: the bad-input corpus through extract/train/predict, disk errors, safe loading, tampering."""

import errno
import json
import shutil

import numpy as np
import pytest

import transferkit as tk
from transferkit.errors import TransferkitError

from conftest import make_image
from corpus import build_corpus

TINY = dict(model="tiny_test", weights="none", precision="float32")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus") / "corpus"
    return root, build_corpus(root)


def _check_outcomes(rows_paths, skipped, expected, prefix=""):
    got_skipped = {s["path"][len(prefix):]: s["reason"] for s in skipped}
    for name, outcome in expected.items():
        if outcome == "ok":
            assert prefix + name in rows_paths, f"{name} should have been converted"
            assert name not in got_skipped
        else:
            assert name in got_skipped, f"{name} should have been skipped"
            assert outcome in got_skipped[name], (name, got_skipped[name])
    assert len(rows_paths) == len(set(rows_paths))


def test_corpus_extract(corpus, tmp_path):
    root, expected = corpus
    assert len(expected) >= 14 + 7  # 14 kinds, EXIF counted once per orientation
    with pytest.raises(TransferkitError, match="mixes class sub-folders"):
        tk.extract(root, tmp_path / "o", **TINY)
    fs = tk.extract(root, tmp_path / "o", labels="none", **TINY)
    _check_outcomes(fs.paths, fs.skipped, expected)
    assert len(fs) + len(fs.skipped) == len(expected)


def test_corpus_exif_orientations_are_applied(corpus, tmp_path):
    root, _ = corpus
    shapes = {o: tk.load_image(str(root / "exif" / f"orientation_{o}.jpg"), 64, crop_fraction=None).shape
              for o in range(1, 9)}
    assert all(s == (64, 64, 3) for s in shapes.values())
    from PIL import Image, ImageOps

    for o in range(1, 9):
        with Image.open(root / "exif" / f"orientation_{o}.jpg") as im:
            size = ImageOps.exif_transpose(im).size
        assert size == ((40, 60) if o >= 5 else (60, 40)), (o, size)  # 5-8 swap width and height


def test_corpus_predict(corpus, tmp_path, image_folder):
    from transferkit.train import predict, train

    root, expected = corpus
    shutil.copytree(image_folder, tmp_path / "d" / "train")
    run = train(tmp_path / "d", validation_split=0.5, runs_root=tmp_path / "runs", epochs=1, **TINY)
    rows, skipped = predict(run.run_dir, root, tmp_path / "p.csv")
    _check_outcomes([r["path"] for r in rows], skipped, expected)


@pytest.mark.slow
def test_corpus_train(corpus, tmp_path):
    from transferkit.train import train

    root, expected = corpus
    data = tmp_path / "data"
    shutil.copytree(root, data / "train" / "awkward", symlinks=True)
    rng = np.random.default_rng(0)
    for i in range(6):
        make_image(data / "train" / "plain" / f"{i}.png", rng)
        make_image(data / "validation" / "plain" / f"{i}.png", rng)
        make_image(data / "validation" / "awkward" / f"{i}.png", rng)
    for strategy in ("features", "frozen"):
        result = train(data, strategy=strategy, runs_root=tmp_path / "runs", name=strategy, epochs=1, **TINY)
        skipped = {s["path"] for s in result.config["skipped"]}
        bad = {f"awkward/{n}" for n, o in expected.items() if o != "ok"}
        assert skipped == bad, skipped ^ bad


def test_disk_full_is_a_clear_error_and_finished_shards_stay_valid(image_folder, tmp_path, monkeypatch):
    import importlib

    runner = importlib.import_module("transferkit.extract.runner")
    original = runner.write_shard
    calls = {"n": 0}

    def full_disk(out, k, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(out, k, **kwargs)

    monkeypatch.setattr(runner, "write_shard", full_disk)
    out = tmp_path / "o"
    with pytest.raises(TransferkitError, match="part-00001.*No space left on device.*resume"):
        tk.extract(image_folder, out, shard_size=4, **TINY)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["shards_done"] == 1 and not manifest["complete"]
    assert not list(out.glob(".part-*"))  # no half-written temporary shard left behind
    monkeypatch.setattr(runner, "write_shard", original)
    fs = tk.extract(image_folder, out, shard_size=4, **TINY)
    assert len(fs) == 12


def test_unsafe_models_are_refused_unless_asked(tmp_path, image_folder):
    import keras

    from transferkit.train import load_run

    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.Lambda(lambda x: x * 2.0)(keras.layers.GlobalAveragePooling2D()(inputs))
    keras.Model(inputs, outputs).save(tmp_path / "lambda.keras")
    with pytest.raises(TransferkitError, match="safe mode.*--unsafe"):
        load_run(tmp_path / "lambda.keras")
    model, _ = load_run(tmp_path / "lambda.keras", unsafe=True)
    assert model is not None


@pytest.mark.parametrize("mutate,match", [
    (lambda m: m.update(layers=[1, 2]), "'layers' must be a dict"),
    (lambda m: m.update(format="something else"), "not a transferkit manifest"),
    (lambda m: m["shards"][0].update(file="../../etc/passwd"), "not a plain file name"),
    (lambda m: m["layers"]["avg_pool"].update(shape="big"), "damaged"),
])
def test_tampered_manifest_is_a_clear_error(image_folder, tmp_path, mutate, match):
    out = tmp_path / "o"
    tk.extract(image_folder, out, **TINY)
    manifest = json.loads((out / "manifest.json").read_text())
    mutate(manifest)
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(TransferkitError, match=match):
        tk.load_features(out)


def test_tampered_run_config_is_a_clear_error(tmp_path, image_folder):
    from transferkit.train import load_run, train

    shutil.copytree(image_folder, tmp_path / "d" / "train")
    run = train(tmp_path / "d", validation_split=0.5, runs_root=tmp_path / "runs", epochs=1, **TINY)
    (run.run_dir / "config.json").write_text(json.dumps({"class_names": "cats"}))
    with pytest.raises(TransferkitError, match="class_names"):
        load_run(run.run_dir)


def test_read_only_output_is_refused_before_any_work(image_folder, tmp_path, monkeypatch):
    """A read-only output (simulated: CI runs as root, which can write anywhere) is one clear error, up front."""
    import pathlib

    def read_only(self, data):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(pathlib.Path, "write_bytes", read_only)
    with pytest.raises(TransferkitError, match="Cannot write to the output folder.*Read-only file system"):
        tk.extract(image_folder, tmp_path / "o", **TINY)
