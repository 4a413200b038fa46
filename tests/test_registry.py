"""The backbone registry: names, aliases, helpful misses, and every entry built with weights=None."""

import pytest

import transferkit as tk
from transferkit.backbones.build import build_feature_model, build_model, derive_blocks, layer_table
from transferkit.backbones.registry import PREPROCESSING
from transferkit.errors import TransferkitError

KERAS_NAMES = [
    "VGG16", "VGG19", "ResNet50", "ResNet101", "ResNet152", "ResNet50V2", "ResNet101V2", "ResNet152V2",
    "InceptionV3", "InceptionResNetV2", "Xception", "MobileNet", "MobileNetV2", "MobileNetV3Small",
    "MobileNetV3Large", "DenseNet121", "DenseNet169", "DenseNet201", "NASNetMobile", "NASNetLarge",
    *[f"EfficientNetB{i}" for i in range(8)], *[f"EfficientNetV2{v}" for v in ("B0", "B1", "B2", "B3", "S", "M", "L")],
    *[f"ConvNeXt{v}" for v in ("Tiny", "Small", "Base", "Large", "XLarge")],
]


def test_every_keras_application_is_registered_under_both_spellings():
    import keras

    for keras_name in KERAS_NAMES:
        assert hasattr(keras.applications, keras_name)
        spec = tk.get_backbone(keras_name)
        assert spec.keras_name == keras_name
        assert tk.get_backbone(spec.name) is spec
    assert tk.get_backbone("resnet101_v2").keras_name == "ResNet101V2"
    assert tk.get_backbone("inception_v3").keras_name == "InceptionV3"
    assert tk.get_backbone("mobilenet_v3_small").keras_name == "MobileNetV3Small"
    assert tk.get_backbone("efficientnet_b0").keras_name == "EfficientNetB0"


def test_unknown_model_suggests_close_matches():
    with pytest.raises(TransferkitError, match=r"Unknown model 'resnet5'.*'resnet50'.*transferkit models"):
        tk.get_backbone("resnet5")


def test_specs_are_consistent():
    for name in tk.list_backbones():
        spec = tk.get_backbone(name)
        assert spec.preprocessing in PREPROCESSING
        assert spec.input_size >= spec.min_input_size
    assert tk.list_backbones("vgg*") == ["vgg16", "vgg19"]


def test_preprocessing_modes_match_keras():
    import numpy as np
    from keras.applications import imagenet_utils

    x = np.random.default_rng(0).uniform(0, 255, (2, 4, 4, 3)).astype("float32")
    for mode in ("caffe", "tf", "torch"):
        p = PREPROCESSING[mode]
        y = x[..., ::-1] if p.bgr else x
        ours = (y - np.array(p.mean, "float32")) / np.array(p.std, "float32")
        ref = imagenet_utils.preprocess_input(x.copy(), mode=mode)
        np.testing.assert_allclose(ours, np.asarray(ref), rtol=1e-5, atol=1e-4)


def test_vgg16_layer_table_params():
    rows, totals = layer_table("vgg16")
    assert totals["total"] == 138_357_544
    assert totals["base"] == 14_714_688
    shapes = {name: shape for name, _, shape, _ in rows}
    assert shapes["block5_pool"] == (None, 7, 7, 512)
    rows150, totals150 = layer_table("vgg16", input_size=150)
    assert dict((n, s) for n, _, s, _ in rows150)["block5_pool"] == (None, 4, 4, 512)
    assert totals150["total"] == 14_714_688


@pytest.mark.slow
@pytest.mark.parametrize("keras_name", KERAS_NAMES)
def test_every_entry_builds_with_its_feature_layers(keras_name):
    """Table test: default layer, block outputs and pooled aliases exist with sensible shapes."""
    spec = tk.get_backbone(keras_name)
    fm = build_feature_model(spec, [spec.default_layer], weights="none")
    assert fm.input_size == spec.input_size
    (shape,) = fm.shapes
    assert len(shape) == 1 and shape[0] >= 256, shape
    base = build_model(spec, weights="none")
    names = {layer.name for layer in base.layers}
    blocks = spec.blocks or derive_blocks(base)
    assert len(blocks) >= 3
    missing = [b for b in blocks if b not in names]
    assert not missing, f"declared block outputs not in {spec.name}: {missing}"
    sizes = [base.get_layer(b).output.shape[1] for b in blocks]
    assert sizes == sorted(sizes, reverse=True), sizes


def test_layer_names_are_stable_across_builds():
    a = [layer.name for layer in build_model("inception_v3", weights="none").layers]
    build_model("mobilenet_v3_small", weights="none")
    b = [layer.name for layer in build_model("inception_v3", weights="none").layers]
    assert a == b


def test_top_layer_at_other_size_with_imagenet_weights_is_a_clear_error():
    with pytest.raises(TransferkitError, match=r"only works at input size 224.*Received: input_size=150"):
        build_feature_model("vgg16", ["fc2"], input_size=150, weights="imagenet")


def test_missing_imagenet_download_names_the_cache_file(monkeypatch, tmp_path):
    import keras.src.utils.file_utils as fu

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/tensorflow/keras-applications/"
                        "vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5: None -- [Errno -3] no network")

    monkeypatch.setattr(fu, "get_file", offline)
    with pytest.raises(TransferkitError) as err:
        build_model("vgg16", weights="imagenet")
    msg = str(err.value)
    assert str(tmp_path / "models" / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5") in msg
    assert "--weights none" in msg and "efficientnet_lite0" in msg
    with pytest.raises(TransferkitError, match=r"Received: layers='fc3'.*'fc2'"):  # a bad layer name comes first
        build_feature_model("vgg16", ["fc3"], weights="imagenet")


def test_weights_file_that_does_not_exist():
    with pytest.raises(TransferkitError, match="not an existing file"):
        build_model("tiny_test", weights="/nope/weights.h5")
