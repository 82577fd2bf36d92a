"""The ABAW 2020 challenge metrics for the three tasks, with missing labels skipped.

- AU: ``0.5 * mean over the 8 AUs of binary F1 + 0.5 * accuracy over all N x 8 AU decisions``.
- EXPR: ``0.67 * macro F1 + 0.33 * accuracy`` over the 7 classes.
- VA: the concordance correlation coefficient (CCC) of valence and of arousal, with population statistics;
  the score is their mean.

Every function takes ground truth first and predictions second (numpy arrays, torch CPU tensors, pandas
objects or lists) and returns a plain dict whose ``"score"`` is the challenge total and whose other keys are
its parts, so that it can be logged or dumped to JSON as is.

Missing labels are NaN (or ``pd.NA``) in the ground truth, as in the frame table, and are excluded: a frame
without a label for a task does not count for that task, and a missing AU value removes that one decision from
both the AU's F1 and the accuracy. Predictions must be complete: a NaN prediction is an error.

F1, macro F1 and CCC are not defined here: every score is composed from :mod:`mtl_distill.metrics`, the
project's one definition of each, which the trainer's per-epoch scores use too (``docs/design.md`` section 5).
So F1 of a label with neither true nor predicted positives is ``zero_division`` (default 0.0, scikit-learn's
default); macro F1 averages the classes present in the truth or the prediction, as scikit-learn's
``f1_score(average="macro")`` (on frames that hold all 7 classes, the 7-class mean); and the CCC of two
series that are constant and equal is 0. ``mtl_distill.metrics`` is imported on first use, not with this
module: the ``mtl_distill`` package imports torch, and ``import affect_data`` stays free of torch.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from affect_data.schema import AU_NAMES, EXPR_NAMES, VA_NAMES

AU_F1_WEIGHT = 0.5
EXPR_F1_WEIGHT = 0.67
EXPR_ACCURACY_WEIGHT = 0.33


def au_score(
    y_true, y_pred, threshold: float | np.ndarray | None = None, zero_division: float = 0.0
) -> dict[str, object]:
    """Score facial action unit detection: ``0.5 * mean F1 + 0.5 * accuracy`` over the 8 AUs.

    Parameters
    ----------
    y_true : array-like of shape (N, 8)
        0/1 ground truth; NaN where a value is missing. Rows with no AU label at all are skipped, and a single
        missing value removes that decision only.
    y_pred : array-like of shape (N, 8)
        0/1 decisions, or scores when ``threshold`` is given.
    threshold : float or array-like of shape (8,), optional
        If given, ``y_pred >= threshold`` (per AU when an array) gives the decisions.
    zero_division : float, default 0.0
        F1 of an AU with neither true nor predicted positives.

    Returns
    -------
    dict
        ``score`` (the total), ``mean_f1``, ``accuracy``, ``f1`` (dict AU name -> F1) and ``n_frames`` (rows
        with at least one AU label). An AU that ``y_true`` never labels (a whole column missing) has F1 NaN
        and is left out of ``mean_f1``.

    Raises
    ------
    ValueError
        On shape mismatches, values other than 0/1, NaN predictions, or no labelled value at all.

    Examples
    --------
    >>> r = au_score([[1, 0, 0, 0, 1, 0, 0, 1]] * 2, [[1, 0, 0, 0, 0, 0, 0, 1]] * 2)
    >>> round(r["score"], 4), round(r["accuracy"], 4), r["f1"]["AU12"]
    (0.5625, 0.875, 0.0)
    """
    truth = _as_float_array(y_true, "y_true")
    pred = _as_float_array(y_pred, "y_pred")
    n_labels = len(AU_NAMES)
    _check_shape(truth, (None, n_labels), "y_true")
    _check_shape(pred, (len(truth), n_labels), "y_pred", against=truth.shape)
    _check_no_nan(pred, "y_pred")
    if threshold is not None:
        cut = np.asarray(threshold, dtype=np.float64)
        if cut.shape not in ((), (n_labels,)):
            raise ValueError(f"threshold must be a number or {n_labels} numbers, got shape {cut.shape}")
        pred = (pred >= cut).astype(np.float64)
    _check_binary(pred, "y_pred", hint=" (pass threshold= to score probabilities)")
    labelled = ~np.isnan(truth)
    _check_binary(truth[labelled], "y_true")
    if not labelled.any():
        raise ValueError("au_score: y_true holds no AU label (all values are missing)")

    from mtl_distill.metrics import binary_f1

    # A missing value is neither a true nor a predicted positive: it adds to no count of its AU's F1.
    t = (truth == 1) & labelled
    p = (pred == 1) & labelled
    f1 = binary_f1(p, t, zero_division)
    # An AU without a single label (AU20 in the ABAW 2021+ files) has no F1; scoring it 0 would cap the mean.
    scored = labelled.any(axis=0)
    f1 = np.where(scored, f1, np.nan)
    accuracy = float(((t == p) & labelled).sum() / labelled.sum())
    mean_f1 = float(f1[scored].mean())
    return {
        "score": AU_F1_WEIGHT * mean_f1 + (1 - AU_F1_WEIGHT) * accuracy,
        "mean_f1": mean_f1,
        "accuracy": accuracy,
        "f1": dict(zip(AU_NAMES, f1.tolist(), strict=True)),
        "n_frames": int(labelled.any(axis=1).sum()),
    }


def expr_score(y_true, y_pred, zero_division: float = 0.0) -> dict[str, object]:
    """Score expression classification: ``0.67 * macro F1 + 0.33 * accuracy``.

    Parameters
    ----------
    y_true : array-like of shape (N,)
        Class indices 0..6 in Aff-Wild2 order; NaN where missing (those frames are skipped).
    y_pred : array-like of shape (N,) or (N, 7)
        Class indices, or per-class scores / probabilities whose argmax is the prediction.
    zero_division : float, default 0.0
        F1 reported in ``f1`` for a class with neither true nor predicted samples; such a class does not
        enter ``macro_f1``.

    Returns
    -------
    dict
        ``score``, ``macro_f1`` (over the classes present in the truth or the prediction), ``accuracy``,
        ``f1`` (dict class name -> F1) and ``n_frames``.

    Raises
    ------
    ValueError
        On shape mismatches, class indices outside 0..6, NaN predictions, or no labelled frame.

    Examples
    --------
    >>> r = expr_score([0, 4, 4, 6], [0, 4, 0, 6])
    >>> round(r["accuracy"], 2), round(r["f1"]["Happiness"], 4)
    (0.75, 0.6667)
    """
    n_classes = len(EXPR_NAMES)
    truth = _as_float_array(y_true, "y_true")
    pred = _as_float_array(y_pred, "y_pred")
    _check_shape(truth, (None,), "y_true")
    _check_no_nan(pred, "y_pred")
    if pred.ndim == 2:
        _check_shape(pred, (len(truth), n_classes), "y_pred", against=truth.shape)
        pred = pred.argmax(axis=1).astype(np.float64)
    _check_shape(pred, (len(truth),), "y_pred", against=truth.shape)
    labelled = ~np.isnan(truth)
    if not labelled.any():
        raise ValueError("expr_score: y_true holds no expression label (all values are missing)")
    truth, pred = truth[labelled], pred[labelled]
    _check_classes(truth, n_classes, "y_true")
    _check_classes(pred, n_classes, "y_pred")

    from mtl_distill.metrics import macro_f1 as shared_macro_f1

    truth, pred = truth.astype(np.int64), pred.astype(np.int64)
    macro_f1, f1 = shared_macro_f1(pred, truth, n_classes, zero_division)
    accuracy = float((truth == pred).mean())
    return {
        "score": EXPR_F1_WEIGHT * macro_f1 + EXPR_ACCURACY_WEIGHT * accuracy,
        "macro_f1": macro_f1,
        "accuracy": accuracy,
        "f1": dict(zip(EXPR_NAMES, f1.tolist(), strict=True)),
        "n_frames": len(truth),
    }


def ccc(x, y) -> float:
    """Concordance correlation coefficient ``2 cov(x, y) / (var x + var y + (mean x - mean y) ** 2)``.

    Population statistics (divide by N), as :func:`mtl_distill.metrics.concordance_correlation`, which
    computes it. Pairs where either value is NaN are skipped. When both series are constant and equal the
    coefficient is ``0 / 0``; it is 0 then, as in the trainer's scores.

    Parameters
    ----------
    x, y : array-like of shape (N,)
        Ground truth and prediction (the coefficient is symmetric).

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If the shapes differ or no pair is complete.

    Examples
    --------
    >>> round(ccc([0.1, 0.4, -0.3], [0.1, 0.4, -0.3]), 6)
    1.0
    >>> round(ccc([-1.0, 1.0], [-0.5, 0.5]), 4)
    0.8
    >>> ccc([0.5, 0.5], [0.5, 0.5])
    0.0
    """
    a = _as_float_array(x, "x")
    b = _as_float_array(y, "y")
    _check_shape(a, (None,), "x")
    _check_shape(b, (len(a),), "y", against=a.shape)
    keep = ~(np.isnan(a) | np.isnan(b))
    if not keep.any():
        raise ValueError("ccc: no pair of x and y is complete (every pair holds a NaN)")
    from mtl_distill.metrics import concordance_correlation

    return float(concordance_correlation(a[keep, None], b[keep, None])[0])


def va_score(y_true, y_pred) -> dict[str, object]:
    """Score valence-arousal estimation: the CCC of each dimension and their mean.

    Parameters
    ----------
    y_true : array-like of shape (N, 2)
        Columns valence, arousal; NaN where missing (skipped per dimension).
    y_pred : array-like of shape (N, 2)

    Returns
    -------
    dict
        ``score`` (mean of the two CCCs), ``ccc`` (dict ``valence``/``arousal`` -> CCC) and ``n_frames`` (rows
        with at least one value).

    Raises
    ------
    ValueError
        On shape mismatches, NaN predictions, or a dimension without any label.

    Examples
    --------
    >>> r = va_score([[0.5, -0.2], [-0.5, 0.2]], [[0.5, -0.2], [-0.5, 0.2]])
    >>> r["score"], r["ccc"]["arousal"]
    (1.0, 1.0)
    """
    truth = _as_float_array(y_true, "y_true")
    pred = _as_float_array(y_pred, "y_pred")
    _check_shape(truth, (None, len(VA_NAMES)), "y_true")
    _check_shape(pred, (len(truth), len(VA_NAMES)), "y_pred", against=truth.shape)
    _check_no_nan(pred, "y_pred")
    per_dim = {}
    for column, name in enumerate(VA_NAMES):
        if np.isnan(truth[:, column]).all():
            raise ValueError(f"va_score: y_true holds no {name} label (all values are missing)")
        per_dim[name] = ccc(truth[:, column], pred[:, column])
    return {
        "score": float(np.mean(list(per_dim.values()))),
        "ccc": per_dim,
        "n_frames": int((~np.isnan(truth)).any(axis=1).sum()),
    }


def abaw_selection_score(task_scores: Mapping[str, Mapping[str, float]]) -> float:
    """The mean ABAW 2020 score of the tasks, from a trainer's per-task scores: a model selection rule.

    ``task_scores`` is what ``mtl_distill.evaluate`` returns for the tasks ``AU`` (a multi-label task:
    ``score`` = mean F1 at threshold 0.5, ``accuracy``), ``EXPR`` (multi-class: ``score`` = macro F1,
    ``accuracy``) and ``VA`` (``score`` = mean CCC); tasks that are absent are left out of the mean. Each
    task's ABAW 2020 score is composed from those parts exactly as :func:`au_score`, :func:`expr_score` and
    :func:`va_score` compose theirs, so that ``mtl_distill.TrainConfig(selection=abaw_selection_score)`` keeps
    the epoch that the ABAW evaluation would rank first (AU at threshold 0.5). Both use the same F1, macro F1
    and CCC (:mod:`mtl_distill.metrics`), so the selection score of a model equals the mean of
    :func:`au_score` (threshold 0.5), :func:`expr_score` and :func:`va_score` on the same predictions.

    Examples
    --------
    >>> abaw_selection_score({
    ...     "AU": {"score": 0.5, "accuracy": 0.9},
    ...     "EXPR": {"score": 0.4, "accuracy": 0.7},
    ...     "VA": {"score": 0.3},
    ... })  # (0.7 + 0.499 + 0.3) / 3
    0.49966...
    """
    parts = []
    if "AU" in task_scores:
        au = task_scores["AU"]
        parts.append(AU_F1_WEIGHT * au["score"] + (1 - AU_F1_WEIGHT) * au["accuracy"])
    if "EXPR" in task_scores:
        expr = task_scores["EXPR"]
        parts.append(EXPR_F1_WEIGHT * expr["score"] + EXPR_ACCURACY_WEIGHT * expr["accuracy"])
    if "VA" in task_scores:
        parts.append(task_scores["VA"]["score"])
    if not parts:
        raise ValueError(f"abaw_selection_score needs scores of AU, EXPR or VA, got {sorted(task_scores)}")
    return float(np.mean(parts))


def _as_float_array(values, name: str) -> np.ndarray:
    """Convert array-likes (pandas nullable dtypes with ``pd.NA`` included) to float64, NaN for missing."""
    if isinstance(values, pd.DataFrame | pd.Series):
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    if hasattr(values, "detach"):  # a torch tensor; converting here keeps torch an optional input type
        values = values.detach().cpu().numpy()
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} cannot be read as numbers: {err}") from None


def _check_shape(array: np.ndarray, shape: tuple, name: str, against: tuple | None = None) -> None:
    ok = array.ndim == len(shape) and all(
        want is None or got == want for got, want in zip(array.shape, shape, strict=False)
    )
    if not ok:
        expected = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        detail = f" to match y_true {against}" if against is not None else ""
        raise ValueError(f"{name} has shape {array.shape}; expected {expected}{detail}")


def _check_no_nan(array: np.ndarray, name: str) -> None:
    if np.isnan(array).any():
        row = int(np.argwhere(np.isnan(array))[0][0])
        raise ValueError(f"{name} holds NaN (first at row {row}); predictions must be complete")


def _check_binary(values: np.ndarray, name: str, hint: str = "") -> None:
    bad = (values != 0) & (values != 1)
    if bad.any():
        raise ValueError(f"{name} must hold 0/1 decisions; found {values[bad].flat[0]}{hint}")


def _check_classes(values: np.ndarray, n_classes: int, name: str) -> None:
    bad = (values != np.round(values)) | (values < 0) | (values >= n_classes)
    if bad.any():
        raise ValueError(f"{name} must hold class indices 0..{n_classes - 1}; found {values[bad][0]}")
