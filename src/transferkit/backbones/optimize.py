"""Inference-only graph rewrites that keep a backbone's outputs and run faster: BatchNorm folded into the
convolution before it, channel-wise grouped convolutions (ConvNeXt) run as depthwise ones."""

from __future__ import annotations

import functools
import warnings

import numpy as np


def _history_refs(obj) -> list[str]:
    """Names of the layers whose output tensors appear in a serialized call (`inbound_nodes` entry)."""
    if isinstance(obj, dict):
        if "keras_history" in obj.get("config", {}):
            return [obj["config"]["keras_history"][0]]
        return [name for value in obj.values() for name in _history_refs(value)]
    if isinstance(obj, (list, tuple)):
        return [name for value in obj for name in _history_refs(value)]
    return []


FOLDABLE = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D")


def foldable_pairs(model) -> dict[str, str]:
    """Map conv layer name → BatchNormalization layer name for each pair that can be folded exactly.

    A pair folds when the BN normalises the last axis of the conv's output, the conv is a
    linear (no activation) channels-last Conv2D/DepthwiseConv2D/SeparableConv2D called once, its output
    feeds nothing but that BN, and it is not itself one of the model's outputs.
    """
    import keras

    config = model.get_config()
    layers = {entry["name"]: entry for entry in config["layers"]}
    inputs = {name: _history_refs(entry["inbound_nodes"]) for name, entry in layers.items()}
    consumers: dict[str, int] = {}
    for refs in inputs.values():
        for ref in refs:
            consumers[ref] = consumers.get(ref, 0) + 1
    outputs = config["output_layers"]
    output_names = {outputs[0]} if isinstance(outputs[0], str) else {o[0] for o in outputs}
    pairs = {}
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization) or len(inputs[layer.name]) != 1:
            continue
        conv = model.get_layer(inputs[layer.name][0])
        if type(conv).__name__ not in FOLDABLE:  # exact classes: subclasses may compute something else
            continue
        cfg = conv.get_config()
        if (cfg.get("activation") != "linear" or cfg.get("data_format", "channels_last") != "channels_last"
                or layer.axis not in (-1, 3) or len(layers[conv.name]["inbound_nodes"]) != 1
                or consumers.get(conv.name) != 1 or conv.name in output_names):
            continue
        pairs[conv.name] = layer.name
    return pairs


def channelwise_grouped(model) -> list[str]:
    """Names of the Conv2D layers with one input channel per group (`groups` = input channels > 1).

    They compute exactly what a DepthwiseConv2D does, which TensorFlow's CPU kernels run
    about 100× faster (ConvNeXt's 7 × 7 "depthwise" convolutions are written this way).
    """
    return [layer.name for layer in model.layers
            if type(layer).__name__ == "Conv2D" and layer.groups > 1 and layer.kernel.shape[2] == 1
            and layer.data_format == "channels_last"]


@functools.cache
def _folded_batchnorm_class():
    """The layer that stands where a folded BatchNormalization was: it returns its input (Keras imported lazily)."""
    import keras

    class FoldedBatchNorm(keras.layers.Layer):
        def call(self, inputs, training=None, mask=None):
            return inputs

        def compute_output_shape(self, input_shape):
            return input_shape

    return FoldedBatchNorm


def _values(variable) -> np.ndarray:
    from keras import ops

    return ops.convert_to_numpy(variable).astype(np.float64)


def _folded_weights(conv, bn) -> list[np.ndarray]:
    """Weights of `conv` followed by `bn` in inference mode: kernel·s and (b − mean)·s + beta, s = γ/√(var+ε).

    The per-output-channel scale s goes on the kernel that makes the output channels: the
    pointwise kernel of a separable conv, (cin, multiplier) of a depthwise one.
    """
    mean, var = _values(bn.moving_mean), _values(bn.moving_variance)
    gamma = _values(bn.gamma) if bn.scale else 1.0
    beta = _values(bn.beta) if bn.center else 0.0
    scale = gamma / np.sqrt(var + bn.epsilon)
    bias = _values(conv.bias) if conv.use_bias else 0.0
    kind = type(conv).__name__
    if kind == "SeparableConv2D":
        kernels = [_values(conv.depthwise_kernel), _values(conv.pointwise_kernel) * scale]
    elif kind == "DepthwiseConv2D":  # kernel (kh, kw, cin, multiplier); output channel = cin_i * multiplier + m
        kernel = _values(conv.kernel)
        kernels = [kernel * scale.reshape(kernel.shape[2], kernel.shape[3])]
    else:  # kernel (kh, kw, cin / groups, cout)
        kernels = [_values(conv.kernel) * scale]
    return kernels + [(bias - mean) * scale + beta]


