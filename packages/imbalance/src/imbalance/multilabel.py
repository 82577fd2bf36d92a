"""ML-ROS and ML-RUS (Charte et al. 2015), exact and batched.

The algorithm, as ``docs/design.md`` section 2.2 states it (ML-ROS; ML-RUS mirrors it)::

    budget = floor(n * P / 100); MeanIR computed once on the original data
    bags = labels with IRLbl > MeanIR, in label order
    while budget > 0 and bags:
        for each bag l (round robin):
            clone a uniformly random original instance of bag l   # all its labels count again
            if IRLbl(l), recomputed on the grown data, <= MeanIR: drop bag l
            budget -= 1; stop at 0

Bag l reads its picks from its own random stream (see ``_random``), so the k-th visit of a bag always gets the
same pick whatever happened elsewhere. The batched version evaluates a window of many visits at once: it reads
the window's picks, computes every bag's count and the running maximum after each step with cumulative sums,
and commits the window up to the first step that drops a bag. That is exactly the sequence of events of the
one-clone-per-iteration loop, at numpy speed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._counting import running_max_count, running_own_count
from ._estimator import Resampler
from ._random import RandomState, UniformTable, check_random_state, label_generators, uniform_index
from ._validation import LabelMatrix, check_label_matrix, check_percentage
from .base import n_rows
from .measures import irlbl_from_counts, mean_of_defined

__all__ = ["MLROS", "MLRUS"]

_MIN_WINDOW = 1024
_FIRST_WINDOW = 1 << 16
_MAX_WINDOW = 1 << 20


@dataclass(frozen=True)
class _Bags:
    """The rows of each bag (ascending), stored flat: bag i is ``rows[offset[i] : offset[i] + size[i]]``."""

    labels: np.ndarray
    rows: np.ndarray
    offset: np.ndarray
    size: np.ndarray


def _bags(matrix: LabelMatrix, labels: np.ndarray) -> _Bags:
    if matrix.sparse:
        csr = matrix.values
        row = np.repeat(np.arange(matrix.n_rows), np.diff(csr.indptr))
        position = np.full(matrix.n_labels, -1, dtype=np.int64)
        position[labels] = np.arange(labels.size)
        bag = position[csr.indices]
        keep = bag >= 0
        bag, row = bag[keep], row[keep]
        rows = row[np.argsort(bag, kind="stable")]
        size = np.bincount(bag, minlength=labels.size)
    else:
        members = [np.flatnonzero(matrix.values[:, label]) for label in labels]
        rows = np.concatenate(members) if members else np.empty(0, dtype=np.int64)
        size = np.array([m.size for m in members], dtype=np.int64)
    offset = np.r_[0, np.cumsum(size)[:-1]].astype(np.int64)
    return _Bags(labels, rows.astype(np.int64), offset, size.astype(np.int64))


def _round_robin(active: np.ndarray, start: int, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Bag of each of the next ``n_steps`` round-robin steps from position ``start``, and its visit number
    within these steps (0 for a bag's first visit in the window)."""
    turn = start + np.arange(n_steps)
    position = turn % active.size
    return active[position], turn // active.size - (position < start)


def _advance(active: np.ndarray, start: int, n_steps: int, dropped: bool) -> tuple[np.ndarray, int]:
    """Round-robin state after ``n_steps`` committed steps; the last one dropped its bag if ``dropped``."""
    last = (start + n_steps - 1) % active.size
    if not dropped:
        return active, (last + 1) % active.size
    remaining = np.delete(active, last)
    return remaining, (last % remaining.size if remaining.size else 0)


def _budget(n_rows: int, percentage: float) -> int:
    return math.floor(n_rows * percentage / 100)


def _mean_ir_and_counts(matrix: LabelMatrix) -> tuple[np.ndarray, np.ndarray, float]:
    counts = matrix.column_counts()
    ratios = irlbl_from_counts(counts, matrix.names)
    return counts, ratios, mean_of_defined(ratios)


