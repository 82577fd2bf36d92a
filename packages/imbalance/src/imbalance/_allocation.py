"""Turning class sizes into draws: how many draws per class, then which instances."""

from __future__ import annotations

import numpy as np


def water_fill(weights: np.ndarray, capacity: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` draws among classes in proportion to ``weights``, no class above its ``capacity``.

    What a capped class cannot take goes to the others, still in proportion to their weights. Returns the
    (real-valued) expected number of draws per class. The caller checks ``total <= capacity.sum()``.
    """
    expected = np.zeros(weights.size)
    free = np.ones(weights.size, dtype=bool)
    remaining = float(total)
    while free.any():
        share = remaining * weights[free] / weights[free].sum()
        over = share > capacity[free]
        if not over.any():
            expected[free] = share
            break
        capped = np.flatnonzero(free)[over]
        expected[capped] = capacity[capped]
        remaining -= capacity[capped].sum()
        free[capped] = False
    return expected


def round_counts(expected: np.ndarray, total: int, rng: np.random.Generator) -> np.ndarray:
    """Integer draws per class summing to ``total`` whose expectation is exactly ``expected``.

    Each class gets ``floor(expected)`` plus one more with probability equal to the fractional part
    (systematic sampling over a random class order).
    """
    base = np.floor(expected).astype(np.int64)
    missing = int(total - base.sum())
    if missing <= 0:
        return base
    order = rng.permutation(expected.size)
    cumulative = np.cumsum((expected - base)[order])
    cumulative *= missing / cumulative[-1]  # absorb rounding so that exactly ``missing`` points fall inside
    points = rng.random() + np.arange(missing)
    chosen = order[np.minimum(np.searchsorted(cumulative, points, side="right"), expected.size - 1)]
    counts = base.copy()
    np.add.at(counts, chosen, 1)
    return counts


def draw_from_classes(codes: np.ndarray, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row indices with ``counts[c]`` draws from class ``c`` (``codes`` gives each row's class, 0..K-1).

    A class drawn ``t`` times from ``s`` instances gives every instance ``t // s`` draws and ``t % s`` random
    instances one more: without replacement while ``t <= s``, and otherwise the least repetitive way to draw
    with replacement. Rows come in ascending order, each repeated as often as drawn.
    """
    sizes = np.bincount(codes, minlength=counts.size)
    quotient, remainder = np.divmod(counts, np.maximum(sizes, 1))
    repeats = quotient[codes]
    small = np.uint16 if counts.size <= np.iinfo(np.uint16).max else np.int64  # radix sort for small codes
    members = np.argsort(codes.astype(small), kind="stable")  # rows grouped by class
    start = np.r_[0, np.cumsum(sizes)[:-1]]
    for cls in np.flatnonzero(remainder):
        chosen = rng.choice(sizes[cls], size=remainder[cls], replace=False, shuffle=False)
        repeats[members[start[cls] + chosen]] += 1
    return np.repeat(np.arange(codes.size, dtype=np.int64), repeats)
