"""A tiny registered test backbone (two conv blocks, BatchNorm, a dense top) so tests run in seconds."""

from __future__ import annotations

from transferkit.backbones.registry import BackboneSpec, register_backbone


def tiny_cnn(include_top=True, weights=None, input_shape=None, classes=10, classifier_activation="softmax",
             **_ignored):
    """A keras.applications-style builder: named blocks like VGG, BatchNorm in block 2."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=input_shape or (32, 32, 3))
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="block1_conv1")(inputs)
    x = layers.MaxPooling2D(name="block1_pool")(x)
    x = layers.Conv2D(16, 3, padding="same", use_bias=False, name="block2_conv1")(x)
    x = layers.BatchNormalization(name="block2_bn")(x)
    x = layers.Activation("relu", name="block2_relu")(x)
    x = layers.MaxPooling2D(name="block2_pool")(x)
    if include_top:
        x = layers.Flatten(name="flatten")(x)
        x = layers.Dense(32, activation="relu", name="fc1")(x)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    model = keras.Model(inputs, x, name="tiny_cnn")
    if weights not in (None, "imagenet"):
        model.load_weights(weights)
    return model


SPEC = BackboneSpec(
    name="tiny_test",
    builder=tiny_cnn,
    preprocessing="tf",
    input_size=32,
    default_layer="avg_pool",
    top_layers=("flatten", "fc1", "predictions"),
    blocks=("block1_pool", "block2_pool"),
    min_input_size=8,
    imagenet_weights="none",
    family="test",
    description="two-block test CNN",
)


def register() -> BackboneSpec:
    return register_backbone(SPEC, overwrite=True)
