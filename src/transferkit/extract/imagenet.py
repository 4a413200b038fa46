"""Classifying images into the 1000 ImageNet classes with a backbone's own classifier (offline for the
EfficientNet-Lite backbones)."""

from __future__ import annotations

from .. import backend
from ..backbones.build import build_feature_model
from ..backbones.imagenet import top_k
from ..backbones.registry import get_backbone
from ..data.folder import index_images
from ..errors import TransferkitError
from .extractor import Extractor
from .reader import ImageReader


def predict_imagenet(images, *, model: str = "efficientnet_lite0", top: int = 5, weights="imagenet",
                     batch_size: int = 16, precision: str = "auto", input_size: int | None = None):
    """Classify images into the 1000 ImageNet classes with a backbone's own classifier.

    Args:
        images: a folder, an image file or a list of files.
        model: any registry backbone with ImageNet weights.
        top: how many classes to return per image.
        weights, batch_size, precision: as in `extract`.
        input_size: defaults to the model's (its classifier needs that size).

    Returns:
        (rows, skipped): rows are (path, [(class index, name, probability), ...]) in
        file order; skipped are {"path", "reason"} for unreadable files.

    Example:
    >>> rows, _ = predict_imagenet("photos/", top=3)  # doctest: +SKIP
    >>> rows[0]  # doctest: +SKIP
    ('cat.png', [(282, 'tiger cat', 0.38), (285, 'Egyptian cat', 0.37), (281, 'tabby, tabby cat', 0.17)])
    """
    spec = get_backbone(model)
    if isinstance(top, bool) or not isinstance(top, int) or not 1 <= top <= 1000:
        raise TransferkitError(f"`top` must be an integer from 1 to 1000. Received: top={top!r}")
    index = index_images(images, labels="none")
    fm = build_feature_model(spec, [spec.top_layers[-1]], input_size=input_size, weights=weights,
                             precision=backend.resolve_precision(precision, spec.cpu_bfloat16))
    if fm.shapes[0] != (1000,):
        raise TransferkitError(f"{spec.name}'s classifier has {fm.shapes[0]} outputs, not the 1000 ImageNet classes.")
    extractor = Extractor(fm, batch_size=batch_size)
    reader = ImageReader(index, fm.input_config, batch_size=batch_size)
    rows, skipped = [], []
    for batch in reader.iter_range(0, len(index)):
        if len(batch.positions):
            probs = extractor(batch.images)[fm.layers[0]]
            for pos, best in zip(batch.positions, top_k(probs, top)):
                rows.append((index.paths[pos], best))
        skipped += [{"path": index.paths[i], "reason": r} for i, r in batch.errors]
    return rows, skipped
