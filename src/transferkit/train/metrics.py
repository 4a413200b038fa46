"""Classification metrics: accuracy, top-k accuracy, loss, ROC-AUC, per-class precision/recall/F1, confusion."""

from __future__ import annotations

import numpy as np


def probabilities_2d(probs: np.ndarray) -> np.ndarray:
    """(n, 1) sigmoid outputs become (n, 2) class probabilities; softmax outputs pass through."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim == 2 and probs.shape[1] == 1:
        return np.concatenate([1 - probs, probs], axis=1)
    return probs


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """Area under the ROC curve of `scores` for the boolean `positive` (Mann-Whitney, ties count half);
    None when only one class is present.

    Example:
    >>> roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([False, False, True, True]))
    0.75
    """
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = np.asarray(scores)[order]
    ranks = np.empty(len(order))
    # average rank within each run of equal scores
    _, start, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    for s, c in zip(start, counts):
        ranks[order[s:s + c]] = s + (c + 1) / 2
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


# top-k accuracies reported when there are more than k classes
TOP_K = (3, 5)


def classification_metrics(probs: np.ndarray, labels: np.ndarray, class_names: list[str]) -> dict:
    """Accuracy, cross-entropy loss, per-class precision/recall/F1/support and the confusion matrix.

    `roc_auc`: binary tasks, the second class is the positive one; more classes, the mean of one-vs-rest
    AUCs over the classes present (None when it cannot be computed). `top_k_accuracy`: {k: accuracy} for
    each k in `TOP_K` smaller than the number of classes.

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
    if k == 2:
        auc = roc_auc(p[:, 1], labels == 1) if len(labels) else None
    else:
        aucs = [roc_auc(p[:, c], labels == c) for c in range(k)] if len(labels) else []
        aucs = [a for a in aucs if a is not None]
        auc = float(np.mean(aucs)) if aucs else None
    ranked = np.argsort(-p, axis=1, kind="stable")
    top_k = {str(t): float((ranked[:, :t] == labels[:, None]).any(axis=1).mean()) if len(labels) else 0.0
             for t in TOP_K if t < k}
    return {"accuracy": float((pred == labels).mean()) if len(labels) else 0.0, "loss": loss,
            "roc_auc": auc, "top_k_accuracy": top_k, "n": int(len(labels)), "per_class": per_class,
            "confusion": confusion.tolist(),
            "class_names": list(class_names)}
