"""Training curves, conv-filter grids and feature-map grids written as PNG files."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np

from ..data.decode import DecodeError, open_regular
from ..errors import TransferkitError, install_hint
from ..files import atomic_path


def _plt():
    try:
        import matplotlib
    except ImportError:
        raise TransferkitError(f"Pictures need matplotlib: {install_hint('viz')}.") from None
    matplotlib.use("Agg")  # headless: no display needed
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=100, format=path.suffix.lstrip(".") or "png")
    finally:
        _plt().close(fig)
    return path


def plot_history(history: dict, path, title: str = "Training and validation") -> Path:
    """Accuracy and loss per epoch, training dashed and validation solid (as in the tutorial).

    Args:
        history: `History.history`-like dict with "accuracy", "loss", "val_accuracy", "val_loss".
        path: PNG file to write.

    Example:
    >>> plot_history(hist.history, "curves.png")  # doctest: +SKIP
    """
    plt = _plt()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, metric in zip(axes, ("accuracy", "loss")):
        if metric not in history:
            raise TransferkitError(f"The history has no {metric!r}; it has {sorted(history)}.")
        epochs = np.arange(1, len(history[metric]) + 1)
        ax.plot(epochs, history[metric], "--", color="tab:blue", label=f"training {metric}")
        if f"val_{metric}" in history:
            ax.plot(epochs, history[f"val_{metric}"], "-", color="tab:orange", label=f"validation {metric}")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.set_ylabel(metric)
        ax.set_title(f"{title}: {metric}")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def _normalise(a: np.ndarray) -> np.ndarray:
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def plot_filters(model, layer: str | None, path, n: int = 6) -> Path:
    """A grid of a conv layer's kernels normalised to 0–1: one row per filter, one column per input channel
    (the first 16 channels).

    A first layer (3 input channels) is drawn as one RGB tile per filter instead.

    Args:
        model: a `keras.Model` (a backbone).
        layer: name of a Conv2D / DepthwiseConv2D layer; None for the first one.
        path: PNG file to write.
        n: how many filters (rows or tiles).
    """
    import keras

    names = [lay.name for lay in model.layers]
    convs = [lay.name for lay in model.layers
             if isinstance(lay, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)) and lay.weights]
    if layer is None and convs:
        layer = convs[0]
    if layer not in names:
        raise TransferkitError(f"`layer` must be a layer of {model.name}. Received: layer={layer!r}. "
                               f"Conv layers: {', '.join(convs[:12])}{' ...' if len(convs) > 12 else ''}")
    if layer not in convs:
        raise TransferkitError(f"{layer!r} is a {type(model.get_layer(layer)).__name__}, not a convolution. "
                               f"Conv layers: {', '.join(convs[:12])}{' ...' if len(convs) > 12 else ''}")
    kernel = np.asarray(model.get_layer(layer).get_weights()[0], dtype=np.float32)  # (kh, kw, in, out)
    kernel = _normalise(kernel)
    plt = _plt()
    n = max(1, min(n, kernel.shape[-1]))
    if kernel.shape[2] == 3:
        cols = min(n, 8)
        rows = math.ceil(n / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.6 * rows + 0.6), squeeze=False)
        for i, ax in enumerate(axes.flat):
            ax.axis("off")
            if i < n:
                ax.imshow(kernel[..., i], interpolation="nearest")
                ax.set_title(f"#{i}", fontsize=8)
    else:
        cols = min(kernel.shape[2], 16)
        fig, axes = plt.subplots(n, cols, figsize=(0.9 * cols + 0.8, 0.9 * n + 0.8), squeeze=False)
        for r in range(n):
            for c in range(cols):
                ax = axes[r, c]
                ax.imshow(kernel[:, :, c, r], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                if c == 0:
                    ax.set_ylabel(f"f{r}", fontsize=8)
    shown = f"first {n} filters" if kernel.shape[2] == 3 else (
        f"rows: first {n} filters, columns: first {min(kernel.shape[2], 16)} input channels")
    fig.suptitle(f"{model.name} {layer}: {kernel.shape[-1]} filters {kernel.shape[0]}×{kernel.shape[1]}×"
                 f"{kernel.shape[2]} ({shown})")
    fig.tight_layout()
    return _save(fig, path)


def plot_feature_maps(maps: dict[str, np.ndarray], out_dir, *, channels: int = 64, image_name: str = "") -> list[Path]:
    """One PNG per layer: a grid of its first `channels` feature maps for one image.

    Args:
        maps: layer name -> (h, w, c) activations of one image.
        out_dir: folder for `<layer>.png` files.
        channels: channels to show (an 8 × 8 grid for 64).
    """
    from ..extract.writer import safe_name

    plt = _plt()
    written = []
    for name, act in maps.items():
        act = np.asarray(act)
        if act.ndim != 3:
            raise TransferkitError(f"Layer {name!r} has output shape {act.shape}; feature maps need (h, w, c).")
        k = min(channels, act.shape[-1])
        cols = math.ceil(math.sqrt(k))
        rows = math.ceil(k / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.3 * rows + 0.7), squeeze=False)
        for i, ax in enumerate(axes.flat):
            ax.axis("off")
            if i < k:
                ax.imshow(act[..., i], cmap="viridis", interpolation="nearest")
        shown = f"all {k} channels" if k == act.shape[-1] else f"channels 0–{k - 1}: {k} of {act.shape[-1]}"
        fig.suptitle(f"{name} {tuple(act.shape)} {image_name} — {shown}".replace("  ", " "))
        fig.tight_layout()
        written.append(_save(fig, Path(out_dir) / f"{safe_name(name)}.png"))
    return written


def plot_confusion(metrics: dict, path) -> Path:
    """The confusion matrix as a labelled heat map."""
    plt = _plt()
    cm = np.array(metrics["confusion"])
    names = metrics["class_names"]
    size = max(4.0, 0.6 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                    color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"Confusion matrix (accuracy {metrics['accuracy']:.1%}, n={metrics['n']})")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    return _save(fig, path)


def plot_top_losses(probs: np.ndarray, labels: np.ndarray, paths: list[str], root, class_names: list[str], path,
                    k: int = 9) -> Path:
    """The k images with the highest loss, wrong ones first by construction, each titled with its true and
    predicted class and its loss (`probs`: (n, classes)). With no wrong predictions it still shows the least
    certain images, and says so."""
    from PIL import Image

    plt = _plt()
    p = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=int)
    loss = -np.log(np.clip(p[np.arange(len(labels)), labels], 1e-7, 1.0)) if len(labels) else np.zeros(0)
    n_wrong = int((p.argmax(1) != labels).sum()) if len(labels) else 0
    order = np.argsort(-loss, kind="stable")[:k]
    cols = 3
    rows = max(1, int(np.ceil(len(order) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, order):
        try:
            with open_regular(Path(root) / paths[i]) as f, Image.open(f) as im:
                ax.imshow(im.convert("RGB"))
        except (OSError, DecodeError):
            ax.text(0.5, 0.5, "(cannot be read)", ha="center", va="center")
        pred = int(p[i].argmax())
        mark = "" if pred == labels[i] else "WRONG  "
        ax.set_title(f"{mark}true {class_names[labels[i]]}\npred {class_names[pred]} ({p[i, pred]:.0%}), "
                     f"loss {loss[i]:.2f}", fontsize=9, color="black" if pred == labels[i] else "firebrick")
    if not len(labels):
        title = "No images were evaluated"
    elif n_wrong:
        title = f"Highest-loss images ({n_wrong} wrong of {len(labels)})"
    else:
        title = f"No wrong predictions among {len(labels)}: the {len(order)} least certain images"
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_lr_find(learning_rates, losses, smoothed, suggestion: float, path, title: str = "Learning-rate finder") -> Path:
    """Loss against learning rate (log scale): each step faint, the smoothed curve solid, the suggestion marked."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(learning_rates, losses, color="#90a4ae", linewidth=0.8, label="loss per step")
    ax.plot(learning_rates, smoothed, color="#1565c0", linewidth=2, label="smoothed")
    at = int(np.argmin(np.abs(np.log(np.asarray(learning_rates)) - np.log(suggestion))))
    ax.plot([suggestion], [smoothed[at]], "o", color="#e65100", markersize=9,
            label=f"suggested learning rate {suggestion:.2g}")
    ax.set_xscale("log")
    low, high = min(smoothed), max(smoothed[: max(3, len(smoothed) * 9 // 10)])
    ax.set_ylim(low - 0.05 * (high - low + 1e-9), high + 0.15 * (high - low + 1e-9))
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title(textwrap.fill(title, 80), fontsize=10)  # a long stage name wraps inside the figure
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=9)
    fig.tight_layout()
    return _save(fig, path)
