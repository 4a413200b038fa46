"""Pictures: every viz command writes a titled PNG of the expected size with real content; Grad-CAM localises."""

import numpy as np
import pytest
from PIL import Image

import transferkit as tk
from transferkit.errors import TransferkitError
from transferkit import pictures as api
from transferkit.viz.explain import default_map_layers, gradcam



def assert_png(path, min_size=(300, 200)):
    arr = np.asarray(Image.open(path).convert("RGB"))
    assert arr.shape[1] >= min_size[0] and arr.shape[0] >= min_size[1], arr.shape
    assert arr.std() > 5, "blank picture"
    return arr


@pytest.mark.parametrize("model,layer", [("tiny_test", "block1_conv1"), ("tiny_test", "block2_conv1"),
                                         ("vgg16", "block1_conv1"), ("vgg16", "block3_conv1")])
def test_filters(tmp_path, model, layer):
    assert_png(api.filters(model, layer, tmp_path / "f.png", n=6, weights="none"))


def test_filters_on_a_non_conv_layer_lists_conv_layers(tmp_path):
    with pytest.raises(TransferkitError, match=r"'block1_pool' is a MaxPooling2D.*Conv layers: block1_conv1"):
        api.filters("tiny_test", "block1_pool", tmp_path / "f.png", weights="none")


def test_default_map_layers_are_last_convs_of_blocks():
    model = tk.backbones.build_model("vgg16", weights="none")
    assert default_map_layers(tk.get_backbone("vgg16"), model) == [
        "block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3", "block5_conv3"]


@pytest.mark.parametrize("model", ["tiny_test", "vgg16"])
def test_feature_maps(tmp_path, model, flat_folder):
    image = sorted(flat_folder.iterdir())[0]
    paths = api.feature_maps(model, image, tmp_path / "maps", weights="none", input_size=64)
    assert len(paths) == (2 if model == "tiny_test" else 5)
    for p in paths:
        assert_png(p, (200, 200))


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_embedding(tmp_path, image_folder, method):
    if method == "tsne":
        pytest.importorskip("sklearn", reason="t-SNE needs scikit-learn")
    tk.extract(image_folder, tmp_path / "feats", model="tiny_test", weights="none", precision="float32")
    assert_png(api.embedding(tmp_path / "feats", tmp_path / "emb.png", method=method))


def test_history_redraws_curves(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "history.csv").write_text("epoch,accuracy,loss,val_accuracy,val_loss\n0,0.5,0.9,0.5,0.8\n"
                                     "1,0.7,0.6,0.6,0.7\n2,0.9,0.3,0.7,0.6\n")
    assert_png(api.history(run, tmp_path / "curves.png"))
    with pytest.raises(TransferkitError, match="no history.csv"):
        api.history(tmp_path)


def _patch_folder(root, n=24, size=32, seed=0):
    """Class 'patch' has a bright square somewhere on dark noise; class 'plain' is dark noise only."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", n), ("validation", n // 3)):
        for cls in ("patch", "plain"):
            for i in range(count):
                img = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
                if cls == "patch":
                    y, x = rng.integers(0, size - 10, 2)
                    img[y:y + 10, x:x + 10] = 255
                (root / split / cls).mkdir(parents=True, exist_ok=True)
                Image.fromarray(img).save(root / split / cls / f"{i}.png")
    return root


def test_gradcam_peaks_where_the_class_evidence_is(tmp_path):
    from transferkit.train import train

    data = _patch_folder(tmp_path / "data")
    result = train(data, model="tiny_test", strategy="frozen", weights="none", runs_root=tmp_path / "runs",
                   epochs=15, augment=False, learning_rate=3e-3, optimizer="adam", precision="float32",
                   batch_size=8)
    assert result.metrics["accuracy"] >= 0.9
    hits = 0
    for corner in [(2, 2), (20, 20), (2, 20), (20, 2)]:
        img = np.full((32, 32, 3), 30, np.uint8)
        img[corner[0]:corner[0] + 10, corner[1]:corner[1] + 10] = 255
        cam, cls, prob = gradcam(result.model, img.astype("float32"), class_index=0)  # class 0 = "patch"
        peak = np.unravel_index(np.argmax(cam), cam.shape)
        scale = 32 / cam.shape[0]
        centre = (peak[0] * scale + scale / 2, peak[1] * scale + scale / 2)
        hits += abs(centre[0] - (corner[0] + 5)) <= 8 and abs(centre[1] - (corner[1] + 5)) <= 8
    assert hits >= 3, hits
    path, name, prob = api.gradcam_image(result.run_dir, tmp_path / "data" / "validation" / "patch" / "0.png",
                                         tmp_path / "cam.png", target="patch")
    assert name == "patch"
    assert_png(path)


@pytest.mark.parametrize("model", ["tiny_test", "vgg16"])
def test_gradcam_on_a_plain_backbone(tmp_path, flat_folder, model):
    image = sorted(flat_folder.iterdir())[0]
    path, name, prob = api.gradcam_image(model, image, tmp_path / "cam.png", weights="none")
    assert_png(path)


def test_viz_cli(cli, tmp_path):
    r = cli("viz", "filters", "tiny_test", "--layer", "block1_conv1", "--weights", "none", "-o", tmp_path / "f.png")
    assert r.returncode == 0, r.stderr
    assert_png(tmp_path / "f.png")
    r = cli("viz", "filters", "tiny_test", "--layer", "nope", "--weights", "none")
    assert r.returncode == 1 and "Conv layers" in r.stderr
