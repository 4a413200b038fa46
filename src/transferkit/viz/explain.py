"""Grad-CAM heat maps, default feature-map layers, and 2-D embeddings of extracted features."""

from __future__ import annotations

import weakref
from pathlib import Path

import numpy as np

from ..errors import TransferkitError
from ..search.project import project_2d

CONV_TYPES = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D")


def default_map_layers(spec, model) -> list[str]:
    """The last convolution of each block (VGG16: block1_conv2, block2_conv2, block3_conv3, ...)."""
    from ..backbones.build import resolve_blocks

    names = [layer.name for layer in model.layers]
    chosen, start = [], 0
    for out in resolve_blocks(spec, model):
        end = names.index(out)
        convs = [model.layers[i].name for i in range(start, end + 1) if type(model.layers[i]).__name__ in CONV_TYPES]
        chosen.append(convs[-1] if convs else out)
        start = end + 1
    return chosen


def _explained_graph(model):
    """The graph whose layers Grad-CAM can split: a trained classifier's nested backbone, or the model."""
    import keras

    nested = [lay for lay in model.layers if isinstance(lay, keras.Model) and len(lay.output.shape) == 4]
    return nested[-1] if nested else model


def conv_map_layers(model) -> list[str]:
    """Names of the layers with 4-D (image-like) outputs Grad-CAM can explain (a trained run's: its backbone's)."""
    graph = _explained_graph(model)
    return [lay.name for lay in graph.layers
            if len(lay.output.shape) == 4 and not type(lay).__name__.startswith(("Random", "Input"))]


def _split_at(graph, layer_name: str):
    """(graph input -> the layer's output, that output -> graph output) as two Keras models."""
    import keras

    mid = graph.get_layer(layer_name).output
    return keras.Model(graph.inputs[0], mid), keras.Model(mid, graph.outputs[0])


def _check_layer(model, layer: str) -> None:
    choices = conv_map_layers(model)
    if layer not in choices:
        from ..errors import one_of_message

        raise TransferkitError(one_of_message("layer", layer, choices[::-1],
                                              "Grad-CAM needs a layer with a spatial (h, w, c) output."))


_SPLITS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # model -> {layer: (feature, head)}


def _split_classifier(model, layer: str | None = None):
    """`_build_split`, made once per model and layer (a folder's images share it)."""
    splits = _SPLITS.setdefault(model, {})
    if layer not in splits:
        splits[layer] = _build_split(model, layer)
    return splits[layer]


def _build_split(model, layer: str | None = None):
    """Split a classifier into (features: image -> conv maps, head: maps -> class scores).

    Works for transferkit's trained models (a nested backbone followed by the "head" model) and for
    plain backbones with their ImageNet top. `layer` picks the conv layer whose maps are explained
    (default: the last one of the backbone).
    """
    import keras

    if layer is not None:
        _check_layer(model, layer)
    base = _explained_graph(model)
    if base is not model:
        idx = model.layers.index(base)
        low = high = None
        if layer is not None and layer != base.layers[-1].name:
            low, high = _split_at(base, layer)
        # image -> [augmentation] -> preprocess -> base: a chain; random augmentation is skipped (inference)
        before = [lay for lay in model.layers[1:idx + 1] if not type(lay).__name__.startswith("Random")]
        if low is not None:
            before[-1] = low

        def feature(x):
            for lay in before:
                x = lay(x, training=False) if isinstance(lay, keras.Model) else lay(x)
            return x
        after = ([high] if high is not None else []) + model.layers[idx + 1:]
    else:
        if layer is None:
            idx = max(i for i, lay in enumerate(model.layers) if len(lay.output.shape) == 4)
            if idx == len(model.layers) - 1:
                raise TransferkitError(f"{model.name} has no classifier after its last convolutional layer; "
                                       "Grad-CAM needs class scores (use a trained run or include_top).")
            layer = model.layers[idx].name
        feature, high = _split_at(model, layer)
        after = [high]

    def head(maps):
        x = maps
        for lay in after:
            x = lay(x, training=False) if isinstance(lay, keras.Model) else lay(x)
        return x

    return feature, head


