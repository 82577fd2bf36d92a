"""Imbalance measures of a multi-label data set (Charte et al. 2015, Neurocomputing 163).

All measures take a 0/1 label matrix ``Y`` (n_samples x n_labels) as a numpy array, a scipy.sparse matrix
(never densified) or a pandas DataFrame. A label with no positive sample has no defined IRLbl: it gets
``NaN``, an :class:`EmptyLabelWarning` names it, and the dataset figures are computed over the other labels.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._optional import import_optional
from ._validation import _BLOCK_ROWS, LabelMatrix, check_label_matrix

__all__ = ["Description", "EmptyLabelWarning", "cvir", "describe", "irlbl", "max_ir", "mean_ir", "scumble"]


class EmptyLabelWarning(UserWarning):
    """A label has no positive sample, so its imbalance ratio is undefined and it is left out."""


def irlbl_from_counts(counts: np.ndarray, names: list[str] | None = None) -> np.ndarray:
    """IRLbl per label from positive counts; ``NaN`` (with a warning) where a count is zero."""
    counts = np.asarray(counts, dtype=np.int64)
    empty = counts == 0
    if empty.all():
        raise ValueError("no label has a positive sample: the imbalance ratios are undefined")
    if empty.any():
        labels = [repr(names[i] if names else str(i)) for i in np.flatnonzero(empty)]
        warnings.warn(
            f"label(s) {', '.join(labels)} have no positive sample: IRLbl undefined, left out",
            EmptyLabelWarning,
            stacklevel=3,
        )
    ratios = np.full(counts.shape, np.nan)
    ratios[~empty] = counts.max() / counts[~empty]
    return ratios


def _irlbl(matrix: LabelMatrix) -> np.ndarray:
    return irlbl_from_counts(matrix.column_counts(), matrix.names)


def irlbl(Y: Any) -> np.ndarray:
    """Imbalance ratio per label: ``IRLbl(l) = max_l' count(l') / count(l)``.

    Parameters
    ----------
    Y : array-like, scipy.sparse matrix or pandas.DataFrame of shape (n_samples, n_labels)
        Binary label matrix.

    Returns
    -------
    numpy.ndarray of shape (n_labels,)
        1.0 for the most frequent label, larger for rarer ones, ``NaN`` for a label without positives.

    Examples
    --------
    >>> import numpy as np, imbalance
    >>> imbalance.irlbl(np.array([[1, 0], [1, 1], [1, 0], [1, 0]]))
    array([1., 4.])
    """
    return _irlbl(check_label_matrix(Y))


def max_ir(Y: Any) -> float:
    """Largest IRLbl over the labels with positive samples.

    Examples
    --------
    >>> import numpy as np, imbalance
    >>> imbalance.max_ir(np.array([[1, 0], [1, 1], [1, 0], [1, 0]]))
    4.0
    """
    return float(np.nanmax(irlbl(Y)))


def mean_ir(Y: Any) -> float:
    """MeanIR: the mean of IRLbl over the labels with positive samples.

    Examples
    --------
    >>> import numpy as np, imbalance
    >>> imbalance.mean_ir(np.array([[1, 0], [1, 1], [1, 0], [1, 0]]))
    2.5
    """
    return mean_of_defined(irlbl(Y))


def mean_of_defined(ratios: np.ndarray) -> float:
    """MeanIR from an IRLbl vector; the one formula that ML-ROS, ML-RUS and the measures share."""
    return float(np.mean(ratios[~np.isnan(ratios)]))


def cvir(Y: Any) -> float:
    """Coefficient of variation of IRLbl: ``std(IRLbl, ddof=1) / MeanIR``.

    Raises ``ValueError`` when fewer than two labels have positive samples.

    Examples
    --------
    >>> import numpy as np, imbalance
    >>> round(imbalance.cvir(np.array([[1, 0], [1, 1], [1, 0], [1, 0]])), 4)
    0.8485
    """
    ratios = irlbl(Y)
    return _cvir(ratios)


def _cvir(ratios: np.ndarray) -> float:
    defined = ratios[~np.isnan(ratios)]
    if defined.size < 2:
        raise ValueError("CVIR needs at least two labels with positive samples")
    return float(np.std(defined, ddof=1) / np.mean(defined))


def _scumble_scores(log_sum: np.ndarray, ratio_sum: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Instance SCUMBLE from the sums of log IRLbl and of IRLbl over its labels, and their number."""
    scores = np.zeros(sizes.shape)
    has_labels = sizes > 0
    size = sizes[has_labels]
    geometric = np.exp(log_sum[has_labels] / size)
    arithmetic = ratio_sum[has_labels] / size
    scores[has_labels] = 1.0 - geometric / arithmetic
    # A single label, or labels of equal IRLbl, give 0 up to rounding: never report -1e-16.
    return np.clip(scores, 0.0, None)


_MAX_LABELS_BY_LABELSET = 16


def _scumble_parts(matrix: LabelMatrix, ratios: np.ndarray) -> tuple[float, np.ndarray]:
    """Dataset SCUMBLE and, per label, the sum of instance SCUMBLE over the instances carrying it."""
    # Rows only carry labels with positives, so undefined (NaN) ratios never enter a sum.
    safe = np.where(np.isnan(ratios), 1.0, ratios)
    if not matrix.sparse and matrix.n_labels <= _MAX_LABELS_BY_LABELSET:
        # The score depends on the label set only: score each distinct set once (at most 2^16 of them).
        packed = np.packbits(matrix.values, axis=1, bitorder="little")
        codes = packed[:, 0].astype(np.int64)
        if packed.shape[1] > 1:
            codes |= packed[:, 1].astype(np.int64) << 8
        frequency = np.bincount(codes, minlength=1 << matrix.n_labels)
        present = np.flatnonzero(frequency)
        bits = ((present[:, None] >> np.arange(matrix.n_labels)) & 1).astype(np.float64)
        scores = _scumble_scores(bits @ np.log(safe), bits @ safe, bits.sum(axis=1))
        weighted = frequency[present] * scores
        return float(weighted.sum() / matrix.n_rows), weighted @ bits
    log_sum, sizes = matrix.row_weighted_sums(np.log(safe))
    ratio_sum, _ = matrix.row_weighted_sums(safe)
    scores = _scumble_scores(log_sum, ratio_sum, sizes)
    return float(scores.mean()), _label_sums(matrix, scores)


