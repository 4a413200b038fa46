"""One source of truth: queries, exports, saved models and resumed runs agree with the sets and runs they come
from — whatever crop, precision or runtime made them — and bad input is one clear line."""

import dataclasses
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from PIL import Image

import transferkit as tk
from transferkit.errors import TransferkitError
from transferkit.search import similar

from conftest import make_split_folder

ROOT = Path(__file__).parent.parent


def photos(folder: Path) -> Path:
    """Five real photos (scikit-image), of different sizes and aspect ratios."""
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in {"astronaut": data.astronaut(), "coffee": data.coffee(), "chelsea": data.chelsea(),
                      "rocket": data.rocket(), "motorcycle": data.stereo_motorcycle()[0]}.items():
        Image.fromarray(arr).save(folder / f"{name}.png")
    return folder


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    return photos(tmp_path_factory.mktemp("photos") / "set")


SETS = {  # the settings a copy of a member must be queried with to find itself
    "crop none": dict(crop="none", precision="float32"),
    "crop 0.9": dict(crop=0.9, precision="float32"),
    "bfloat16": dict(precision="bfloat16"),
    "int8": dict(precision="int8", calibration=4),
}


@pytest.mark.parametrize("name", list(SETS))
def test_a_copy_of_a_member_finds_itself(photo_folder, tmp_path, name, monkeypatch):
    if name == "int8":
        pytest.importorskip("nncf")
        monkeypatch.setenv("TRANSFERKIT_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "features"
    tk.extract(photo_folder, out, model="efficientnet_lite0", layers="avg_pool", **SETS[name])  # real weights
    copy = tmp_path / "query" / "copy_of_chelsea.png"
    copy.parent.mkdir()
    shutil.copyfile(photo_folder / "chelsea.png", copy)
    matches, skipped = similar(out, copy, k=2)
    assert not skipped and matches[0].path == "chelsea.png", matches
    assert matches[0].similarity >= 0.9999, (name, matches[0].similarity)
    if name == "int8":  # the set's own quantised model was used, not one calibrated on the query
        assert len(list((tmp_path / "cache" / "openvino").iterdir())) == 1


def test_queries_of_an_int8_set_are_reproduced_when_the_cache_is_gone(photo_folder, tmp_path, monkeypatch):
    pytest.importorskip("nncf")
    monkeypatch.setenv("TRANSFERKIT_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "features"
    tk.extract(photo_folder, out, model="tiny_test", weights="none", layers="avg_pool", precision="int8",
               calibration=3)
    shutil.rmtree(tmp_path / "cache")  # quantised again from the set's own calibration sample
    matches, _ = similar(out, photo_folder / "rocket.png", k=1)
    assert matches[0].similarity >= 0.9999 or matches[0].path != "rocket.png"  # the member itself is excluded
    copy = tmp_path / "rocket_copy.png"
    shutil.copyfile(photo_folder / "rocket.png", copy)
    assert similar(out, copy, k=1)[0][0].path == "rocket.png"
    (photo_folder / "rocket.png").rename(photo_folder / "rocket_moved.png")
    try:
        shutil.rmtree(tmp_path / "cache")
        with pytest.raises(TransferkitError, match="calibration images"):
            similar(out, copy, k=1)
    finally:
        (photo_folder / "rocket_moved.png").rename(photo_folder / "rocket.png")


def test_the_input_configuration_is_one_object_everywhere(tmp_path):
    """manifest.json, config.json and the export's PATH.json carry the same "input" — the run's crop and filter."""
    pytest.importorskip("onnxruntime")
    spec = dataclasses.replace(tk.get_backbone("tiny_test"), name="tiny_bicubic", crop_fraction=0.75,
                               resample="bicubic")
    tk.register_backbone(spec, overwrite=True)
    data = make_split_folder(tmp_path / "data", {"train": 10, "validation": 4}, ["a", "b"], size=(48, 36))
    run = tk.train(data, model="tiny_bicubic", weights="none", epochs=2, learning_rate=1e-3, optimizer="adam",
                   precision="float32", runs_root=tmp_path / "runs", name="r")
    meta = tk.export(run.run_dir, format="onnx", path=tmp_path / "classifier.onnx")
    manifest = json.loads(next((tmp_path / "runs" / ".feature-cache").glob("*/manifest.json")).read_text())
    expected = {"size": 32, "crop_fraction": 0.75, "resample": "bicubic", "preprocessing": "tf", "bgr": False,
                "mean": [127.5] * 3, "std": [127.5] * 3}
    assert run.config["input"] == meta["input"] == manifest["settings"]["input"] == expected
    # the deploy snippet of docs/deploy.md applies it and answers as `transferkit predict` does
    snippet = re.search(r"```python\n(.*?)```", (ROOT / "docs" / "deploy.md").read_text(), re.S).group(1)
    (tmp_path / "snippet.py").write_text(snippet)
    images = sorted(str(p) for p in (data / "validation").rglob("*.png"))
    r = subprocess.run([sys.executable, "snippet.py", *images], cwd=tmp_path, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-1500:]
    rows, _ = tk.predict(run.run_dir, images)
    got = [line.split("\t") for line in r.stdout.splitlines()]
    assert len(got) == len(rows) == 8
    for (path, name, prob), row in zip(got, rows):
        assert name == row["predicted"]
        assert abs(float(prob) - max(row["probabilities"])) <= 1e-4


def test_a_run_without_its_input_configuration_is_refused(tmp_path):
    data = make_split_folder(tmp_path / "data", {"train": 6, "validation": 2}, ["a", "b"])
    run = tk.train(data, model="tiny_test", weights="none", epochs=1, precision="float32",
                   runs_root=tmp_path / "runs", name="r").run_dir
    config = json.loads((run / "config.json").read_text())
    del config["input"]
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(TransferkitError, match="config.json is damaged: it records no input configuration"):
        tk.predict(run, data / "validation")
    (run / "config.json").unlink()
    with pytest.raises(TransferkitError, match="has no config.json"):
        tk.predict(run, data / "validation")
    with pytest.warns(UserWarning, match="no config.json beside it"):
        rows, _ = tk.predict(run / "model.keras", data / "validation")  # a bare .keras file: said, not silent
    assert len(rows) == 4


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["features", "frozen", "finetune"])
def test_a_model_trained_in_bfloat16_saves_and_exports_as_float32(tmp_path, strategy):
    data = make_split_folder(tmp_path / "data", {"train": 8, "validation": 4}, ["a", "b"])
    run = tk.train(data, model="tiny_test", weights="none", strategy=strategy, epochs=1, precision="bfloat16",
                   learning_rate=1e-3, optimizer="adam", runs_root=tmp_path / "runs", name="bf16",
                   **({"unfreeze_blocks": 1} if strategy == "finetune" else {}))
    assert run.config["precision"] == "bfloat16"
    with zipfile.ZipFile(run.run_dir / "model.keras") as z:
        assert "bfloat16" not in z.read("config.json").decode()
    import keras

    model = keras.saving.load_model(run.run_dir / "model.keras")
    assert all(layer.dtype_policy.name == "float32" for layer in model._flatten_layers())
    from transferkit.train.export import FORMATS

    for format, name in [("onnx", "m.onnx"), ("openvino", "m.xml"), ("saved_model", "m_sm"), ("litert", "m.tflite")]:
        if any(_missing(module) for module in FORMATS[format].needs):
            continue
        meta = tk.export(run.run_dir, format=format, path=tmp_path / name)
        assert meta["check"]["max_abs_difference"] <= 1e-4, format


def _missing(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is None


@pytest.mark.slow
def test_bad_input_is_one_clear_line(tmp_path, cli):
    data = make_split_folder(tmp_path / "data", {"train": 6, "validation": 2}, ["a", "b"])
    feats = tmp_path / "feats"
    tk.extract(data / "train", feats, model="tiny_test", weights="none", precision="float32")
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    matches, skipped = similar(feats, corrupt, k=2)  # the only query unreadable: reported, not a crash
    assert matches == [] and [s["path"] for s in skipped] == [str(corrupt)]
    r = cli("similar", feats, corrupt)
    assert r.returncode == 3 and "Traceback" not in r.stderr and "corrupt" in r.stderr
    run = tk.train(data, model="tiny_test", weights="none", epochs=1, precision="float32",
                   runs_root=tmp_path / "runs", name="r").run_dir
    damaged = tmp_path / "damaged"
    shutil.copytree(run, damaged)
    blob = (damaged / "model.keras").read_bytes()
    (damaged / "model.keras").write_bytes(blob[: len(blob) // 2])
    r = cli("predict", damaged, data / "validation")
    assert r.returncode == 1 and "is damaged" in r.stderr and "not found" not in r.stderr.lower(), r.stderr
    (tmp_path / "afile").write_text("x")
    r = cli("export", run, "--format", "onnx", "-o", tmp_path / "afile" / "m.onnx")
    assert r.returncode == 1 and "is a file, not a folder" in r.stderr, r.stderr
    r = cli("export", run, "--format", "onnx", "-o", "/proc/m.onnx")  # unwritable even for root
    assert r.returncode == 1 and "Traceback" not in r.stderr and "Cannot write" in r.stderr, r.stderr
    odd = make_split_folder(tmp_path / "odd", {"train": 3}, ["a", "b"])
    make_split_folder(odd, {"validation": 2}, ["a", "c"])
    r = cli("train", odd, "--model", "tiny_test", "--weights", "none", "--runs", tmp_path / "runs")
    assert r.returncode == 1 and "['c']" in r.stderr and "class_names" not in r.stderr, r.stderr


@pytest.mark.slow
def test_validation_split_on_a_plain_class_folder(tmp_path, cli):
    plain = make_split_folder(tmp_path / "plain", {"x": 5}, ["a", "b"]) / "x"  # x/<class>/..., no train/
    r = cli("train", plain, "--validation-split", "0.2", "--model", "tiny_test", "--weights", "none", "--epochs", "1",
            "--precision", "float32", "--runs", tmp_path / "runs", "--name", "p")
    assert r.returncode == 0, r.stderr
    config = json.loads((tmp_path / "runs" / "p" / "config.json").read_text())
    assert config["counts"] == {"train": 8, "validation": 2}
    r = cli("train", plain, "--model", "tiny_test", "--weights", "none", "--runs", tmp_path / "runs")
    assert r.returncode == 1 and "--validation-split" in r.stderr