def _as_depthwise(conv, use_bias: bool):
    """A DepthwiseConv2D layer computing what the channel-wise grouped `conv` computes (weights set later)."""
    import keras

    return keras.layers.DepthwiseConv2D(
        conv.kernel_size, strides=conv.strides, padding=conv.padding, depth_multiplier=conv.filters // conv.groups,
        data_format=conv.data_format, dilation_rate=conv.dilation_rate, activation=conv.activation,
        use_bias=use_bias, name=conv.name, dtype=conv.dtype_policy)


def optimize_for_inference(model, *, fold_batchnorm: bool = True, grouped_to_depthwise: bool = True):
    """A copy of the functional `model` for inference, with the rewrites of this module applied.

    Outputs are the same up to float rounding: a BN in inference mode is a per-channel
    affine map that the conv's kernel and bias absorb, and a grouped conv with one input
    channel per group is a depthwise conv. Fewer passes over memory and faster kernels:
    on a 2-core CPU ResNet50 runs 1.2× (float32) to 1.8× (bfloat16) faster (bench/optimize.py).
    Layers that are not rewritten are shared with `model`, not copied. Returns `model`
    itself when nothing applies (VGG16), or with a warning when the graph cannot be
    read or rebuilt (a custom layer without `get_config()`).

    Args:
        model: a functional Keras model (a `keras.applications` backbone, or a cut of one).
        fold_batchnorm: fold each BatchNormalization into the convolution feeding it (`foldable_pairs`).
        grouped_to_depthwise: run channel-wise grouped Conv2D layers as DepthwiseConv2D.

    Example:
    >>> fast = optimize_for_inference(keras.applications.ResNet50(weights=None))  # doctest: +SKIP
    """
    try:
        pairs = foldable_pairs(model) if fold_batchnorm else {}
        grouped = set(channelwise_grouped(model)) if grouped_to_depthwise else set()
        if not pairs and not grouped:
            return model
        return _rewrite(model, pairs, grouped)
    except Exception as error:  # e.g. a custom layer without get_config(): run the graph as it is
        reason = " ".join(str(error).split())
        reason = reason if len(reason) <= 200 else reason[:197] + "..."
        warnings.warn(f"transferkit: inference rewrites skipped for model {model.name!r} "
                      f"({type(error).__name__}: {reason}); features are the same, only slower.", stacklevel=2)
        return model


def _rewrite(model, pairs: dict[str, str], grouped: set[str]):
    import keras

    folded_bns = set(pairs.values())
    rewritten = {}

    def clone(layer):
        if layer.name in pairs or layer.name in grouped:
            use_bias = layer.use_bias or layer.name in pairs
            if layer.name in grouped:
                rewritten[layer.name] = _as_depthwise(layer, use_bias)
            else:
                rewritten[layer.name] = type(layer).from_config(dict(layer.get_config(), use_bias=use_bias))
            return rewritten[layer.name]
        if layer.name in folded_bns:
            return _folded_batchnorm_class()(name=layer.name, dtype=layer.dtype_policy)
        return layer  # shared: same object, same weights

    fast = keras.models.clone_model(model, clone_function=clone)
    for name, new in rewritten.items():
        conv = model.get_layer(name)
        if name in pairs:
            weights = _folded_weights(conv, model.get_layer(pairs[name]))
        else:
            weights = [_values(w) for w in conv.weights]
        if name in grouped:  # (kh, kw, 1, cout) → (kh, kw, groups, cout / groups): channel j = group j // multiplier
            k = weights[0]
            weights[0] = k.reshape(k.shape[0], k.shape[1], conv.groups, conv.filters // conv.groups)
        new.set_weights([w.astype(np.float32) for w in weights])
    return fast
