"""2-D projections of feature rows (PCA with NumPy, or t-SNE with scikit-learn) for maps and plots."""

from __future__ import annotations

import numpy as np

from ..errors import TransferkitError, install_hint, one_of_message


def project_2d(x: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """Project rows of `x` to 2-D with PCA (NumPy SVD) or t-SNE (scikit-learn)."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    if len(x) < 2:
        raise TransferkitError(f"An embedding plot needs at least 2 rows. Received: {len(x)}")
    if method == "pca":
        centred = x - x.mean(axis=0)
        u, s, _ = np.linalg.svd(centred, full_matrices=False)
        out = u[:, :2] * s[:2]
        return out if out.shape[1] == 2 else np.column_stack([out, np.zeros(len(x))])
    if method == "tsne":
        try:
            from sklearn.manifold import TSNE
        except ImportError:
            raise TransferkitError(f"t-SNE needs scikit-learn: {install_hint('audit')}.") from None
        return TSNE(n_components=2, random_state=seed, perplexity=min(30.0, (len(x) - 1) / 3)).fit_transform(x)
    raise TransferkitError(one_of_message("method", method, ["pca", "tsne"]))
