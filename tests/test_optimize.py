"""Inference rewrites (BatchNorm folding, grouped → depthwise convs): same outputs as the original, only where exact."""

import numpy as np
import pytest

from transferkit.backbones.build import build_feature_model
from transferkit.backbones.optimize import channelwise_grouped, foldable_pairs, optimize_for_inference

from conftest import randomize_batchnorm


def outputs(model, x):
    import keras

    out = model(x, training=False)
    return [keras.ops.convert_to_numpy(o) for o in (out if isinstance(out, (list, tuple)) else [out])]


def assert_same(model, folded, x, rtol=1e-5):
    for a, b in zip(outputs(model, x), outputs(folded, x)):
        assert np.linalg.norm(b - a) / np.linalg.norm(a) < rtol


@pytest.mark.parametrize("name, layer, size, n_folded, n_bn", [
    ("resnet50", "avg_pool", 64, 53, 53),
    ("inception_v3", "mixed3", 75, 30, 30),  # BN with scale=False
    ("mobilenet_v2", "block_6_project_BN", 64, 21, 21),  # depthwise convs
    ("efficientnet_lite0", "avg_pool", 64, 49, 49),
    ("densenet121", "pool2_conv", 64, 7, 14),  # pre-activation BNs (after pool/concat) stay
    ("resnet101_v2", "conv2_block3_out", 64, 6, 9),  # conv with bias + BN; pre-activation BNs stay
    ("xception", "block4_sepconv2_bn", 71, 10, 10),  # separable convs
])
def test_folded_backbone_matches_unfolded(name, layer, size, n_folded, n_bn):
    fm = build_feature_model(name, [layer], input_size=size, weights="none")
    assert randomize_batchnorm(fm.model) > 0
    pairs = foldable_pairs(fm.model)
    import keras

    assert len(pairs) == n_folded
    assert sum(isinstance(lyr, keras.layers.BatchNormalization) for lyr in fm.model.layers) == n_bn
    folded = optimize_for_inference(fm.model)
    assert not any(isinstance(lyr, keras.layers.BatchNormalization) for lyr in folded.layers
                   if lyr.name in pairs.values())
    x = np.random.default_rng(0).uniform(-1, 1, (2, size, size, 3)).astype("float32")
    assert_same(fm.model, folded, x)


def test_requested_conv_output_is_not_folded():
    # conv1_conv is asked for itself: folding would hand back conv1_bn's values under its name
    fm = build_feature_model("resnet50", ["conv1_conv", "conv1_bn", "conv2_block1_1_relu"], input_size=64,
                             weights="none")
    randomize_batchnorm(fm.model)
    pairs = foldable_pairs(fm.model)
    assert "conv1_conv" not in pairs and "conv2_block1_1_conv" in pairs
    x = np.random.default_rng(1).uniform(-1, 1, (2, 64, 64, 3)).astype("float32")
    assert_same(fm.model, optimize_for_inference(fm.model), x)


def test_compiled_features_folded_or_not_agree():
    fm = build_feature_model("tiny_test", ["block2_pool", "avg_pool"], weights="none")
    randomize_batchnorm(fm.model)
    x = np.random.default_rng(2).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    folded = fm.compile(4)(x)
    fm.optimize = False
    plain = fm.compile()(x)
    for a, b in zip(plain, folded):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


def small_model(kind):
    import keras
    from keras import layers

    inp = keras.Input((12, 12, 4))
    if kind == "depthwise_multiplier":
        x = layers.DepthwiseConv2D(3, depth_multiplier=3, padding="same", use_bias=False)(inp)
        out = layers.BatchNormalization()(x)
    elif kind == "bias_no_scale_no_center":
        x = layers.Conv2D(6, 3, use_bias=True)(inp)
        out = layers.BatchNormalization(scale=False, center=False)(x)
    elif kind == "grouped":
        x = layers.Conv2D(8, 3, groups=2, padding="same")(inp)
        out = layers.BatchNormalization(epsilon=0.1)(x)
    elif kind == "separable":
        x = layers.SeparableConv2D(5, 3, depth_multiplier=2, use_bias=False)(inp)
        out = layers.BatchNormalization()(x)
    elif kind == "activation_before_bn":
        x = layers.Conv2D(6, 3, activation="relu")(inp)
        out = layers.BatchNormalization()(x)
    elif kind == "conv_feeds_two":
        x = layers.Conv2D(6, 3)(inp)
        out = layers.Add()([layers.BatchNormalization()(x), x])
    elif kind == "bn_on_channel_axis_1":
        x = layers.Conv2D(6, 3)(inp)
        out = layers.BatchNormalization(axis=1)(x)
    elif kind == "bn_after_add":
        x = layers.Conv2D(4, 3, padding="same")(inp)
        out = layers.BatchNormalization()(layers.Add()([x, inp]))
    return keras.Model(inp, out)


