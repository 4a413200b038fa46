"""Classification metrics (accuracy, loss, per-class precision/recall/F1, confusion) and their pictures."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def probabilities_2d(probs: np.ndarray) -> np.ndarray:
    """(n, 1) sigmoid outputs become (n, 2) class probabilities; softmax outputs pass through."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim == 2 and probs.shape[1] == 1:
        return np.concatenate([1 - probs, probs], axis=1)
    return probs


def classification_metrics(probs: np.ndarray, labels: np.ndarray, class_names: list[str]) -> dict:
    """Accuracy, cross-entropy loss, per-class precision/recall/F1/support and the confusion matrix.

    Example:
    >>> m = classification_metrics(np.array([[0.9], [0.2]]), np.array([1, 0]), ["cat", "dog"])
    >>> m["accuracy"]
    1.0
    """
    p = probabilities_2d(probs)
    labels = np.asarray(labels, dtype=int)
    pred = p.argmax(axis=1)
    k = len(class_names)
    confusion = np.zeros((k, k), dtype=int)
    np.add.at(confusion, (labels, pred), 1)
    per_class = {}
    for c, name in enumerate(class_names):
        tp = confusion[c, c]
        precision = tp / confusion[:, c].sum() if confusion[:, c].sum() else 0.0
        recall = tp / confusion[c].sum() if confusion[c].sum() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": float(precision), "recall": float(recall), "f1": float(f1),
                           "support": int(confusion[c].sum())}
    eps = 1e-7
    loss = float(-np.mean(np.log(np.clip(p[np.arange(len(labels)), labels], eps, 1.0)))) if len(labels) else 0.0
    return {"accuracy": float((pred == labels).mean()) if len(labels) else 0.0, "loss": loss,
            "n": int(len(labels)), "per_class": per_class, "confusion": confusion.tolist(),
            "class_names": list(class_names)}


def plot_confusion(metrics: dict, path) -> Path:
    """The confusion matrix as a labelled heat map."""
    from ..viz.plots import _plt, _save

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
    """The k most confidently wrong images with their true and predicted class."""
    from PIL import Image

    from ..viz.plots import _plt, _save

    plt = _plt()
    p = probabilities_2d(probs)
    labels = np.asarray(labels, dtype=int)
    wrong = np.flatnonzero(p.argmax(1) != labels)
    order = wrong[np.argsort(-p[wrong].max(1))][:k]
    cols = 3
    rows = max(1, int(np.ceil(len(order) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, order):
        try:
            with Image.open(Path(root) / paths[i]) as im:
                ax.imshow(im.convert("RGB"))
        except OSError:
            pass
        pred = int(p[i].argmax())
        ax.set_title(f"true {class_names[labels[i]]}\npred {class_names[pred]} ({p[i, pred]:.0%})", fontsize=9)
    fig.suptitle(f"Most confidently wrong ({len(wrong)} wrong of {len(labels)})" if len(wrong)
                 else f"No wrong predictions among {len(labels)}")
    fig.tight_layout()
    return _save(fig, path)
