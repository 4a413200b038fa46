"""Classification metrics: accuracy, loss, per-class precision/recall/F1, confusion matrix."""

from __future__ import annotations

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