@pytest.mark.parametrize("kind, folds", [
    ("depthwise_multiplier", True), ("bias_no_scale_no_center", True), ("grouped", True), ("separable", True),
    ("activation_before_bn", False), ("conv_feeds_two", False), ("bn_on_channel_axis_1", False),
    ("bn_after_add", False),
])
def test_fold_only_where_exact(kind, folds):
    model = small_model(kind)
    randomize_batchnorm(model, seed=3)
    folded = optimize_for_inference(model)
    assert (len(foldable_pairs(model)) == 1) is folds
    assert (folded is not model) is folds
    x = np.random.default_rng(4).uniform(-2, 2, (3, 12, 12, 4)).astype("float32")
    assert_same(model, folded, x)


def test_no_batchnorm_returns_the_model_itself():
    fm = build_feature_model("vgg16", ["block1_pool"], input_size=32, weights="none")
    assert optimize_for_inference(fm.model) is fm.model


def test_convnext_grouped_convs_run_as_depthwise():
    import keras

    fm = build_feature_model("convnext_tiny", None, input_size=64, weights="none")
    grouped = channelwise_grouped(fm.model)
    assert len(grouped) == 18  # one 7 × 7 channel-wise conv per ConvNeXt block (3 + 3 + 9 + 3)
    for name in grouped[:3]:  # give the kernels structure per output channel, as trained ones have
        conv = fm.model.get_layer(name)
        conv.kernel.assign(np.random.default_rng(5).normal(0, 0.1, conv.kernel.shape).astype("float32"))
        conv.bias.assign(np.linspace(-1, 1, conv.filters).astype("float32"))
    fast = optimize_for_inference(fm.model)
    assert all(isinstance(fast.get_layer(n), keras.layers.DepthwiseConv2D) for n in grouped)
    x = np.random.default_rng(6).uniform(-1, 1, (2, 64, 64, 3)).astype("float32")
    assert_same(fm.model, fast, x)


def test_grouped_conv_with_multiplier_and_bn():
    import keras
    from keras import layers

    inp = keras.Input((10, 10, 4))
    x = layers.Conv2D(8, 3, groups=4, padding="same", use_bias=False, strides=2)(inp)  # 2 outputs per channel
    out = layers.BatchNormalization()(x)
    model = keras.Model(inp, out)
    randomize_batchnorm(model, seed=7)
    fast = optimize_for_inference(model)
    assert isinstance(fast.layers[1], keras.layers.DepthwiseConv2D) and len(fast.layers[1].weights) == 2
    x = np.random.default_rng(8).uniform(-1, 1, (2, 10, 10, 4)).astype("float32")
    assert_same(model, fast, x)


def test_unreadable_graph_runs_unchanged_with_a_warning():
    import keras

    class Scale(keras.layers.Layer):  # an array in __init__ and no get_config(): the graph cannot be cloned
        def __init__(self, factor, **kwargs):
            super().__init__(**kwargs)
            self.factor = np.asarray(factor, "float32")

        def call(self, x):
            return x * self.factor

    inp = keras.Input((8, 8, 3))
    out = Scale(np.full(4, 2.0))(keras.layers.BatchNormalization()(keras.layers.Conv2D(4, 3)(inp)))
    model = keras.Model(inp, out, name="custom")
    with pytest.warns(UserWarning, match="inference rewrites skipped for model 'custom'.*get_config"):
        assert optimize_for_inference(model) is model
