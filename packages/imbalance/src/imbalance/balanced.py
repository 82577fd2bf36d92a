"""Class balancing (the paper's EXPR recipe) and bin balancing of continuous targets (its VA recipe)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ._allocation import draw_from_classes, round_counts, water_fill
from ._estimator import Resampler
from ._random import RandomState, check_random_state, generator
from ._validation import check_class_target, check_continuous, check_positive_int

__all__ = ["BinnedSampler", "ClassBalancedSampler"]

_STRATEGIES = ("equal", "auto", "all", "not majority", "not minority", "majority", "minority")
Strategy = str | Mapping[Any, int] | Callable[[np.ndarray], Mapping[Any, int]]


class ClassBalancedSampler(Resampler):
    """Draw an epoch of a multi-class target in which every class has the same probability.

    Small classes are over-sampled and large ones under-sampled: a class drawn ``t`` times from ``s``
    instances gives each instance ``t // s`` draws plus one more for ``t % s`` random instances: drawn without
    replacement while ``t <= s``, and with as few repeats as possible beyond. The list comes in ascending row
    order (each row repeated as drawn): shuffle it for an epoch, as :class:`imbalance.torch.ResampledSampler`
    does.

    Parameters
    ----------
    n_samples : int or None, default=None
        Length of the drawn list; ``None`` means the input size. Only with ``sampling_strategy="equal"``.
    max_repeats : int or None, default=None
        Cap on how often one instance may appear. A class that would need more gets ``max_repeats`` draws per
        instance and, with "equal", its share goes to the other classes (``n_samples`` is kept).
        ``ValueError`` when ``n_samples`` exceeds ``max_repeats`` times the input size.
    sampling_strategy : str, dict or callable, default="equal"
        "equal": ``n_samples`` draws, the same expected number for every class. The other values are
        imbalanced-learn's: "auto", "all" and "not majority" raise every class to the majority's size (as
        ``RandomOverSampler()``); "not minority" lowers every class to the minority's size (as
        ``RandomUnderSampler()``); "minority" / "majority" move only that class to the other extreme. A dict
        ``{class: draws}`` (unlisted classes keep their size) or a callable ``y -> dict``. ``max_repeats``
        caps these targets too.
    random_state : int, numpy.random.Generator, numpy.random.RandomState or None
        Seed of the draws.

    Attributes
    ----------
    sample_indices_ : numpy.ndarray of int64
        The drawn row indices, ascending.
    classes_ : numpy.ndarray
        The distinct classes, sorted.
    class_counts_ : numpy.ndarray of int64
        Draws of each class in the fitted list.
    sampling_strategy_ : dict
        ``{class: draws}`` of the fitted list: the form ``sampling_strategy`` takes, so passing it back gives
        the same class sizes. (imbalanced-learn's over-samplers store the samples to add instead; this
        sampler adds and removes.)
    n_features_in_, feature_names_in_
        Set by ``fit`` / ``fit_resample`` from a 2-D ``X`` (names: a DataFrame's); see
        ``get_feature_names_out``.

    Notes
    -----
    ``y`` is 1-D (or one column), or imbalanced-learn's one-hot (n, K) encoding, read as classes 0..K-1 and
    resampled as rows. A continuous target (a float that is not a whole number), a multi-label matrix or a
    single class is a ``ValueError``.

    Examples
    --------
    >>> import numpy as np
    >>> from imbalance import ClassBalancedSampler
    >>> y = np.array([0] * 90 + [1] * 9 + [2] * 1)
    >>> sampler = ClassBalancedSampler(n_samples=300, max_repeats=50, random_state=0)
    >>> idx = sampler.fit_indices(y)
    >>> np.bincount(y[idx]).tolist()
    [125, 125, 50]
    >>> sampler.sample_weights(y)[[0, 90, 99]].round(3).tolist()
    [1.389, 13.889, 50.0]
    >>> ClassBalancedSampler(sampling_strategy="auto", random_state=0).fit(None, y).sampling_strategy_
    {0: 90, 1: 90, 2: 90}
    """

    _target = "classes"

    def __init__(
        self,
        n_samples: int | None = None,
        max_repeats: int | None = None,
        sampling_strategy: Strategy = "equal",
        random_state: RandomState = None,
    ):
        self.n_samples = n_samples
        self.max_repeats = max_repeats
        self.sampling_strategy = sampling_strategy
        self.random_state = random_state

    def _classes(self, y: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Class values, their sorted distinct classes and each row's class code; one class is an error."""
        values = check_class_target(y, "y")
        classes, codes = np.unique(values, return_inverse=True)
        if classes.size < 2:
            raise ValueError(
                f"y holds one class only ({_keys(classes)[0]!r}): there is no class imbalance to correct; "
                f"{type(self).__name__} needs at least two classes"
            )
        return values, classes, codes.ravel()

    def _fit_indices(self, y: Any) -> np.ndarray:
        values, self.classes_, codes = self._classes(y)
        indices = self._draw(codes, values, weights=None)
        self.sampling_strategy_ = dict(zip(_keys(self.classes_), self.class_counts_.tolist(), strict=True))
        return indices

    def _expected_draws(self, y: Any) -> np.ndarray:
        values, _, codes = self._classes(y)
        sizes = np.bincount(codes)
        expected = self._expected_per_class(sizes, values, codes, weights=None)
        return (expected / sizes)[codes]

    def _strategy(self) -> Strategy:
        return self.sampling_strategy

    def _draw(self, codes: np.ndarray, values: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
        check_random_state(self.random_state)
        sizes = np.bincount(codes)
        expected = self._expected_per_class(sizes, values, codes, weights)
        rng = generator(self.random_state)
        total = round(float(expected.sum()))
        counts = round_counts(expected, total, rng)
        self.class_counts_ = counts
        return draw_from_classes(codes, counts, rng)

    def _expected_per_class(
        self, sizes: np.ndarray, values: np.ndarray, codes: np.ndarray, weights: np.ndarray | None
    ) -> np.ndarray:
        """Expected draws per class: equal shares (by ``weights``) or the strategy's targets, capped."""
        n_samples = check_positive_int(self.n_samples, "n_samples")
        max_repeats = check_positive_int(self.max_repeats, "max_repeats")
        capacity = sizes * float(max_repeats) if max_repeats is not None else np.full(sizes.size, np.inf)
        strategy = self._strategy()
        if isinstance(strategy, str) and strategy == "equal":
            total = n_samples if n_samples is not None else int(sizes.sum())
            if total > capacity.sum():
                raise ValueError(
                    f"n_samples={total} cannot be drawn with max_repeats={max_repeats}: "
                    f"at most {int(capacity.sum())} draws for {int(sizes.sum())} samples"
                )
            equal = np.ones(sizes.size) if weights is None else weights
            return water_fill(equal, capacity, total)
        targets = _strategy_targets(strategy, sizes, values, codes)
        if n_samples is not None:
            raise ValueError(
                f"n_samples={n_samples} only applies to sampling_strategy='equal', got {strategy!r}: "
                "that strategy sets the number of draws itself"
            )
        return np.minimum(targets, capacity)


def _keys(classes: np.ndarray) -> list[Any]:
    """Classes as dict keys: numpy scalars become Python ones, so ``{0: ...}`` and ``{"a": ...}`` match."""
    return [cls.item() if hasattr(cls, "item") else cls for cls in classes]


def _strategy_targets(
    strategy: Strategy, sizes: np.ndarray, values: np.ndarray, codes: np.ndarray
) -> np.ndarray:
    """Draws per class for imbalanced-learn's strategies (every ``sampling_strategy`` but "equal")."""
    targets = sizes.astype(np.float64)
    if isinstance(strategy, str):
        if strategy not in _STRATEGIES:
            raise ValueError(
                f"sampling_strategy must be one of {_STRATEGIES}, a dict or a callable, got {strategy!r}"
            )
        largest, smallest = sizes.max(), sizes.min()
        if strategy in ("auto", "all", "not majority"):
            targets[:] = largest
        elif strategy == "not minority":
            targets[:] = smallest
        elif strategy == "minority":
            targets[np.argmin(sizes)] = largest
        else:  # "majority"
            targets[np.argmax(sizes)] = smallest
        return targets
    if callable(strategy):
        strategy = strategy(values)
    if not isinstance(strategy, Mapping):
        raise ValueError(
            f"sampling_strategy must be a str, a dict or a callable returning a dict, got {strategy!r}"
        )
    classes = values[np.unique(codes, return_index=True)[1]]
    lookup = {cls: i for i, cls in enumerate(_keys(classes))}
    for cls, draws in strategy.items():
        if cls not in lookup:
            raise ValueError(
                f"sampling_strategy names class {cls!r}, which is not in y (classes: {list(lookup)})"
            )
        if isinstance(draws, bool) or not isinstance(draws, int | np.integer) or draws < 0:
            raise ValueError(f"sampling_strategy[{cls!r}] must be a non-negative int, got {draws!r}")
        targets[lookup[cls]] = draws
    return targets


class BinnedSampler(ClassBalancedSampler):
    """Balance a continuous target (1-D or n x D) over equal-width bins, such as valence-arousal.

    Each dimension is cut into ``n_bins`` equal bins over ``[low, high]`` (edges ``linspace(low, high,
    n_bins + 1)``; a value equal to ``high`` falls in the last bin). Then:

    - ``joint=True``: every non-empty cell of the D-dimensional grid (20 x 20 = 400 cells for VA) is a class,
      and all cells get the same probability, as in :class:`ClassBalancedSampler`.
    - ``joint=False``: every non-empty bin of *each dimension* gets the same probability at once. The cell
      probabilities are found by iterative proportional fitting from the joint-balanced start: of all
      distributions whose marginals are uniform over the non-empty bins, the one closest (KL divergence) to
      equal cells. When the non-empty cells make exact marginal balance impossible, the closest reachable
      one is used and a warning says so.

    ``max_repeats`` caps the draws of one instance; what a capped cell cannot take goes to the others.

    Parameters
    ----------
    n_bins : int, default=20
    low, high : float, default=-1.0, 1.0
        Range of every dimension.
    joint : bool, default=True
    out_of_range : {"error", "clip"}, default="error"
        A value outside ``[low, high]`` raises a ``ValueError`` naming the row, or is clipped into range.
    n_samples, max_repeats, random_state
        As in :class:`ClassBalancedSampler`.

    Attributes
    ----------
    sample_indices_ : numpy.ndarray of int64
    cells_ : numpy.ndarray of int64, shape (n_cells, D)
        Bin coordinates of the non-empty cells (the classes), in ``class_counts_`` order.
    class_counts_ : numpy.ndarray of int64
        Draws of each non-empty cell in the fitted list.
    sampling_strategy_ : dict
        ``{cell: draws}`` of the fitted list, a cell being its tuple of bin coordinates.
    n_features_in_, feature_names_in_
        As in :class:`ClassBalancedSampler`.

    Examples
    --------
    >>> import numpy as np
    >>> from imbalance import BinnedSampler
    >>> rng = np.random.default_rng(0)
    >>> va = np.clip(rng.normal(0.2, 0.3, size=(5000, 2)), -1, 1)
    >>> sampler = BinnedSampler(n_bins=4, max_repeats=20, random_state=0)
    >>> idx = sampler.fit_indices(va)
    >>> len(idx), len(sampler.cells_)
    (5000, 16)
    >>> sampler.digitize(np.array([[-1.0, 1.0], [0.1, -0.6]])).tolist()
    [[0, 3], [2, 0]]
    """

    _target = "continuous"

    def __init__(
        self,
        n_bins: int = 20,
        low: float = -1.0,
        high: float = 1.0,
        joint: bool = True,
        out_of_range: str = "error",
        n_samples: int | None = None,
        max_repeats: int | None = None,
        random_state: RandomState = None,
    ):
        self.n_bins = n_bins
        self.low = low
        self.high = high
        self.joint = joint
        self.out_of_range = out_of_range
        self.n_samples = n_samples
        self.max_repeats = max_repeats
        self.random_state = random_state

    def _strategy(self) -> Strategy:
        return "equal"  # every non-empty cell the same probability

    def digitize(self, y: Any) -> np.ndarray:
        """Bin index (0..n_bins-1) of every value, shape (n, D); checks the range as ``out_of_range`` says."""
        n_bins = check_positive_int(self.n_bins, "n_bins", allow_none=False)
        low, high = float(self.low), float(self.high)
        if not np.isfinite([low, high]).all() or not low < high:
            raise ValueError(f"low must be finite and below high, got low={self.low!r}, high={self.high!r}")
        if self.out_of_range not in ("error", "clip"):
            raise ValueError(f"out_of_range must be 'error' or 'clip', got {self.out_of_range!r}")
        values = check_continuous(y, "y")
        outside = (values < low) | (values > high)
        if outside.any():
            if self.out_of_range == "error":
                row, dim = np.argwhere(outside)[0]
                raise ValueError(
                    f"y[{row}, {dim}] = {values[row, dim]} is outside the binning range [{low}, {high}] "
                    f"({int(outside.sum())} values outside); pass out_of_range='clip' to clip them"
                )
            values = np.clip(values, low, high)
        edges = np.linspace(low, high, n_bins + 1)
        bins = np.clip(((values - low) * (n_bins / (high - low))).astype(np.int64), 0, n_bins - 1)
        # The arithmetic can land one bin off next to an edge; the edges themselves decide.
        bins -= values < edges[bins]
        bins += (bins < n_bins - 1) & (values >= edges[np.minimum(bins + 1, n_bins)])
        return bins

    def _cells(self, y: Any) -> tuple[np.ndarray, np.ndarray]:
        """Class code (0..n_cells-1) of every row and the bin coordinates of each non-empty cell."""
        bins = self.digitize(y)
        shape = (int(self.n_bins),) * bins.shape[1]
        flat = np.ravel_multi_index(tuple(bins.T), shape)
        if np.prod(shape, dtype=np.float64) <= 1 << 24:
            present = np.flatnonzero(np.bincount(flat, minlength=int(np.prod(shape))))
            lookup = np.zeros(int(np.prod(shape)), dtype=np.int64)
            lookup[present] = np.arange(present.size)
            codes = lookup[flat]
        else:
            present, codes = np.unique(flat, return_inverse=True)
        return codes.ravel(), np.stack(np.unravel_index(present, shape), axis=1)

    def _cell_weights(self, cells: np.ndarray) -> np.ndarray | None:
        """Cell probabilities: equal (``None``) when joint, else fitted so that every marginal is uniform."""
        if self.joint or cells.shape[1] == 1:
            return None
        probability = np.full(cells.shape[0], 1.0 / cells.shape[0])
        targets = [1.0 / np.unique(bins).size for bins in cells.T]
        for _ in range(1000):
            error = 0.0
            for bins, target in zip(cells.T, targets, strict=True):
                marginal = np.bincount(bins, weights=probability)
                error = max(error, float(np.abs(marginal[bins] - target).max()))
                probability *= target / marginal[bins]
            if error < 1e-9:
                return probability
        warnings.warn(
            "joint=False: the non-empty cells do not allow every dimension's bins exactly equal probability; "
            f"using the closest reachable distribution (largest marginal error {error:.2e})",
            RuntimeWarning,
            stacklevel=4,
        )
        return probability

    def _fit_indices(self, y: Any) -> np.ndarray:
        codes, cells = self._cells(y)
        self.cells_ = cells
        indices = self._draw(codes, codes, self._cell_weights(cells))
        cell_keys = map(tuple, cells.tolist())
        self.sampling_strategy_ = dict(zip(cell_keys, self.class_counts_.tolist(), strict=True))
        return indices

    def _expected_draws(self, y: Any) -> np.ndarray:
        codes, cells = self._cells(y)
        sizes = np.bincount(codes)
        expected = self._expected_per_class(sizes, codes, codes, self._cell_weights(cells))
        return (expected / sizes)[codes]
