"""A linear probe on feature vectors (a logistic regression): the classifier that audit and labelling fit in a
fraction of a second, where `train` fits a Keras head."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .data.folds import stratified_folds
from .errors import TransferkitError, install_hint


@dataclass
class Probe:
    """A fitted logistic regression (and the standardisation it was fitted after, if any).

    Attributes:
        classifier: scikit-learn's `LogisticRegression`.
        n_classes: columns of `predict_proba` (classes without a training row get probability 0).
        scaler: the `StandardScaler` applied first, or None for features standardised already.
    """

    classifier: object
    n_classes: int
    scaler: object | None = None

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities, (rows, n_classes), float64."""
        x = self.scaler.transform(x) if self.scaler is not None else x
        probs = np.zeros((len(x), self.n_classes), np.float64)
        probs[:, self.classifier.classes_] = self.classifier.predict_proba(x)
        return probs


def fit_probe(x: np.ndarray, labels: np.ndarray, n_classes: int, *, C: float, seed: int = 0,
              standardise: bool = True) -> Probe:
    """A logistic regression of `labels` on `x` (rows of feature vectors).

    Args:
        x: (rows, dim) features.
        labels: integer class of each row; at least two different classes.
        n_classes: how many classes there are in all (the probabilities' columns).
        C: inverse regularisation strength (smaller: simpler).
        seed: scikit-learn's random state.
        standardise: fit a `StandardScaler` on `x` first (False: `x` is standardised already).

    Example:
    >>> x = np.array([[0.0, 1.0], [0.1, 0.9], [1.0, 0.0], [0.9, 0.2]])
    >>> fit_probe(x, np.array([0, 0, 1, 1]), 2, C=1.0).predict_proba(x).argmax(axis=1).tolist()
    [0, 0, 1, 1]
    """
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler
    except ImportError:
        raise TransferkitError(f"A linear probe needs scikit-learn: {install_hint('audit')}.") from None
    scaler = StandardScaler().fit(x) if standardise else None
    classifier = LogisticRegression(C=C, max_iter=2000, random_state=seed)
    classifier.fit(scaler.transform(x) if scaler is not None else x, labels)
    return Probe(classifier, n_classes, scaler)


def out_of_fold_probabilities(x: np.ndarray, labels: np.ndarray, folds: int, seed: int = 0, class_names=None, *,
                              C: float, standardise: bool = True) -> np.ndarray:
    """Each row's class probabilities from a probe that never saw it: fitted on the other `folds` − 1 stratified
    folds (`stratified_folds`; every class needs `folds` rows).

    Example:
    >>> x = np.array([[0.0], [0.1], [0.2], [1.0], [1.1], [0.9]])
    >>> out_of_fold_probabilities(x, np.array([0, 0, 0, 1, 1, 1]), 3, C=1.0).argmax(axis=1).tolist()
    [0, 0, 0, 1, 1, 1]
    """
    assigned = stratified_folds(labels, folds, seed, class_names)
    n_classes = int(labels.max()) + 1 if class_names is None else len(class_names)
    probs = np.zeros((len(x), n_classes), np.float64)
    for k in range(folds):
        held = assigned == k
        probe = fit_probe(x[~held], labels[~held], n_classes, C=C, seed=seed, standardise=standardise)
        probs[held] = probe.predict_proba(x[held])
    return probs