def mlros_clones(
    matrix: LabelMatrix, percentage: float, random_state: RandomState
) -> tuple[np.ndarray, _Bags, np.ndarray]:
    """Run ML-ROS; returns the cloned rows in order, the minority bags and the clones each bag received."""
    counts, ratios, mean_ir = _mean_ir_and_counts(matrix)
    with np.errstate(invalid="ignore"):
        bags = _bags(matrix, np.flatnonzero(ratios > mean_ir))
    generators = label_generators(random_state, matrix.n_labels)
    budget = _budget(matrix.n_rows, percentage)
    n_bags = bags.labels.size
    table = UniformTable(
        [generators[label] for label in bags.labels], min(budget, _FIRST_WINDOW) // max(n_bags, 1) + 1
    )
    visits = np.zeros(n_bags, dtype=np.int64)
    active = np.arange(n_bags)
    start = 0  # position in ``active`` of the bag whose turn comes next
    window = _FIRST_WINDOW
    clones = []
    while budget > 0 and active.size:
        bag, visit = _round_robin(active, start, min(budget, max(window, active.size)))
        picks = table.read(bag, visits[bag] + visit)
        rows = bags.rows[bags.offset[bag] + uniform_index(picks, bags.size[bag])]
        picked = matrix.select(rows)
        own = counts[bags.labels[bag]] + running_own_count(picked, bags.labels[bag])
        dropped = np.flatnonzero(running_max_count(picked, counts, +1) / own <= mean_ir)
        commit = rows.size if dropped.size == 0 else int(dropped[0]) + 1
        counts += picked.prefix_counts(commit)
        visits += np.bincount(bag[:commit], minlength=n_bags)
        clones.append(rows[:commit])
        budget -= commit
        active, start = _advance(active, start, commit, dropped=dropped.size > 0)
        window = max(2 * commit, _MIN_WINDOW) if dropped.size else min(2 * window, _MAX_WINDOW)
    cloned = np.concatenate(clones) if clones else np.empty(0, dtype=np.int64)
    return cloned, bags, visits


