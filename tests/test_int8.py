"""int8 extraction through OpenVINO + NNCF: close to float32, deterministic calibration, cached, resumable."""

import numpy as np
import pytest

import transferkit as tk
from transferkit.errors import TransferkitError

pytest.importorskip("openvino")
pytest.importorskip("nncf")

from transferkit.extract import openvino as tk_ov  # noqa: E402

SMALL = dict(model="tiny_test", weights="none", layers="block2_pool", pooling="avg", quiet=True)


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERKIT_CACHE", str(tmp_path / "cache"))


def cosine(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_int8_features_are_close_to_float32_and_recorded(image_folder, tmp_path):
    ref = tk.extract(image_folder, tmp_path / "f32", precision="float32", **SMALL)
    ov32 = tk.extract(image_folder, tmp_path / "ov32", precision="float32", runtime="openvino", **SMALL)
    q = tk.extract(image_folder, tmp_path / "i8", precision="int8", calibration=8, **SMALL)
    np.testing.assert_allclose(ov32.matrix, ref.matrix, rtol=1e-4, atol=1e-5)  # same model, other runtime
    assert cosine(q.matrix, ref.matrix).mean() >= 0.98
    assert q.paths == ref.paths
    s = q.manifest["settings"]
    assert s["precision"] == "int8" and s["runtime"] == "openvino" and s["calibration"] == {"images": 8, "seed": 0}
    assert q.manifest["openvino"]["calibration"]["images"] == 8
    assert "runtime" not in ref.manifest["settings"]  # Keras outputs keep the settings of earlier versions


def test_calibration_sample_is_seeded():
    from transferkit.data.folder import ImageIndex

    idx = ImageIndex(None, [f"{i}.png" for i in range(100)], None, [])
    a, b = tk_ov.calibration_sample(idx, 10, seed=0), tk_ov.calibration_sample(idx, 10, seed=0)
    assert a == b and len(set(a)) == 10 and a == sorted(a)
    assert a != tk_ov.calibration_sample(idx, 10, seed=1)
    assert tk_ov.calibration_sample(idx, 500) == list(range(100))


def test_quantised_model_is_cached(image_folder, tmp_path, monkeypatch):
    import nncf

    calls = {"n": 0}
    original = nncf.quantize

    def counting(*args, **kwargs):
        calls["n"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(nncf, "quantize", counting)
    a = tk.extract(image_folder, tmp_path / "a", precision="int8", calibration=6, **SMALL)
    b = tk.extract(image_folder, tmp_path / "b", precision="int8", calibration=6, **SMALL)
    assert calls["n"] == 1
    np.testing.assert_array_equal(a.matrix, b.matrix)
    tk.extract(image_folder, tmp_path / "c", precision="int8", calibration=7, **SMALL)  # another sample
    assert calls["n"] == 2


def test_resume_refuses_to_mix_int8_and_float(image_folder, tmp_path):
    tk.extract(image_folder, tmp_path / "o", precision="float32", **SMALL)
    with pytest.raises(TransferkitError, match="other settings.*precision: 'float32' -> 'int8'"):
        tk.extract(image_folder, tmp_path / "o", precision="int8", calibration=4, **SMALL)


def test_bad_int8_arguments(image_folder, tmp_path):
    for kwargs, message in ((dict(precision="int8", calibration=0), "`calibration` must be a positive integer"),
                            (dict(precision="int8", runtime="keras"), "runs on OpenVINO"),
                            (dict(precision="float32", runtime="onnx"), "`runtime` must be one of")):
        with pytest.raises(TransferkitError, match=message):
            tk.extract(image_folder, tmp_path / "x", **{**SMALL, **kwargs})
    from transferkit import backend

    assert backend.resolve_precision("auto") != "int8"


@pytest.mark.slow
def test_features_strategy_trains_on_int8_features(tmp_path):
    from conftest import make_split_folder

    data = make_split_folder(tmp_path / "d", {"train": 12, "validation": 5}, ["a", "b"])
    # random-weight tiny features separate the classes only weakly: enough steps (batch 4) at a rate that moves
    r = tk.train(data, model="tiny_test", weights="none", precision="int8", epochs=15, learning_rate=1e-2,
                 batch_size=4, optimizer="adam", runs_root=tmp_path / "runs")
    assert r.config["precision"] == "int8" and r.metrics["accuracy"] >= 0.7
    with pytest.raises(TransferkitError, match="strategy='features'"):
        tk.train(data, model="tiny_test", weights="none", precision="int8", strategy="frozen",
                 runs_root=tmp_path / "runs")


@pytest.mark.slow
def test_cli_int8(cli, image_folder, tmp_path):
    r = cli("extract", image_folder, "-o", tmp_path / "o", "--model", "tiny_test", "--weights", "none", "--layer",
            "block2_pool", "--pooling", "avg", "--precision", "int8", "--calibration", "5", "-q",
            env={"TRANSFERKIT_CACHE": str(tmp_path / "cache")})
    assert r.returncode == 0, r.stderr
    assert "(int8, openvino" in r.stdout


def test_update_of_an_int8_set_runs_the_sets_own_quantised_model(image_folder, tmp_path, monkeypatch):
    """New images of an int8 set go through the model quantised on the set's images, not a new calibration."""
    from conftest import make_image
    from transferkit.extract.runner import extract_like

    out = tmp_path / "i8"
    tk.extract(image_folder, out, precision="int8", calibration=6, **SMALL)
    rng = np.random.default_rng(9)
    new = [make_image(image_folder / "cats" / f"new{i}.png", rng, size=(44, 40), kind="pattern") for i in range(2)]
    calls = []
    real = tk_ov._quantize
    monkeypatch.setattr(tk_ov, "_quantize", lambda *a, **k: calls.append(1) or real(*a, **k))
    fs = tk.extract(image_folder, out, update=True, precision="int8", calibration=6, **SMALL)
    assert fs.manifest["updates"][-1]["added"] == 2 and len(fs) == 14 and not calls
    like = extract_like(fs.manifest, new, tmp_path / "like")
    rows = [fs.paths.index(f"cats/new{i}.png") for i in range(2)]
    np.testing.assert_allclose(fs.matrix[rows], like.matrix, atol=1e-6)
