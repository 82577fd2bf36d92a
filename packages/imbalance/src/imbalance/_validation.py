"""Input checks shared by the measures and the resamplers.

Every check raises a ``ValueError`` that says what is wrong and where (row, column, label name), and none
of them modifies its input: a conversion always works on a copy or on a read-only view.
"""

from __future__ import annotations

import numbers
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np


def _scipy_sparse():
    """The ``scipy.sparse`` module when it is already imported, else ``None`` (never imports scipy)."""
    return sys.modules.get("scipy.sparse")


def is_sparse(obj: Any) -> bool:
    sparse = _scipy_sparse()
    return sparse is not None and sparse.issparse(obj)


def is_dataframe(obj: Any) -> bool:
    return type(obj).__module__.startswith("pandas") and hasattr(obj, "columns") and hasattr(obj, "iloc")


def is_series(obj: Any) -> bool:
    return type(obj).__module__.startswith("pandas") and hasattr(obj, "iloc") and not hasattr(obj, "columns")


@dataclass(frozen=True)
class LabelMatrix:
    """A validated 0/1 label matrix: dense ``uint8`` (n, L) or canonical CSR, plus the label names."""

    values: Any
    names: list[str]

    @property
    def sparse(self) -> bool:
        return is_sparse(self.values)

    @property
    def n_rows(self) -> int:
        return self.values.shape[0]

    @property
    def n_labels(self) -> int:
        return self.values.shape[1]

    def column_counts(self) -> np.ndarray:
        """Positive samples per label (int64)."""
        values = self.values
        if self.sparse:
            return np.bincount(values.indices, minlength=self.n_labels).astype(np.int64)
        counts = np.zeros(self.n_labels, dtype=np.int64)
        for start in range(0, values.shape[0], _BLOCK_ROWS):
            counts += values[start : start + _BLOCK_ROWS].sum(axis=0, dtype=np.int64)
        return counts

    def select(self, rows: np.ndarray) -> LabelMatrix:
        """The label matrix of ``rows`` (in that order, repeats allowed); sparse stays sparse."""
        return LabelMatrix(self.values[rows], self.names)

    def prefix_counts(self, n_rows: int) -> np.ndarray:
        """Positive samples per label over the first ``n_rows`` rows."""
        if self.sparse:
            return np.bincount(self.values.indices[: self.values.indptr[n_rows]], minlength=self.n_labels)
        return self.values[:n_rows].sum(axis=0, dtype=np.int64)

    def hits(self, labels: np.ndarray) -> np.ndarray:
        """Dense (n_rows, len(labels)) 0/1 block of the given labels; meant for a few labels of a few rows."""
        if not self.sparse:
            return self.values[:, labels]
        position = np.full(self.n_labels, -1, dtype=np.int64)
        position[labels] = np.arange(labels.size)
        out = np.zeros((self.n_rows, labels.size), dtype=np.uint8)
        row_of_entry = np.repeat(np.arange(self.n_rows), np.diff(self.values.indptr))
        column = position[self.values.indices]
        keep = column >= 0
        out[row_of_entry[keep], column[keep]] = 1
        return out

    def row_weighted_sums(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per row: the sum of ``weights`` over its labels, and its number of labels."""
        if self.sparse:
            ones = self.values.copy()
            ones.data = np.ones_like(ones.data, dtype=np.float64)
            return ones @ weights, np.diff(self.values.indptr).astype(np.int64)
        sums = np.empty(self.n_rows, dtype=np.float64)
        sizes = np.empty(self.n_rows, dtype=np.int64)
        for start in range(0, self.n_rows, _BLOCK_ROWS):
            block = self.values[start : start + _BLOCK_ROWS]
            sums[start : start + block.shape[0]] = block @ weights
            sizes[start : start + block.shape[0]] = block.sum(axis=1, dtype=np.int64)
        return sums, sizes


_BLOCK_ROWS = 1 << 16


def check_label_matrix(Y: Any, name: str = "Y") -> LabelMatrix:
    """Validate a multi-label matrix (numpy, scipy.sparse or pandas) of 0/1 values without densifying it."""
    if is_sparse(Y):
        return LabelMatrix(_check_sparse(Y, name), [str(i) for i in range(Y.shape[1])])
    if is_dataframe(Y):
        names = [str(c) for c in Y.columns]
        values = Y.to_numpy()
        if values.dtype == object:  # mixed or nullable columns: a missing value (pd.NA) becomes NaN
            values = _object_to_float(Y, name)
        return LabelMatrix(_check_dense(values, name, names), names)
    values = np.asarray(Y)
    if values.dtype == object:
        values = _object_to_float(values, name)
    checked = _check_dense(values, name, None)
    return LabelMatrix(checked, [str(i) for i in range(checked.shape[1])])


def _object_to_float(values: Any, name: str, what: str = "numbers 0/1") -> np.ndarray:
    """float64 values of an object array or a DataFrame (whose missing values become NaN).

    On failure the error names the first column (by name for a DataFrame), row and value that is not a
    number: numpy's own message ("could not convert string to float") says neither.
    """
    try:
        if is_dataframe(values):
            return values.to_numpy(dtype=np.float64, na_value=np.nan)
        return values.astype(np.float64)
    except (TypeError, ValueError):
        pass
    columns = (
        [(repr(str(c)), values[c].to_numpy(dtype=object)) for c in values.columns]
        if is_dataframe(values)
        else [(str(j), values[:, j]) for j in range(values.shape[1])]
        if values.ndim == 2
        else [("", values)]
    )
    for label, column in columns:
        for row, value in enumerate(column):
            if _is_missing(value):
                continue
            try:
                float(value)
            except (TypeError, ValueError):
                where = f"column {label}, row {row}" if label else f"index {row}"
                raise ValueError(
                    f"{name} must hold {what}: {where} holds {type(value).__name__} {value!r}"
                ) from None
    raise ValueError(f"{name} must hold {what}")  # float() accepted every value but numpy did not


def _check_matrix_shape(shape: tuple[int, ...], name: str) -> None:
    if len(shape) != 2:
        raise ValueError(f"{name} must be a 2-D label matrix (n_samples, n_labels), got shape {shape}")
    if shape[0] == 0:
        raise ValueError(f"{name} is empty: it has no rows")
    if shape[1] == 0:
        raise ValueError(f"{name} has no label columns")


def _check_dense(values: np.ndarray, name: str, names: list[str] | None) -> np.ndarray:
    _check_matrix_shape(values.shape, name)
    if values.dtype == bool:
        return np.ascontiguousarray(values).view(np.uint8)
    if not np.issubdtype(values.dtype, np.number):
        raise ValueError(f"{name} must hold numbers 0/1, got dtype {values.dtype}")
    if np.issubdtype(values.dtype, np.integer):
        bad_found = values.min() < 0 or values.max() > 1
    else:
        bad_found = not bool(np.all((values == 0) | (values == 1)))
    if bad_found:
        row, col = np.argwhere((values != 0) & (values != 1))[0]
        label = names[col] if names is not None else str(col)
        raise ValueError(
            f"{name} must be binary (0/1): row {row}, label {label!r} holds {values[row, col].item()!r}"
        )
    return np.ascontiguousarray(values, dtype=np.uint8)


def _check_sparse(Y: Any, name: str) -> Any:
    _check_matrix_shape(Y.shape, name)
    csr = Y.tocsr(copy=True)
    csr.sum_duplicates()
    data = csr.data
    bad = (data != 0) & (data != 1)
    if bad.any():
        entry = int(np.flatnonzero(bad)[0])
        row = int(np.searchsorted(csr.indptr, entry, side="right") - 1)
        label, value = int(csr.indices[entry]), data[entry].item()
        raise ValueError(f"{name} must be binary (0/1): row {row}, label {label} holds {value!r}")
    csr.eliminate_zeros()
    csr.data = np.ones_like(csr.data, dtype=np.uint8)
    return csr


def check_percentage(percentage: Any) -> float:
    if isinstance(percentage, bool) or not isinstance(percentage, numbers.Real):
        raise ValueError(f"percentage must be a number in (0, 100), got {percentage!r}")
    if not 0 < percentage < 100:
        raise ValueError(f"percentage must lie in the open interval (0, 100), got {percentage!r}")
    return float(percentage)


def check_positive_int(value: Any, name: str, allow_none: bool = True) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(
            f"{name} must be a positive integer{' or None' if allow_none else ''}, got {value!r}"
        )
    return int(value)


def check_targets_1d(y: Any, name: str = "y") -> np.ndarray:
    """A non-empty 1-D class target without missing values, whose labels are all strings or all numbers."""
    values = y.to_numpy() if (is_series(y) or is_dataframe(y)) else np.asarray(y)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise ValueError(f"{name} must be a 1-D class target, got shape {values.shape}")
    if values.dtype.kind in "US" and not isinstance(y, np.ndarray):
        # np.asarray(["a", 1]) silently makes the 1 a "1", which would merge it with a class "1".
        _check_one_label_type(np.asarray(y, dtype=object).ravel(), name)
    if values.size == 0:
        raise ValueError(f"{name} is empty: it has no samples")
    if values.dtype.kind == "f":
        missing = np.isnan(values)
        if missing.any():
            raise ValueError(f"{name} holds NaN at index {int(np.flatnonzero(missing)[0])}")
    elif values.dtype == object:
        missing = [i for i, v in enumerate(values) if _is_missing(v)]
        if missing:
            raise ValueError(f"{name} holds a missing value at index {missing[0]}")
        _check_one_label_type(values, name)
    return values


def check_class_target(y: Any, name: str = "y") -> np.ndarray:
    """The class of every sample, for a class sampler.

    Takes a 1-D target (or a single column) as :func:`check_targets_1d` does, or imbalanced-learn's one-hot
    encoding: an (n, K) 0/1 matrix with one 1 per row, read as classes 0..K-1 (the column positions).
    Refuses continuous values (a float that is not a whole number) and multi-label rows.
    """
    shape = getattr(y, "shape", None)
    if shape is None:
        shape = np.shape(y) if isinstance(y, list | tuple) else ()
    if len(shape) == 2 and shape[1] > 1:
        return _one_hot_classes(y.to_numpy() if is_dataframe(y) else np.asarray(y), name)
    values = check_targets_1d(y, name)
    first = None
    if values.dtype.kind == "f":
        with np.errstate(invalid="ignore"):  # inf % 1 is NaN: not a class label either
            fractional = np.flatnonzero(np.mod(values, 1) != 0)
        if fractional.size:
            first = int(fractional[0]), values[fractional[0]].item()
    elif values.dtype == object:
        first = next(((i, value) for i, value in enumerate(values) if _is_fractional(value)), None)
    if first is not None:
        raise ValueError(
            f"{name} holds {first[1]!r} at index {first[0]}: a continuous value, not a class label. A class "
            "sampler needs class labels (integers, strings or whole-number floats); balance a continuous "
            "target over bins with BinnedSampler"
        )
    return values


def _is_fractional(value: Any) -> bool:
    """A real number that is not a whole number (so a measurement, not a class label)."""
    if not isinstance(value, numbers.Real) or isinstance(value, numbers.Integral):
        return False
    return not float(value).is_integer()


def _one_hot_classes(values: np.ndarray, name: str) -> np.ndarray:
    """Column of the single 1 of every row of a one-hot (n, K) matrix."""
    if values.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has no samples")
    binary = (
        (values.dtype == bool or np.issubdtype(values.dtype, np.number))
        and not np.issubdtype(values.dtype, np.complexfloating)
        and bool(np.all((values == 0) | (values == 1)))
    )
    if not binary:
        raise ValueError(
            f"{name} has shape {values.shape}: a class sampler takes a 1-D class target, or a one-hot (n, K) "
            "matrix of 0/1 with a single 1 per row"
        )
    ones = values.sum(axis=1, dtype=np.int64)
    if np.any(ones != 1):
        row = int(np.flatnonzero(ones != 1)[0])
        raise ValueError(
            f"{name} row {row} holds {int(ones[row])} ones: a 2-D {name} must be one-hot (one class per "
            "row). For multi-label targets use MLROS, MLRUS, LPROS or LPRUS"
        )
    return values.argmax(axis=1).astype(np.int64)


def _check_one_label_type(values: np.ndarray, name: str) -> None:
    """Class labels must be all strings or all numbers: numpy can neither sort nor compare a mix."""
    first_kind = None
    for i, value in enumerate(values):
        kind = "str" if isinstance(value, str) else "number" if isinstance(value, numbers.Number) else None
        if kind is None:
            raise ValueError(
                f"{name} class labels must be strings or numbers: index {i} holds {type(value).__name__} "
                f"{value!r}"
            )
        if first_kind is None:
            first_kind, first = kind, i
        elif kind != first_kind:
            raise ValueError(
                f"{name} mixes class label types: index {first} holds {type(values[first]).__name__} "
                f"{values[first]!r}, index {i} holds {type(value).__name__} {value!r}; use one type"
            )


def _is_missing(value: Any) -> bool:
    """None, a float NaN or pandas' ``NA`` (which has no truth value, so ``value != value`` cannot tell)."""
    pandas = sys.modules.get("pandas")
    if value is None or (pandas is not None and value is pandas.NA):
        return True
    return isinstance(value, float) and value != value


def check_continuous(y: Any, name: str = "y") -> np.ndarray:
    """A non-empty, finite 1-D or (n, D) continuous target, returned as float64 (n, D)."""
    values = y.to_numpy() if (is_series(y) or is_dataframe(y)) else np.asarray(y)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2:
        raise ValueError(f"{name} must be 1-D or (n_samples, n_dims), got shape {values.shape}")
    if values.shape[0] == 0 or values.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {values.shape}")
    if values.dtype == object:  # a DataFrame with a text or nullable column, or a list of mixed values
        values = _object_to_float(y if is_dataframe(y) else values, name, "real numbers")
        values = values.reshape(-1, 1) if values.ndim == 1 else values
    if not np.issubdtype(values.dtype, np.number) or np.issubdtype(values.dtype, np.complexfloating):
        raise ValueError(f"{name} must hold real numbers, got dtype {values.dtype}")
    values = values.astype(np.float64, copy=False)
    finite = np.isfinite(values)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        raise ValueError(f"{name} must be finite: row {row}, dimension {col} holds {values[row, col]}")
    return values


def check_same_length(X: Any, n_rows: int) -> None:
    if X is None:
        return
    length = X.shape[0] if hasattr(X, "shape") else len(X)
    if length != n_rows:
        raise ValueError(f"X has {length} rows but y has {n_rows}: they must describe the same samples")


def take_rows(obj: Any, rows: np.ndarray) -> Any:
    """Rows of an array, sparse matrix, DataFrame/Series or list, in the same type."""
    if obj is None:
        return None
    if is_dataframe(obj) or is_series(obj):
        return obj.iloc[rows]
    if isinstance(obj, np.ndarray) or is_sparse(obj):
        return obj[rows]
    if hasattr(obj, "__array__") and hasattr(obj, "shape"):
        return np.asarray(obj)[rows]
    return [obj[i] for i in rows.tolist()]