def mlrus_deleted(matrix: LabelMatrix, percentage: float, random_state: RandomState) -> np.ndarray:
    """Run ML-RUS; returns the boolean mask of deleted rows.

    Bag l deletes instances in the order of its own random permutation, skipping those already deleted through
    another bag: the next one is uniform among the bag's remaining instances. Within a window, a row picked by
    two bags is a conflict: the window is committed up to it and restarted, as the loop would then skip it.
    """
    counts, ratios, mean_ir = _mean_ir_and_counts(matrix)
    with np.errstate(invalid="ignore"):
        bags = _bags(matrix, np.flatnonzero(ratios < mean_ir))
    generators = label_generators(random_state, matrix.n_labels)
    order = bags.rows.copy()
    for i, label in enumerate(bags.labels):
        segment = slice(bags.offset[i], bags.offset[i] + bags.size[i])
        order[segment] = generators[label].permutation(order[segment])
    budget = _budget(matrix.n_rows, percentage)
    deleted = np.zeros(matrix.n_rows, dtype=bool)
    cursor = np.zeros(bags.labels.size, dtype=np.int64)
    active = np.arange(bags.labels.size)
    start = 0
    window = _FIRST_WINDOW
    while budget > 0 and active.size:
        empty = counts[bags.labels[active]] == 0
        if empty.any():
            # A bag left without instances is dropped at its turn without a deletion; dropping it now is the
            # same, since it changes no count and uses no budget. The bag due next keeps its turn.
            start = int(np.count_nonzero(~empty[:start]))
            active = active[~empty]
            if not active.size:
                break
            start %= active.size
        # Bags hold at least ``passes`` instances each, so every visit of the window finds one.
        passes = int(min(-(-max(window, active.size) // active.size), counts[bags.labels[active]].min()))
        bag, visit = _round_robin(active, start, min(budget, passes * active.size))
        alive = np.stack([_next_alive(order, bags, i, cursor[i], deleted, passes) for i in active])
        slot = np.searchsorted(active, bag)
        position = alive[slot, visit]
        rows = order[bags.offset[bag] + position]
        conflict = _first_repeat(rows)
        picked = matrix.select(rows)
        own = counts[bags.labels[bag]] - running_own_count(picked, bags.labels[bag])
        top = running_max_count(picked, counts, -1)
        dropped = np.flatnonzero((own == 0) | (top / np.maximum(own, 1) >= mean_ir))
        drop = int(dropped[0]) if dropped.size else None
        if conflict is not None and (drop is None or conflict <= drop):
            commit, drop = conflict, None
        else:
            commit = rows.size if drop is None else drop + 1
        taken = rows[:commit]
        deleted[taken] = True
        counts -= picked.prefix_counts(commit)
        np.maximum.at(cursor, bag[:commit], position[:commit] + 1)
        budget -= commit
        window = max(2 * commit, _MIN_WINDOW) if commit < rows.size else min(2 * window, _MAX_WINDOW)
        active, start = _advance(active, start, commit, dropped=drop is not None)
    return deleted


def _next_alive(
    order: np.ndarray, bags: _Bags, bag: int, start: int, deleted: np.ndarray, k: int
) -> np.ndarray:
    """Positions (in bag ``bag``'s permutation) of its next ``k`` instances not deleted, from ``start`` on."""
    segment = order[bags.offset[bag] + start : bags.offset[bag] + bags.size[bag]]
    span = 2 * k + 64
    while True:
        alive = np.flatnonzero(~deleted[segment[:span]])
        if alive.size >= k or span >= segment.size:
            return start + alive[:k]
        span *= 2


def _first_repeat(rows: np.ndarray) -> int | None:
    """Position of the first row that already occurred earlier in ``rows``, or None."""
    _, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
    repeated = np.flatnonzero(first[inverse] != np.arange(rows.size))
    return int(repeated[0]) if repeated.size else None


class MLROS(Resampler):
    """Multi-label random over-sampling, ML-ROS (Charte et al. 2015), exact and batched.

    Clones instances of the minority labels (IRLbl above MeanIR) in round robin until ``percentage`` % of the
    rows have been added or every minority label reached MeanIR. MeanIR is computed once on the input; a
    label's IRLbl is recomputed on the grown data after each of its clones (the largest count may grow too,
    through co-occurrence). A label without positive samples gets an ``EmptyLabelWarning`` and no bag.

    Parameters
    ----------
    percentage : float, default=25
        Size of the cloning budget in percent of the rows, in the open interval (0, 100):
        ``floor(n_samples * percentage / 100)`` clones at most.
    random_state : int, numpy.random.Generator, numpy.random.RandomState or None
        Seed of the picks. Each label draws from its own stream, so the result is reproducible per seed.

    Attributes
    ----------
    sample_indices_ : numpy.ndarray of int64
        Every original row once (0..n-1), then the clones in the order they were made.
    clones_per_label_ : numpy.ndarray of int64
        Number of clones made through each label's bag (0 for labels without a bag).
    n_features_in_, feature_names_in_
        Set by ``fit`` / ``fit_resample`` from a 2-D ``X`` (names: a DataFrame's); see
        ``get_feature_names_out``.

    Examples
    --------
    >>> import numpy as np
    >>> from imbalance import MLROS, mean_ir
    >>> rng = np.random.default_rng(0)
    >>> Y = (rng.random((1000, 4)) < [0.5, 0.3, 0.05, 0.02]).astype(int)
    >>> X = rng.normal(size=(1000, 3))
    >>> X_res, Y_res = MLROS(percentage=25, random_state=0).fit_resample(X, Y)
    >>> X_res.shape, Y_res.shape  # at most 250 clones: here every minority label reached MeanIR first
    ((1045, 3), (1045, 4))
    >>> bool(mean_ir(Y_res) < mean_ir(Y))
    True
    """

    _target = "labels"

    def __init__(self, percentage: float = 25, random_state: RandomState = None):
        self.percentage = percentage
        self.random_state = random_state

    def _run(self, y: Any) -> tuple[LabelMatrix, np.ndarray, _Bags, np.ndarray]:
        percentage = check_percentage(self.percentage)
        check_random_state(self.random_state)
        matrix = check_label_matrix(y, "y")
        clones, bags, visits = mlros_clones(matrix, percentage, self.random_state)
        per_label = np.zeros(matrix.n_labels, dtype=np.int64)
        per_label[bags.labels] = visits
        self.clones_per_label_ = per_label
        return matrix, clones, bags, visits

    def _fit_indices(self, y: Any) -> np.ndarray:
        matrix, clones, _, _ = self._run(y)
        return np.concatenate([np.arange(matrix.n_rows, dtype=np.int64), clones])

    def _expected_draws(self, y: Any) -> np.ndarray:
        """1 + the expected clones of each instance, given how many clones each bag made in the fitted run.

        Conditioning on the bags' clone counts (``clones_per_label_``) removes the noise of which instance
        of a bag happened to be picked: instance i gets ``1 + sum over its bags l of clones(l) / |bag(l)|``.
        The weights sum to the length of the fitted index list.
        """
        matrix, _, bags, visits = self._run(y)
        weights = np.ones(matrix.n_rows)
        per_member = np.repeat(visits / np.maximum(bags.size, 1), bags.size)
        np.add.at(weights, bags.rows, per_member)
        return weights


class MLRUS(Resampler):
    """Multi-label random under-sampling, ML-RUS (Charte et al. 2015), exact and batched.

    Deletes instances of the majority labels (IRLbl below MeanIR) in round robin until ``percentage`` % of
    the rows are gone or every majority label reached MeanIR (a bag is dropped once its IRLbl, recomputed on
    the shrunk data, is >= MeanIR). Each deletion is uniform among the bag's remaining instances.

    Parameters
    ----------
    percentage : float, default=25
        Deletion budget in percent of the rows, in (0, 100).
    random_state : int, numpy.random.Generator, numpy.random.RandomState or None
        Seed of the deletions (one stream per label).

    Attributes
    ----------
    sample_indices_ : numpy.ndarray of int64
        The kept rows, ascending.
    n_features_in_, feature_names_in_
        As in :class:`MLROS`.

    Examples
    --------
    >>> import numpy as np
    >>> from imbalance import MLRUS
    >>> rng = np.random.default_rng(0)
    >>> Y = (rng.random((1000, 4)) < [0.6, 0.4, 0.05, 0.02]).astype(int)
    >>> kept = MLRUS(percentage=10, random_state=0).fit_indices(Y)
    >>> len(kept)
    900
    """

    _target = "labels"

    def __init__(self, percentage: float = 25, random_state: RandomState = None):
        self.percentage = percentage
        self.random_state = random_state

    def _fit_indices(self, y: Any) -> np.ndarray:
        percentage = check_percentage(self.percentage)
        check_random_state(self.random_state)
        matrix = check_label_matrix(y, "y")
        return np.flatnonzero(~mlrus_deleted(matrix, percentage, self.random_state)).astype(np.int64)

    def _expected_draws(self, y: Any) -> np.ndarray:
        """1.0 for the rows kept by the fitted run, 0.0 for the deleted ones.

        Which rows survive depends on the whole sequence of deletions; the expectation has no closed form, so
        the weights are those of one run (with this estimator's ``random_state``).
        """
        kept = self._fit_indices(y)
        weights = np.zeros(n_rows(y))
        weights[kept] = 1.0
        return weights
