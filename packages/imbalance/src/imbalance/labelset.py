"""LP-ROS and LP-RUS (Charte et al. 2015): each distinct label set is a class."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._estimator import Resampler
from ._random import RandomState, check_random_state, generator
from ._validation import LabelMatrix, check_label_matrix, check_percentage

__all__ = ["LPROS", "LPRUS", "labelset_codes"]


def labelset_codes(matrix: LabelMatrix) -> np.ndarray:
    """Class code (0..K-1) of each row's label set, numbered in order of first appearance.

    The numbering does not depend on the storage (dense, sparse, wide), so neither do LP-ROS/LP-RUS draws.
    """
    if matrix.sparse:
        csr = matrix.values.copy()
        csr.sort_indices()
        width = int(np.diff(csr.indptr).max(initial=0))
        padded = np.full((matrix.n_rows, max(width, 1)), -1, dtype=np.int64)
        row = np.repeat(np.arange(matrix.n_rows), np.diff(csr.indptr))
        column = np.arange(csr.indices.size) - csr.indptr[row]
        padded[row, column] = csr.indices
        keys = padded
    elif matrix.n_labels <= 62:
        keys = matrix.values @ (np.int64(1) << np.arange(matrix.n_labels, dtype=np.int64))
    else:
        keys = np.packbits(matrix.values, axis=1)
    axis = 0 if keys.ndim == 2 else None
    _, first, codes = np.unique(keys, axis=axis, return_index=True, return_inverse=True)
    appearance = np.empty(first.size, dtype=np.int64)
    appearance[np.argsort(first)] = np.arange(first.size)
    return appearance[codes.ravel()]


def _fill_up_to(capacity: np.ndarray, budget: int) -> np.ndarray:
    """Share ``budget`` among bags, none above its ``capacity``: the smallest capacities are served first and
    what a bag cannot use goes to the bags after it (Charte's redistribution of the remainder)."""
    given = np.zeros(capacity.size, dtype=np.int64)
    order = np.argsort(capacity, kind="stable")
    remaining = budget
    for served, bag in enumerate(order):
        given[bag] = min(capacity[bag], remaining // (order.size - served))
        remaining -= given[bag]
    return given


class _LabelsetResampler(Resampler):
    _target = "labels"

    def __init__(self, percentage: float = 25, random_state: RandomState = None):
        self.percentage = percentage
        self.random_state = random_state

    def _plan(self, y: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """Label-set code per row, bag sizes, per-bag change (clones or deletions) and the row count."""
        percentage = check_percentage(self.percentage)
        check_random_state(self.random_state)
        matrix = check_label_matrix(y, "y")
        codes = labelset_codes(matrix)
        sizes = np.bincount(codes)
        mean_size = matrix.n_rows / sizes.size
        budget = math.floor(matrix.n_rows * percentage / 100)
        return codes, sizes, _fill_up_to(self._capacity(sizes, mean_size), budget), matrix.n_rows

    def _members(self, codes: np.ndarray) -> list[np.ndarray]:
        order = np.argsort(codes, kind="stable")
        return np.split(order, np.cumsum(np.bincount(codes))[:-1])


class LPROS(_LabelsetResampler):
    """Label-powerset random over-sampling, LP-ROS (Charte et al. 2015).

    Every distinct label set is a class (bag). Bags smaller than the mean bag size ``n / n_labelsets`` are
    grown towards it (at most to its floor) by cloning random instances of the bag (with replacement). The
    budget of ``floor(n * percentage / 100)`` clones is shared equally among them; what a bag does not need
    goes to the others, starting from the bags that need the least.

    Parameters
    ----------
    percentage : float, default=25
        Cloning budget in percent of the rows, in (0, 100).
    random_state : int, numpy.random.Generator, numpy.random.RandomState or None

    Attributes
    ----------
    sample_indices_ : numpy.ndarray of int64
        Every original row once, then the clones.
    n_features_in_, feature_names_in_
        As in :class:`MLROS`.

    Examples
    --------
    >>> import numpy as np
    >>> from imbalance import LPROS
    >>> Y = np.array([[1, 0]] * 8 + [[0, 1]] * 2 + [[1, 1]] * 2)
    >>> idx = LPROS(percentage=25, random_state=0).fit_indices(Y)
    >>> len(idx), bool(np.all(idx[12:] >= 8))  # the 3 clones come from the two rare label sets
    (15, True)
    """

    def _capacity(self, sizes: np.ndarray, mean_size: float) -> np.ndarray:
        return np.where(sizes < mean_size, math.floor(mean_size) - sizes, 0).clip(0)

    def _fit_indices(self, y: Any) -> np.ndarray:
        codes, _, clones, n_rows = self._plan(y)
        rng = generator(self.random_state)
        members = self._members(codes)
        picks = [bag[rng.integers(0, bag.size, size=k)] for bag, k in zip(members, clones, strict=True) if k]
        return np.concatenate([np.arange(n_rows, dtype=np.int64), *picks])

    def _expected_draws(self, y: Any) -> np.ndarray:
        """``1 + clones(bag) / |bag|`` for each instance: the clones per bag are fixed by the plan."""
        codes, sizes, clones, _ = self._plan(y)
        return (1.0 + clones / sizes)[codes]


class LPRUS(_LabelsetResampler):
    """Label-powerset random under-sampling, LP-RUS (Charte et al. 2015).

    Bags (distinct label sets) larger than the mean bag size are shrunk towards it (not below its ceiling) by
    deleting random instances; the budget of ``floor(n * percentage / 100)`` deletions is shared as in
    :class:`LPROS`.

    Parameters
    ----------
    percentage : float, default=25
        Deletion budget in percent of the rows, in (0, 100).
    random_state : int, numpy.random.Generator, numpy.random.RandomState or None

    Attributes
    ----------
    sample_indices_ : numpy.ndarray of int64
        The kept rows, ascending.
    n_features_in_, feature_names_in_
        As in :class:`MLROS`.

    Examples
    --------
    >>> import numpy as np
    >>> from imbalance import LPRUS
    >>> Y = np.array([[1, 0]] * 8 + [[0, 1]] * 2 + [[1, 1]] * 2)
    >>> kept = LPRUS(percentage=25, random_state=0).fit_indices(Y)
    >>> len(kept), int((kept < 8).sum())
    (9, 5)
    """

    def _capacity(self, sizes: np.ndarray, mean_size: float) -> np.ndarray:
        return np.where(sizes > mean_size, sizes - math.ceil(mean_size), 0).clip(0)

    def _fit_indices(self, y: Any) -> np.ndarray:
        codes, _, deletions, n_rows = self._plan(y)
        rng = generator(self.random_state)
        keep = np.ones(n_rows, dtype=bool)
        for bag, k in zip(self._members(codes), deletions, strict=True):
            if k:
                keep[rng.choice(bag, size=k, replace=False)] = False
        return np.flatnonzero(keep).astype(np.int64)

    def _expected_draws(self, y: Any) -> np.ndarray:
        """``1 - deletions(bag) / |bag|`` for each instance: the deletions per bag are fixed by the plan."""
        codes, sizes, deletions, _ = self._plan(y)
        return (1.0 - deletions / sizes)[codes]
