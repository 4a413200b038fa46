"""Classifiers built from a backbone: augmentation → preprocessing → frozen/unfrozen base → dense head.

Only built-in Keras layers are used, so a saved `model.keras` loads in safe mode without transferkit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..backbones.build import build_model, resolve_blocks
from ..backbones.registry import PREPROCESSING, BackboneSpec
from ..errors import TransferkitError, check_one_of, did_you_mean
from .heads import build_head


@dataclass
class Augmentation:
    """Random training-time transforms (the cats-vs-dogs tutorial's); validation data is never augmented."""

    rotation: float = 40.0  # degrees
    shift: float = 0.2  # fraction of width/height
    shear: float = 0.2
    zoom: float = 0.2
    horizontal_flip: bool = True
    vertical_flip: bool = False  # for images without an up (cells, cells in microscopy, satellite tiles)
    rot90: bool = False  # random 90° turns of square inputs: with both flips, all 8 orientations

    def layers(self, seed: int = 0):
        from keras import layers

        out = []
        if self.rotation:
            out.append(layers.RandomRotation(self.rotation / 360.0, fill_mode="nearest", seed=seed,
                                             name="aug_rotation"))
        if self.shift:
            out.append(layers.RandomTranslation(self.shift, self.shift, fill_mode="nearest", seed=seed + 1,
                                                name="aug_shift"))
        if self.shear:
            out.append(layers.RandomShear(self.shear, self.shear, fill_mode="nearest", seed=seed + 2,
                                          name="aug_shear"))
        if self.zoom:
            out.append(layers.RandomZoom(self.zoom, fill_mode="nearest", seed=seed + 3, name="aug_zoom"))
        flip = {(True, False): "horizontal", (False, True): "vertical",
                (True, True): "horizontal_and_vertical"}.get((self.horizontal_flip, self.vertical_flip))
        if flip:
            out.append(layers.RandomFlip(flip, seed=seed + 4, name="aug_flip"))
        if self.rot90:
            from .layers import RandomRot90

            out.append(RandomRot90(seed=seed + 5, name="aug_rot90"))
        return out

    def to_dict(self) -> dict:
        return asdict(self)


# Named sets of transforms (`--augmentation NAME`); "none" is no augmentation at all.
AUGMENTATIONS = {
    "tutorial": Augmentation(),  # the cats-vs-dogs tutorial's: rotation 40°, shifts, shear and zoom 0.2, h-flip
    "flip": Augmentation(rotation=0.0, shift=0.0, shear=0.0, zoom=0.0, horizontal_flip=True),
    # images without an up or a handedness (solar cells, microscopy, satellite tiles): all 8 orientations of a
    # square and nothing that moves content against the frame
    "dihedral": Augmentation(rotation=0.0, shift=0.0, shear=0.0, zoom=0.0, horizontal_flip=True,
                             vertical_flip=True, rot90=True),
}


def named_augmentation(name: str) -> Augmentation | None:
    """The `AUGMENTATIONS` entry called `name` ("none": None), or a `TransferkitError` with close matches.

    Example:
    >>> named_augmentation("dihedral").rot90
    True
    """
    check_one_of("augmentation", name, [*AUGMENTATIONS, "none"])
    return AUGMENTATIONS.get(name)


def preprocessing_layer(spec: BackboneSpec):
    """The model's preprocessing as a frozen 1×1 convolution (channel order + per-channel scale and shift).

    A plain Conv2D instead of a custom layer keeps saved models loadable anywhere.
    """
    from keras import layers

    layer = layers.Conv2D(3, 1, name="preprocess", trainable=False, dtype="float32")
    layer.build((None, None, None, 3))
    layer.set_weights(list(PREPROCESSING[spec.preprocessing].affine()))
    return layer


def build_classifier(spec: BackboneSpec, n_classes: int, *, input_size: int, weights="imagenet",
                     augmentation: Augmentation | None = None, hidden: int = 256, dropout: float = 0.5,
                     pooling: str | None = None, layer: str | None = None, precision: str = "float32", seed: int = 0):
    """Input (raw RGB 0–255) → [augmentation] → preprocessing → base (inference mode) → head.

    Args:
        pooling: how the head turns the base's map into a vector (default: the registry's `head_pooling`).
        layer: cut the base at this layer (default: the end of the convolutional base).

    Returns:
        (model, base): the base is the nested backbone, frozen (`trainable=False`).
    """
    import keras

    from .. import backend

    base = build_model(spec, include_top=False, weights=weights, input_size=input_size, precision=precision,
                       seed=seed)
    if layer is not None:
        names = [la.name for la in base.layers]
        if layer not in names:
            raise TransferkitError(f"`layer` must be a layer of {spec.name}'s convolutional base. Received: "
                                   f"layer={layer!r}.{did_you_mean(layer, names)} Run `transferkit layers "
                                   f"{spec.name}` to list them.")
        base = keras.Model(base.inputs, base.get_layer(layer).output, name=base.name)
    base.trainable = False
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = inputs
    for layer in (augmentation.layers(seed) if augmentation else []):
        x = layer(x)
    x = preprocessing_layer(spec)(x)
    x = base(x, training=False)  # BatchNorm in inference mode, also when the base is unfrozen later
    # the head computes in float32 whatever the base does: a small dense head gains nothing from bfloat16
    # (bench/train_speed.py) and its outputs and losses are exact; the outer model takes the precision's policy
    # (compile() adds loss scaling for float16)
    head = build_head(tuple(base.output.shape[1:]), n_classes, hidden=hidden, dropout=dropout,
                      pooling=pooling or spec.head_pooling)
    with backend.dtype_policy(precision):
        outputs = head(x)
        return keras.Model(inputs, outputs, name=f"{spec.name}_classifier"), base


def unfreeze_top(base, spec: BackboneSpec, *, blocks: int | None = None, from_layer: str | None = None) -> list[str]:
    """Unfreeze the top `blocks` blocks of `base` (or every layer from `from_layer` on); BatchNorm stays frozen.

    Setting BatchNormalization layers `trainable=False` keeps their moving statistics fixed during `fit`
    (calling the base with `training=False` alone is not enough in Keras 3, keras-team/keras#20285).

    Returns:
        The names of the layers made trainable.
    """
    import keras

    names = [layer.name for layer in base.layers]
    if from_layer is not None:
        if from_layer not in names:
            raise TransferkitError(f"`unfreeze_from` must be a layer of {spec.name}. Received: "
                                   f"unfreeze_from={from_layer!r}.{did_you_mean(from_layer, names)}")
        start = names.index(from_layer)
    else:
        block_outputs = [b for b in resolve_blocks(spec, base) if b in names]  # a cut base has fewer
        n = spec.finetune_blocks if blocks is None else blocks
        if not 1 <= n < len(block_outputs):
            raise TransferkitError(f"`unfreeze_blocks` must be from 1 to {len(block_outputs) - 1} for {spec.name} "
                                   f"(blocks: {', '.join(block_outputs)}). Received: {n}")
        start = names.index(block_outputs[-n - 1]) + 1
    base.trainable = True
    unfrozen = []
    for i, layer in enumerate(base.layers):
        trainable = i >= start and not isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = trainable
        if trainable and layer.weights:
            unfrozen.append(layer.name)
    return unfrozen


def block_rate_factors(base, spec: BackboneSpec, unfrozen: list[str], ratio: float) -> dict[str, float]:
    """Discriminative rates for the unfrozen layers: the top unfrozen block trains at the full rate, the lowest at
    rate / `ratio`, the blocks between on a geometric scale (fastai's `slice(lr / ratio, lr)`); the head is not
    listed (full rate). Returns {variable path: factor}; empty when `ratio` is 1 or one block is unfrozen.

    Example:
    >>> block_rate_factors(base, spec, unfreeze_top(base, spec, blocks=3), 10.0)  # doctest: +SKIP
    {'block6a_expand_conv/kernel': 0.1, ..., 'top_conv/kernel': 1.0}
    """
    if ratio == 1:
        return {}
    names = [layer.name for layer in base.layers]
    ends = sorted(names.index(b) for b in resolve_blocks(spec, base) if b in names)
    block_of = {name: sum(end < i for end in ends) for i, name in enumerate(names)}
    blocks = sorted({block_of[name] for name in unfrozen})
    if len(blocks) < 2:
        return {}
    rank = {b: j for j, b in enumerate(blocks)}
    factors = {}
    for name in unfrozen:
        factor = float(ratio) ** (-(len(blocks) - 1 - rank[block_of[name]]) / (len(blocks) - 1))
        for weight in base.get_layer(name).trainable_weights:
            factors[weight.path] = factor
    return factors


def export_model(clf, base, spec: BackboneSpec, size: int):
    """The inference model saved as model.keras: preprocessing → base → head, without augmentation layers."""
    import keras

    inputs = keras.Input((size, size, 3), name="image")
    x = clf.get_layer("preprocess")(inputs) if "preprocess" in [la.name for la in clf.layers] else (
        preprocessing_layer(spec)(inputs))
    x = base(x, training=False)
    return keras.Model(inputs, clf.get_layer("head")(x), name=f"{spec.name}_classifier")
