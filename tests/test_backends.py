"""Backend-agnostic: the same extraction under KERAS_BACKEND=torch (and jax when installed) matches TensorFlow."""

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

import transferkit as tk

from conftest import HERE

SCRIPT = """
import sys, numpy as np
import tiny_backbone; tiny_backbone.register()
import transferkit as tk, keras
assert keras.backend.backend() == sys.argv[1], keras.backend.backend()
fs = tk.extract(sys.argv[2], sys.argv[3], model="tiny_test", layers=["block2_pool", "avg_pool"], weights=sys.argv[4],
                precision="float32", batch_size=5)
np.save(sys.argv[3] + "/avg.npy", fs.features["avg_pool"])
"""


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_other_backend_matches_tensorflow(backend, image_folder, tmp_path):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed (pip install transferkit[{backend}])")
    import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip("reference run needs the TensorFlow backend")
    model = tk.get_backbone("tiny_test").builder(include_top=False, input_shape=(32, 32, 3))
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