def gradcam(model, image: np.ndarray, class_index: int | None = None, *,
            layer: str | None = None) -> tuple[np.ndarray, int, float]:
    """Grad-CAM of one image: the class-score gradient-weighted sum of the last conv maps, ReLU'd, in [0, 1].

    Args:
        model: a trained transferkit classifier (`model.keras`) or a backbone with its ImageNet top.
        image: (h, w, 3) float or uint8 array already at the model's input size, in the model's input range.
        class_index: class to explain; default the predicted one. For a sigmoid output, 0 explains
            the first class (score 1 - p) and 1 the second.

    Returns:
        (heat map (h', w') in [0, 1] at the conv maps' resolution, class index, its probability).
    """
    import keras
    from keras import ops

    from .. import backend

    feature, head = _split_classifier(model, layer)
    x = np.asarray(image, dtype="float32")[None]
    maps = keras.ops.convert_to_numpy(feature(x))
    probs = keras.ops.convert_to_numpy(head(maps))[0]
    binary = probs.shape[-1] == 1
    p2 = np.array([1 - probs[0], probs[0]]) if binary else probs
    if class_index is None:
        class_index = int(np.argmax(p2))
    if not 0 <= class_index < len(p2):
        raise TransferkitError(f"`class` must be from 0 to {len(p2) - 1}. Received: {class_index}")

    def score(m):
        out = ops.cast(head(m), "float32")
        if binary:  # explain the logit of the chosen class
            logit = ops.log(out[0, 0] + 1e-7) - ops.log(1 - out[0, 0] + 1e-7)
            return logit if class_index == 1 else -logit
        return ops.log(out[0, class_index] + 1e-7)

    _, grads = backend.value_and_gradient(score, maps)
    weights = grads[0].mean(axis=(0, 1))
    cam = np.maximum((maps[0] * weights).sum(axis=-1), 0)
    if cam.max() > 0:
        cam = cam / cam.max()
    return cam, class_index, float(p2[class_index])


def gradcam_overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """The image with the Grad-CAM heat map (jet colours) blended on top, uint8 (h, w, 3)."""
    from PIL import Image

    from .plots import _plt

    h, w = image.shape[:2]
    heat = np.asarray(Image.fromarray((cam * 255).astype(np.uint8)).resize((w, h), Image.Resampling.BILINEAR)) / 255
    colour = _plt().get_cmap("jet")(heat)[..., :3] * 255
    return ((1 - alpha) * image.astype(np.float32) + alpha * colour).clip(0, 255).astype(np.uint8)


def gradcam_data_url(model, image: np.ndarray, class_index: int | None = None) -> tuple[int, str]:
    """(class, a PNG data URL of the image beside its Grad-CAM overlay) for the class (default: the predicted
    one): what the run report and the upload page of `transferkit serve` show.

    Example:
    >>> chosen, url = gradcam_data_url(model, image)  # doctest: +SKIP
    """
    import base64
    import io

    from PIL import Image

    cam, chosen, _ = gradcam(model, image.astype("float32"), class_index)
    blended = gradcam_overlay(image, cam)
    buf = io.BytesIO()
    Image.fromarray(np.concatenate([image.astype(np.uint8), blended], axis=1)).save(buf, "PNG")
    return int(chosen), "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def plot_gradcam(image: np.ndarray, cam: np.ndarray, path, title: str) -> Path:
    """The image, the heat map and their overlay side by side."""
    from PIL import Image

    from .plots import _plt, _save

    plt = _plt()
    h, w = image.shape[:2]
    heat = np.asarray(Image.fromarray((cam * 255).astype(np.uint8)).resize((w, h), Image.Resampling.BILINEAR)) / 255
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.4))
    axes[0].imshow(image.astype(np.uint8))
    axes[0].set_title("image")
    axes[1].imshow(heat, cmap="jet", vmin=0, vmax=1)
    axes[1].set_title("Grad-CAM")
    axes[2].imshow(image.astype(np.uint8))
    axes[2].imshow(heat, cmap="jet", alpha=0.45, vmin=0, vmax=1)
    axes[2].set_title("overlay")
    for ax in axes:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_embedding(features_dir, path, *, layer: str | None = None, method: str = "pca") -> Path:
    """A 2-D projection of an extracted feature set, coloured by label, with a legend."""
    from ..extract.store import load_features
    from .plots import _plt, _save

    fs = load_features(features_dir, layers=layer)
    name = layer or next(iter(fs.features))
    xy = project_2d(fs.features[name], method)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 6.5))
    if fs.labels is not None:
        for c, cname in enumerate(fs.class_names):
            sel = fs.labels == c
            ax.scatter(xy[sel, 0], xy[sel, 1], s=14, alpha=0.8, label=f"{cname} ({int(sel.sum())})")
        ax.legend(title="class", fontsize=8, loc="best")
    else:
        ax.scatter(xy[:, 0], xy[:, 1], s=14, alpha=0.8)
    m = fs.manifest["settings"]
    ax.set_title(f"{method.upper()} of {m['model']} {name} features ({len(fs)} images)")
    ax.set_xlabel(f"{method} 1")
    ax.set_ylabel(f"{method} 2")
    fig.tight_layout()
    return _save(fig, path)
