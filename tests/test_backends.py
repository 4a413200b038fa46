"""Backend-agnostic: the same extraction under KERAS_BACKEND=torch (and jax when installed) matches TensorFlow."""

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

import transferkit as tk

from conftest import HERE, randomize_batchnorm

pytestmark = pytest.mark.slow  # minutes on 2 cores; `scripts/test.sh --quick` leaves them out

SCRIPT = """
import sys, numpy as np
import tiny_backbone; tiny_backbone.register()
import transferkit as tk, keras
assert keras.backend.backend() == sys.argv[1], keras.backend.backend()
fs = tk.extract(sys.argv[2], sys.argv[3], model="tiny_test", layers=["block2_pool", "avg_pool"], weights=sys.argv[4],
                precision="float32", batch_size=5)
np.save(sys.argv[3] + "/avg.npy", fs.features["avg_pool"])
# BatchNorm folding (optimize_for_inference) on this backend: same outputs as the unfolded model
from transferkit.backbones.optimize import optimize_for_inference
model = tk.get_backbone("tiny_test").builder(include_top=False, input_shape=(32, 32, 3), weights=sys.argv[4])
folded = optimize_for_inference(model)
assert folded is not model
x = np.random.default_rng(1).uniform(-1, 1, (3, 32, 32, 3)).astype("float32")
a = keras.ops.convert_to_numpy(model(x, training=False))
b = keras.ops.convert_to_numpy(folded(x, training=False))
np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
"""


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_other_backend_matches_tensorflow(backend, image_folder, tmp_path):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed (pip install transferkit[{backend}])")
    import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip("reference run needs the TensorFlow backend")
    model = tk.get_backbone("tiny_test").builder(include_top=False, input_shape=(32, 32, 3))
    randomize_batchnorm(model)  # non-trivial statistics, so folding BN into the conv is really exercised
    wfile = tmp_path / "tiny.weights.h5"
    model.save_weights(wfile)
    ref = tk.extract(image_folder, tmp_path / "tf", model="tiny_test", layers=["block2_pool", "avg_pool"],
                     weights=wfile, precision="float32")
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=str(HERE))
    out = tmp_path / backend
    r = subprocess.run([sys.executable, "-c", SCRIPT, backend, str(image_folder), str(out), str(wfile)],
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    other = tk.load_features(out)
    assert other.paths == ref.paths and other.manifest["settings"]["backend"] == backend
    np.testing.assert_allclose(other.features["avg_pool"], ref.features["avg_pool"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(other.features["block2_pool"], ref.features["block2_pool"], rtol=1e-4, atol=1e-5)


TRAIN_SCRIPT = """
import sys, numpy as np
import tiny_backbone; tiny_backbone.register()
import keras
from transferkit.train import train
from transferkit.viz.explain import gradcam
assert keras.backend.backend() == sys.argv[1]
r = train(sys.argv[2], model="tiny_test", strategy=sys.argv[4], weights="none", validation_split=0.5, epochs=2,
          finetune_epochs=1, runs_root=sys.argv[3], precision="float32", learning_rate=1e-3, optimizer="adam")
cam, cls, p = gradcam(r.model, np.full((32, 32, 3), 100.0, "float32"))
assert cam.shape == (8, 8) and np.isfinite(cam).all(), cam
print("OK", r.metrics["accuracy"])
"""


@pytest.mark.parametrize("backend", ["torch", "jax"])
@pytest.mark.parametrize("strategy", ["features", "finetune"])
def test_training_and_gradcam_on_other_backends(backend, strategy, image_folder, tmp_path):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed (pip install transferkit[{backend}])")
    import shutil

    shutil.copytree(image_folder, tmp_path / "data" / "train")
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=str(HERE))
    r = subprocess.run([sys.executable, "-c", TRAIN_SCRIPT, backend, str(tmp_path / "data"), str(tmp_path / "runs"),
                        strategy], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr[-3000:]