def scumble(Y: Any) -> float:
    """SCUMBLE: mean over instances of ``1 - geometric_mean(IRLbl) / arithmetic_mean(IRLbl)``.

    The per-instance score is taken over the instance's labels and is 0 for an empty label set. High values
    mean that rare labels mostly appear together with frequent ones, which limits what resampling can do.

    Examples
    --------
    >>> import numpy as np, imbalance
    >>> round(imbalance.scumble(np.array([[1, 0], [1, 1], [1, 0], [1, 0]])), 4)
    0.05
    """
    matrix = check_label_matrix(Y)
    return _scumble_parts(matrix, _irlbl(matrix))[0]


@dataclass(frozen=True)
class Description:
    """Per-label table and dataset figures returned by :func:`describe`."""

    labels: list[str]
    count: np.ndarray
    share: np.ndarray
    irlbl: np.ndarray
    scumble_per_label: np.ndarray
    n_samples: int
    n_labels: int
    cardinality: float
    max_ir: float
    mean_ir: float
    cvir: float
    scumble: float

    def to_frame(self):
        """The per-label table as a pandas DataFrame (needs pandas: ``pip install "imbalance[pandas]"``).

        Examples
        --------
        >>> import numpy as np, imbalance
        >>> imbalance.describe(np.array([[1, 0], [1, 1]])).to_frame()["count"].tolist()
        [2, 1]
        """
        pd = import_optional("pandas", "Description.to_frame()")

        return pd.DataFrame(
            {
                "count": self.count,
                "share": self.share,
                "IRLbl": self.irlbl,
                "SCUMBLE": self.scumble_per_label,
            },
            index=pd.Index(self.labels, name="label"),
        )

    def __str__(self) -> str:
        width = max(5, *(len(name) for name in self.labels))
        lines = [f"{'label':<{width}} {'count':>10} {'share':>7} {'IRLbl':>9} {'SCUMBLE':>8}"]
        for row in zip(self.labels, self.count, self.share, self.irlbl, self.scumble_per_label, strict=True):
            name, count, share, ratio, score = row
            lines.append(f"{name:<{width}} {count:>10d} {share:>7.3f} {ratio:>9.3f} {score:>8.4f}")
        lines.append(
            f"n={self.n_samples} labels={self.n_labels} cardinality={self.cardinality:.3f} "
            f"MaxIR={self.max_ir:.3f} "
            f"MeanIR={self.mean_ir:.3f} CVIR={self.cvir:.3f} SCUMBLE={self.scumble:.4f}"
        )
        return "\n".join(lines)


def describe(Y: Any) -> Description:
    """Per-label table (count, share, IRLbl, per-label SCUMBLE) and the dataset's imbalance figures.

    The per-label SCUMBLE is the mean instance SCUMBLE over the instances that carry the label. ``cvir`` is
    ``NaN`` when fewer than two labels have positive samples.

    Examples
    --------
    >>> import numpy as np, imbalance
    >>> d = imbalance.describe(np.array([[1, 0], [1, 1], [1, 0], [1, 0]]))
    >>> d.count.tolist(), d.mean_ir
    ([4, 1], 2.5)
    >>> print(d)  # doctest: +NORMALIZE_WHITESPACE
    label      count   share     IRLbl  SCUMBLE
    0              4   1.000     1.000   0.0500
    1              1   0.250     4.000   0.2000
    n=4 labels=2 cardinality=1.250 MaxIR=4.000 MeanIR=2.500 CVIR=0.849 SCUMBLE=0.0500
    """
    matrix = check_label_matrix(Y)
    counts = matrix.column_counts()
    ratios = irlbl_from_counts(counts, matrix.names)
    dataset_scumble, per_label_sum = _scumble_parts(matrix, ratios)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_label = np.where(counts > 0, per_label_sum / np.maximum(counts, 1), np.nan)
    defined = ratios[~np.isnan(ratios)]
    return Description(
        labels=matrix.names,
        count=counts,
        share=counts / matrix.n_rows,
        irlbl=ratios,
        scumble_per_label=per_label,
        n_samples=matrix.n_rows,
        n_labels=matrix.n_labels,
        cardinality=float(counts.sum() / matrix.n_rows),
        max_ir=float(defined.max()),
        mean_ir=mean_of_defined(ratios),
        cvir=_cvir(ratios) if defined.size >= 2 else float("nan"),
        scumble=dataset_scumble,
    )


def _label_sums(matrix: LabelMatrix, per_row: np.ndarray) -> np.ndarray:
    """Sum of a per-row value over the rows of each label."""
    if matrix.sparse:
        return np.bincount(
            matrix.values.indices,
            weights=np.repeat(per_row, np.diff(matrix.values.indptr)),
            minlength=matrix.n_labels,
        )
    sums = np.zeros(matrix.n_labels)
    for start in range(0, matrix.n_rows, _BLOCK_ROWS):
        sums += per_row[start : start + _BLOCK_ROWS] @ matrix.values[start : start + _BLOCK_ROWS]
    return sums
