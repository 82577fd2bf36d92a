"""NumPy metrics behind ``Task.score``: F1 per label or class, and the concordance correlation coefficient.

They take plain arrays (no torch), so they score predictions collected from any source.
"""

from __future__ import annotations

import numpy as np

__all__ = ["binary_f1", "concordance_correlation", "macro_f1"]


def binary_f1(decisions: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """F1 of each column of 0/1 ``decisions`` against 0/1 ``targets``, both ``[n, L]``.

    A column with no positive target and no positive decision scores 0 (as scikit-learn's default).

    Example
    -------
    >>> binary_f1(np.array([[1, 0], [1, 1]]), np.array([[1, 0], [0, 1]])).round(3).tolist()
    [0.667, 1.0]
    """
    decisions = np.asarray(decisions).astype(bool)
    targets = np.asarray(targets).astype(bool)
    true_positives = np.sum(decisions & targets, axis=0)
    denominator = np.sum(decisions, axis=0) + np.sum(targets, axis=0)
    return np.divide(
        2.0 * true_positives, denominator, out=np.zeros(denominator.shape), where=denominator > 0
    )


def macro_f1(predicted: np.ndarray, targets: np.ndarray, num_classes: int) -> tuple[float, np.ndarray]:
    """Macro F1 of class indices: the mean over the classes present in ``targets`` or ``predicted``.

    Returns the macro F1 and the F1 of every class ``0 .. num_classes - 1`` (0 for an absent class). The macro
    average skips classes absent from both arrays, exactly as ``sklearn.metrics.f1_score(average="macro")``.

    Example
    -------
    >>> score, per_class = macro_f1(np.array([0, 1, 1]), np.array([0, 1, 2]), num_classes=4)
    >>> round(score, 3), per_class.round(3).tolist()
    (0.556, [1.0, 0.667, 0.0, 0.0])
    """
    classes = np.arange(num_classes)
    decisions = np.asarray(predicted)[:, None] == classes
    truth = np.asarray(targets)[:, None] == classes
    per_class = binary_f1(decisions, truth)
    present = decisions.any(axis=0) | truth.any(axis=0)
    return float(per_class[present].mean()), per_class


def concordance_correlation(predictions: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Concordance correlation coefficient (Eq. 8, population statistics) of each column of ``[n, D]`` arrays.

    ``2 cov(y, p) / (var(y) + var(p) + (mean(y) - mean(p))^2)``; a column where both are constant and equal
    scores 0.

    Example
    -------
    >>> y = np.array([[0.0], [0.5], [1.0]])
    >>> concordance_correlation(y, y).tolist(), concordance_correlation(y / 2, y).round(3).tolist()
    ([1.0], [0.615])
    """
    predictions = np.asarray(predictions, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    mean_p, mean_y = predictions.mean(axis=0), targets.mean(axis=0)
    covariance = ((predictions - mean_p) * (targets - mean_y)).mean(axis=0)
    denominator = predictions.var(axis=0) + targets.var(axis=0) + (mean_p - mean_y) ** 2
    return np.divide(2.0 * covariance, denominator, out=np.zeros(denominator.shape), where=denominator > 0)
