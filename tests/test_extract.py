"""Extraction end to end: shapes, labels, output format, fidelity to plain Keras, resume, bad input."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import pytest

import transferkit as tk
from transferkit.data import load_image
from transferkit.errors import TransferkitError

from conftest import HERE, make_image


def test_tiny_extract_shapes_labels_and_rows(image_folder, tmp_path):
    fs = tk.extract(image_folder, tmp_path / "out", model="tiny_test", layers=["block2_pool", "avg_pool"],
                    weights="none", precision="float32", batch_size=5)
    assert fs.features["block2_pool"].shape == (12, 8, 8, 16)
    assert fs.features["avg_pool"].shape == (12, 16)
    np.testing.assert_allclose(fs.features["avg_pool"], fs.features["block2_pool"].mean(axis=(1, 2)), rtol=1e-5,
                               atol=1e-6)
    assert fs.class_names == ["cats", "dogs"]
    assert fs.paths[:2] == ["cats/00.jpg", "cats/01.png"] and fs.paths[-1] == "dogs/05.png"
    assert fs.labels.tolist() == [0] * 6 + [1] * 6
    m = fs.manifest
    assert m["complete"] and m["counts"] == {"images": 12, "rows": 12, "skipped": 0, "shards_done": 1,
                                             "shards_total": 1}
    for key in ("model", "layers", "pooling", "input", "weights", "backend", "precision"):
        assert key in m["settings"]
    assert m["transferkit_version"] == tk.__version__


@pytest.mark.parametrize("pooling,shape", [("none", (8, 8, 16)), ("avg", (16,)), ("max", (16,)),
                                           ("flatten", (1024,))])
def test_pooling_choices(image_folder, tmp_path, pooling, shape):
    fs = tk.extract(image_folder, tmp_path / pooling, model="tiny_test", layers="block2_pool", pooling=pooling,
                    weights="none", precision="float32")
    assert fs.matrix.shape == (12, *shape)


def test_vgg16_block5_pool_at_150_keeps_maps(image_folder, tmp_path):
    fs = tk.extract(image_folder, tmp_path / "o", model="vgg16", layers="block5_pool", input_size=150,
                    weights="none", precision="float32", batch_size=4)
    assert fs.matrix.shape == (12, 4, 4, 512)


@pytest.mark.slow
def test_vgg16_fc2_matches_plain_keras(image_folder, tmp_path):
    """Fidelity: same weights → transferkit's fc2 equals keras' own model on preprocess_input(x) to 1e-5."""
    import keras

    ref_model = keras.applications.VGG16(weights=None)
    wfile = tmp_path / "vgg16.weights.h5"
    ref_model.save_weights(wfile)
    fs = tk.extract(image_folder, tmp_path / "o", model="vgg16", layers="fc2", weights=wfile,
                    precision="float32", batch_size=8)
    x = np.stack([load_image(str(image_folder / p), 224) for p in fs.paths]).astype("float32")
    cut = keras.Model(ref_model.input, ref_model.get_layer("fc2").output)
    ref = np.asarray(cut(keras.applications.vgg16.preprocess_input(x)))
    assert fs.matrix.shape == (12, 4096)
    rel = np.linalg.norm(fs.matrix - ref) / np.linalg.norm(ref)
    assert rel <= 1e-5, rel


def test_parquet_is_readable_without_transferkit(image_folder, tmp_path):
    import pandas as pd

    tk.extract(image_folder, tmp_path / "o", model="tiny_test", layers="avg_pool", weights="none",
               shard_size=5, precision="float32")
    files = sorted((tmp_path / "o").glob("part-*.parquet"))
    assert [f.name for f in files] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    assert list(df.columns) == ["index", "path", "label", "class_name", "file_size", "file_mtime_ns", "file_sha256",
                                "avg_pool"]
    assert len(df) == 12 and df["class_name"].iloc[-1] == "dogs" and len(df["avg_pool"].iloc[0]) == 16
    import hashlib

    first = image_folder / df["path"].iloc[0]
    assert df["file_sha256"].iloc[0] == hashlib.sha256(first.read_bytes()).hexdigest()
    assert df["file_size"].iloc[0] == first.stat().st_size
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["layers"]["avg_pool"]["shape"] == [16]


def test_npy_format(image_folder, tmp_path):
    fs = tk.extract(image_folder, tmp_path / "o", model="tiny_test", layers="block1_pool", weights="none",
                    format="npy", shard_size=5, precision="float32")
    arr = np.load(tmp_path / "o" / "features.npy")
    np.testing.assert_array_equal(arr, fs.matrix)
    assert (tmp_path / "o" / "paths.txt").read_text().splitlines() == fs.paths
    np.testing.assert_array_equal(np.load(tmp_path / "o" / "labels.npy"), fs.labels)


def test_flat_folder_is_unlabelled(flat_folder, tmp_path):
    fs = tk.extract(flat_folder, tmp_path / "o", model="tiny_test", weights="none")
    assert fs.labels is None and fs.class_names == [] and len(fs) == 5


def test_bad_files_are_listed_and_rows_kept(image_folder, tmp_path):
    (image_folder / "cats" / "broken.jpg").write_bytes(b"")
    (image_folder / "dogs" / "text.png").write_text("not a png")
    (image_folder / "dogs" / "notes.txt").write_text("ignored by extension")
    fs = tk.extract(image_folder, tmp_path / "o", model="tiny_test", weights="none", shard_size=4)
    assert len(fs) == 12
    assert {s["path"] for s in fs.skipped} == {"cats/broken.jpg", "dogs/text.png"}
    assert all("not an image" in s["reason"] for s in fs.skipped)
    assert fs.manifest["ignored_files"]["count"] == 1
    assert len(set(fs.paths)) == len(fs.paths)


def test_changed_settings_need_overwrite(image_folder, tmp_path):
    out = tmp_path / "o"
    tk.extract(image_folder, out, model="tiny_test", weights="none", precision="float32")
    with pytest.raises(TransferkitError, match=r"other settings \(pooling: 'none' -> 'max'\).*--overwrite"):
        tk.extract(image_folder, out, model="tiny_test", weights="none", pooling="max", precision="float32")
    fs = tk.extract(image_folder, out, model="tiny_test", weights="none", pooling="max", overwrite=True,
                    precision="float32")
    assert fs.manifest["settings"]["pooling"] == "max"


def test_rerun_of_finished_output_does_nothing(image_folder, tmp_path):
    out = tmp_path / "o"
    tk.extract(image_folder, out, model="tiny_test", weights="none", shard_size=4)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("part-*")}
    tk.extract(image_folder, out, model="tiny_test", weights="none", shard_size=4)
    assert stamps == {p.name: p.stat().st_mtime_ns for p in out.glob("part-*")}


@pytest.mark.parametrize("kwargs,match", [
    (dict(layers="fc3"), r"`layers` must name layers of tiny_test. Received: layers='fc3'.*'fc1'"),
    (dict(pooling="mean"), r"`pooling` must be one of .*Received: pooling='mean'"),
    (dict(batch_size=0), r"`batch_size` must be a positive integer"),
    (dict(precision="fp16"), r"`precision` must be one of"),
    (dict(model="vgg17"), r"Unknown model 'vgg17'.*'vgg16'"),
])
def test_bad_arguments(image_folder, tmp_path, kwargs, match):
    args = dict(model="tiny_test", weights="none")
    args.update(kwargs)
    with pytest.raises(TransferkitError, match=match):
        tk.extract(image_folder, tmp_path / "o", **args)


def test_missing_input_folder_and_unwritable_output(tmp_path, image_folder):
    with pytest.raises(TransferkitError, match="does not exist"):
        tk.extract(tmp_path / "nope", tmp_path / "o", model="tiny_test", weights="none")
    (tmp_path / "file").write_text("x")
    with pytest.raises(TransferkitError, match="not a folder"):
        tk.extract(image_folder, tmp_path / "file", model="tiny_test", weights="none")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "mine.txt").write_text("x")
    with pytest.raises(TransferkitError, match="not empty"):
        tk.extract(image_folder, tmp_path / "busy", model="tiny_test", weights="none")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_read_only_output(image_folder, tmp_path):  # pragma: no cover - CI runs as root
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(TransferkitError, match="Cannot write"):
        tk.extract(image_folder, ro / "o", model="tiny_test", weights="none")


def test_mixed_top_level_images_and_class_folders(image_folder):
    make_image(image_folder / "stray.png", np.random.default_rng(0))
    with pytest.raises(TransferkitError, match=r"mixes class sub-folders.*stray.png.*--labels none"):
        tk.index_images(image_folder)
    assert len(tk.index_images(image_folder, labels="none")) == 13


def _many_images(root, n):
    rng = np.random.default_rng(3)
    for i in range(n):
        make_image(root / ("a" if i % 2 else "b") / f"{i:04d}.png", rng, size=(24, 24))
    return root


@pytest.mark.slow
def test_resume_after_kill_equals_uninterrupted_run(tmp_path):
    """SIGKILL mid-run, re-run the same command: the result equals one uninterrupted run."""
    images = _many_images(tmp_path / "imgs", 240)
    args = [images, "--model", "vgg16", "--layer", "block3_pool", "--pooling", "avg", "--input-size", "32",
            "--weights", "none", "--batch-size", "4", "--shard-size", "8", "--precision", "float32", "-q"]
    env = dict(os.environ, PYTHONPATH=str(HERE))
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(HERE / "tk_cli.py"), "extract", *map(str, args), "-o", str(out)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("part-*.parquet"))) < 3 and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = len(list(out.glob("part-*.parquet")))
    manifest = json.loads((out / "manifest.json").read_text())  # always parseable
    assert 3 <= partial < 30 and not manifest["complete"], (partial, proc.stderr.read()[-2000:])
    from conftest import run_cli_here

    resumed = run_cli_here("extract", *args, "-o", out)
    assert resumed.returncode == 0, resumed.stderr
    full = run_cli_here("extract", *args, "-o", tmp_path / "full")
    assert full.returncode == 0, full.stderr
    a, b = tk.load_features(out), tk.load_features(tmp_path / "full")
    assert a.paths == b.paths and len(a.paths) == 240 and len(set(a.paths)) == 240
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_allclose(a.matrix, b.matrix, rtol=1e-6, atol=1e-6)
    idx = np.concatenate([pq.read_table(f, columns=["index"]).column("index").to_numpy()
                          for f in sorted(out.glob("part-*.parquet"))])
    assert idx.tolist() == list(range(240))


def test_unfinished_output_cannot_be_loaded(image_folder, tmp_path):
    out = tmp_path / "o"
    tk.extract(image_folder, out, model="tiny_test", weights="none", shard_size=4)
    m = json.loads((out / "manifest.json").read_text())
    m["complete"] = False
    (out / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(TransferkitError, match="not finished.*resume"):
        tk.load_features(out)
    (out / "manifest.json").write_text("{not json")
    with pytest.raises(TransferkitError, match="Cannot read"):
        tk.load_features(out)


def test_shards_are_queryable_with_duckdb(image_folder, tmp_path):
    duckdb = pytest.importorskip("duckdb", reason="pip install duckdb (test extra)")
    tk.extract(image_folder, tmp_path / "o", model="tiny_test", layers="avg_pool", weights="none", shard_size=5,
               precision="float32")
    rows = duckdb.sql(f"SELECT class_name, count(*) AS n, min(len(avg_pool)) AS d "
                      f"FROM read_parquet('{tmp_path / 'o'}/part-*.parquet') GROUP BY class_name ORDER BY 1").fetchall()
    assert rows == [("cats", 6, 16), ("dogs", 6, 16)]


@pytest.mark.slow
def test_crop_model_none_or_a_fraction_decides_what_the_network_sees(tmp_path, cli):
    import dataclasses

    from PIL import Image

    from transferkit.backbones.registry import is_registered
    from transferkit.errors import TransferkitError

    if not is_registered("tiny_crop"):  # the tiny backbone with a centre crop, as EfficientNet-Lite has
        tk.register_backbone(dataclasses.replace(tk.get_backbone("tiny_test"), name="tiny_crop", crop_fraction=0.5))
    framed, white = np.zeros((64, 64, 3), np.uint8), np.full((64, 64, 3), 255, np.uint8)
    framed[16:48, 16:48] = 255  # a white centre in a black frame
    for name, arr in (("framed", framed), ("white", white)):
        (tmp_path / "img" / name).mkdir(parents=True)
        Image.fromarray(arr).save(tmp_path / "img" / name / "0.png")
    common = dict(model="tiny_crop", layers="block2_pool", pooling="avg", weights="none", precision="float32")
    centre = tk.extract(tmp_path / "img", tmp_path / "a", **common)  # crop "model": the centre half
    whole = tk.extract(tmp_path / "img", tmp_path / "b", crop="none", **common)
    np.testing.assert_allclose(centre.matrix[0], centre.matrix[1], atol=1e-5)  # both look all white
    assert np.abs(whole.matrix[0] - whole.matrix[1]).max() > 1e-3  # the frame is seen
    assert centre.input_config.crop_fraction == 0.5 and whole.manifest["settings"]["input"]["crop_fraction"] is None
    with pytest.raises(TransferkitError, match=r"`crop` must be 'model', 'none' or a fraction .* Received: crop='1.5'"):
        tk.extract(tmp_path / "img", tmp_path / "c", crop="1.5", **common)
    # training records the crop, and predict/evaluate use it
    from conftest import make_split_folder

    data = make_split_folder(tmp_path / "data", {"train": 8, "validation": 4}, ["a", "b"])
    result = tk.train(data, model="tiny_crop", crop="none", weights="none", epochs=1, runs_root=tmp_path / "runs",
                      precision="float32")
    assert result.config["crop"] == "none" and result.config["input"]["crop_fraction"] is None
    from transferkit.train.use import load_run

    assert load_run(result.run_dir)[1]["input"].crop_fraction is None
    r = cli("extract", tmp_path / "img", "-o", tmp_path / "d", "--model", "tiny_test", "--weights", "none",
            "--crop", "0.8", "-q")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "d" / "manifest.json").read_text())["settings"]["input"]["crop_fraction"] == 0.8
