"""NumPy metrics behind ``Task.score``: F1 per label or class, macro F1, and the concordance correlation.

They take plain arrays (no torch), so they score predictions collected from any source. These are the
project's only definitions of F1, macro F1 and CCC: ``affect_data.metrics`` composes its ABAW scores from
them (``docs/design.md``, section "Metrics").

- F1 of a label or class that has no positive in the truth and none in the decisions is ``0 / 0``; it is
  ``zero_division`` (default 0.0, scikit-learn's default).
- Macro F1 averages the classes present in the truth or the prediction, as
  ``sklearn.metrics.f1_score(average="macro")``: a class absent from both does not enter the mean.
- CCC of two series whose denominator is 0 (both constant and equal) is 0, the value the training loss
  (:func:`mtl_distill.tasks.concordance_loss`) uses too, so that a score never becomes NaN.
"""

from __future__ import annotations

import numpy as np

__all__ = ["binary_f1", "concordance_correlation", "macro_f1"]


def binary_f1(decisions: np.ndarray, targets: np.ndarray, zero_division: float = 0.0) -> np.ndarray:
    """F1 of each column of 0/1 ``decisions`` against 0/1 ``targets``, both ``[n, L]``.

    Parameters
    ----------
    decisions, targets : array-like of shape (n, L)
        0/1 (or boolean) decisions and ground truth.
    zero_division : float, default 0.0
        F1 of a column with no positive target and no positive decision (as scikit-learn's parameter).

    Returns
    -------
    numpy.ndarray of shape (L,)

    Example
    -------
    >>> binary_f1(np.array([[1, 0], [1, 1]]), np.array([[1, 0], [0, 1]])).round(3).tolist()
    [0.667, 1.0]
    >>> binary_f1(np.zeros((2, 1)), np.zeros((2, 1)), zero_division=1.0).tolist()
    [1.0]
    """
    decisions = np.asarray(decisions).astype(bool)
    targets = np.asarray(targets).astype(bool)
    true_positives = np.sum(decisions & targets, axis=0)
    denominator = np.sum(decisions, axis=0) + np.sum(targets, axis=0)
    return np.divide(
        2.0 * true_positives,
        denominator,
        out=np.full(denominator.shape, float(zero_division)),
        where=denominator > 0,
    )


def macro_f1(
    predicted: np.ndarray, targets: np.ndarray, num_classes: int, zero_division: float = 0.0
) -> tuple[float, np.ndarray]:
    """Macro F1 of class indices: the mean over the classes present in ``targets`` or ``predicted``.

    Parameters
    ----------
    predicted, targets : array-like of shape (n,)
        Predicted and true class indices in ``0 .. num_classes - 1``.
    num_classes : int
        Number of classes.
    zero_division : float, default 0.0
        F1 reported for a class absent from both arrays; such a class never enters the macro average.

    Returns
    -------
    tuple of (float, numpy.ndarray of shape (num_classes,))
        The macro F1, exactly ``sklearn.metrics.f1_score(average="macro")``, and the F1 of every class.

    Example
    -------
    >>> score, per_class = macro_f1(np.array([0, 1, 1]), np.array([0, 1, 2]), num_classes=4)
    >>> round(score, 3), per_class.round(3).tolist()
    (0.556, [1.0, 0.667, 0.0, 0.0])
    """
    classes = np.arange(num_classes)
    decisions = np.asarray(predicted)[:, None] == classes
    truth = np.asarray(targets)[:, None] == classes
    per_class = binary_f1(decisions, truth, zero_division)
    present = decisions.any(axis=0) | truth.any(axis=0)
    return float(per_class[present].mean()), per_class


def concordance_correlation(predictions: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Concordance correlation coefficient (Eq. 8, population statistics) of each column of ``[n, D]`` arrays.

    ``2 cov(y, p) / (var(y) + var(p) + (mean(y) - mean(p))^2)``. The coefficient is symmetric in its two
    arguments. A column whose denominator is 0 (both constant and equal) scores 0: the coefficient is
    undefined there, and 0 keeps model selection and averages free of NaN.

    Example
    -------
    >>> y = np.array([[0.0], [0.5], [1.0]])
    >>> concordance_correlation(y, y).tolist(), concordance_correlation(y / 2, y).round(3).tolist()
    ([1.0], [0.615])
    >>> concordance_correlation(np.full((3, 1), 0.5), np.full((3, 1), 0.5)).tolist()
    [0.0]
    """
    predictions = np.asarray(predictions, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    mean_p, mean_y = predictions.mean(axis=0), targets.mean(axis=0)
    covariance = ((predictions - mean_p) * (targets - mean_y)).mean(axis=0)
    denominator = predictions.var(axis=0) + targets.var(axis=0) + (mean_p - mean_y) ** 2
    return np.divide(2.0 * covariance, denominator, out=np.zeros(denominator.shape), where=denominator > 0)
