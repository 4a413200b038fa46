"""Classifier heads (Dense → Dropout → sigmoid/softmax) and fitting them on cached features with `model.fit`."""

from __future__ import annotations

import numpy as np

from ..errors import TransferkitError


def build_head(input_shape, n_classes: int, *, hidden: int = 256, dropout: float = 0.5, pooling: str = "flatten",
               name: str = "head"):
    """A small dense classifier: [pooling] → `{name}_core`: Dense(hidden, relu) → Dropout → Dense.

    The core is a nested model of its own, so the `features` strategy can fit it on pooled feature vectors
    extracted once, while the saved classifier pools the base's map with the same layer.

    Args:
        input_shape: feature shape without the batch axis, e.g. (4, 4, 512) or (1280,).
        n_classes: number of classes (2 gives one sigmoid unit, as in the cats-vs-dogs tutorial).
        hidden: units of the hidden layer (0 for a linear classifier).
        dropout: dropout rate before the output layer.
        pooling: for a feature map: "flatten" (the tutorial's), "avg" or "max" (global pooling).

    Example:
    >>> head = build_head((4, 4, 512), 2)  # doctest: +SKIP
    >>> head.output.shape  # doctest: +SKIP
    (None, 1)
    """
    import keras
    from keras import layers

    from ..backbones.registry import HEAD_POOLINGS
    from ..errors import check_one_of

    if n_classes < 2:
        raise TransferkitError(f"Training needs at least 2 classes. Received: {n_classes} class(es).")
    check_one_of("pooling", pooling, HEAD_POOLINGS)
    inputs = keras.Input(shape=tuple(input_shape), name=f"{name}_input")
    x = inputs
    if len(input_shape) > 1:
        pool = {"flatten": layers.Flatten, "avg": layers.GlobalAveragePooling2D, "max": layers.GlobalMaxPooling2D}
        x = pool[pooling](name=f"{name}_{pooling}_pool" if pooling != "flatten" else f"{name}_flatten")(x)
    core = _head_core(int(x.shape[-1]), n_classes, hidden=hidden, dropout=dropout, name=f"{name}_core")
    return keras.Model(inputs, core(x), name=name)


def _head_core(width: int, n_classes: int, *, hidden: int, dropout: float, name: str):
    import keras
    from keras import layers

    inputs = keras.Input(shape=(width,), name=f"{name}_input")
    x = inputs
    if hidden:
        x = layers.Dense(hidden, activation="relu", name=f"{name}_dense")(x)
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    binary = n_classes == 2
    # Outputs stay float32 under mixed precision so losses and probabilities are exact.
    out = layers.Dense(1 if binary else n_classes, activation="sigmoid" if binary else "softmax",
                       dtype="float32", name=f"{name}_output")(x)
    return keras.Model(inputs, out, name=name)


def _variable_key(variable) -> str:
    # Keras variables have a path; the TensorFlow backend hands update_step the tf.Variable ("path:0")
    return getattr(variable, "path", None) or str(variable.name).split(":")[0]


def make_optimizer(name: str, learning_rate: float, rate_factors: dict[str, float] | None = None):
    """A Keras optimizer by name; with `rate_factors` ({variable path: factor}), each of those variables trains
    at learning rate × factor — discriminative fine-tuning (Howard & Ruder 2018) — while the schedule still sets
    the one base rate. Keras has no per-variable rates, so the optimizer's own `update_step` is given the scaled
    rate (for every optimizer, adaptive ones included, where scaling the gradient instead would do nothing)."""
    import keras

    opt = keras.optimizers.get({"class_name": name, "config": {"learning_rate": learning_rate}})
    if not rate_factors:
        return opt
    factors = dict(rate_factors)

    class LayerRates(type(opt)):
        def update_step(self, gradient, variable, learning_rate):
            factor = factors.get(_variable_key(variable))
            return super().update_step(gradient, variable, learning_rate if factor is None else learning_rate * factor)

    return LayerRates(**opt.get_config())


def compile_classifier(model, n_classes: int, *, learning_rate: float = 1e-3, optimizer: str = "adam",
                       label_smoothing: float = 0.0, onehot: bool = False, rate_factors: dict | None = None):
    """Compile with the loss and accuracy metric matching the head's output and targets: one sigmoid unit and
    0/1 targets for two classes; softmax with class indices, or with one-hot targets (`onehot`, as label smoothing
    and mixup need them) for more. `label_smoothing` ε moves targets ε towards uniform (Szegedy et al. 2016)."""
    import keras

    opt = make_optimizer(optimizer, learning_rate, rate_factors)
    if n_classes == 2:
        loss = keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing)
        metric = keras.metrics.BinaryAccuracy(name="accuracy")
    elif onehot or label_smoothing:
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)
        metric = keras.metrics.CategoricalAccuracy(name="accuracy")
    else:
        loss = keras.losses.SparseCategoricalCrossentropy()
        metric = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    model.compile(optimizer=opt, loss=loss, metrics=[metric])
    return model


def fit_head(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, *, n_classes=None,
             epochs: int = 30, batch_size: int = 32, learning_rate: float = 1e-3, hidden: int = 256,
             dropout: float = 0.5, seed: int = 0, verbose: int = 0, callbacks=None):
    """Train a dense head on cached features (the tutorial's fast "features" strategy).

    Args:
        x_train, y_train: features and integer labels for training.
        x_val, y_val: the same for validation (never augmented, never trained on).
        n_classes: defaults to 1 + the largest label.
        epochs, batch_size, learning_rate, hidden, dropout: training settings.
        seed: makes the initialisation and shuffling reproducible.

    Returns:
        (model, history) where history maps "accuracy", "loss", "val_accuracy", "val_loss" to per-epoch lists.

    Example:
    >>> model, hist = fit_head(train.matrix, train.labels, val.matrix, val.labels, epochs=30)  # doctest: +SKIP
    >>> hist["val_accuracy"][-1]  # doctest: +SKIP
    0.9
    """
    import keras

    n_classes = int(n_classes or (max(int(y_train.max()), int(y_val.max())) + 1))
    keras.utils.set_random_seed(seed)
    model = compile_classifier(build_head(x_train.shape[1:], n_classes, hidden=hidden, dropout=dropout),
                               n_classes, learning_rate=learning_rate)
    hist = model.fit(x_train, y_train.astype("float32" if n_classes == 2 else "int32"),
                     validation_data=(x_val, y_val.astype("float32" if n_classes == 2 else "int32")),
                     epochs=epochs, batch_size=batch_size, verbose=verbose, callbacks=callbacks or [])
    return model, {k: [float(v) for v in vals] for k, vals in hist.history.items()}
