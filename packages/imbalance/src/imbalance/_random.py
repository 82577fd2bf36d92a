"""Random streams: one independent generator per label (or class), derived from ``random_state``.

Giving every bag its own stream makes a bag's k-th random pick independent of how the visits of the bags
interleave. That is what lets the batched ML-ROS/ML-RUS reproduce, draw for draw, the one-clone-per-iteration
algorithm: both read the same numbers from the same streams, only in larger slices.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

RandomState = int | np.random.Generator | np.random.RandomState | None


def seed_sequence(random_state: Any) -> np.random.SeedSequence:
    """A SeedSequence from an int, a Generator / RandomState (consumes one draw) or None (fresh entropy)."""
    if random_state is None:
        return np.random.SeedSequence()
    if isinstance(random_state, bool):
        raise ValueError(f"random_state must be an int, a numpy Generator or None, got {random_state!r}")
    if isinstance(random_state, numbers.Integral):
        if random_state < 0:
            raise ValueError(f"random_state must be a non-negative int, got {random_state!r}")
        return np.random.SeedSequence(int(random_state))
    if isinstance(random_state, np.random.Generator):
        return np.random.SeedSequence(random_state.integers(0, 2**63, size=2).tolist())
    if isinstance(random_state, np.random.RandomState):
        return np.random.SeedSequence(random_state.randint(0, 2**31, size=4).tolist())
    raise ValueError(
        f"random_state must be an int, a numpy Generator, a numpy RandomState or None, got {random_state!r}"
    )


def check_random_state(random_state: Any) -> None:
    """Validate ``random_state`` without consuming anything from it."""
    if random_state is None or isinstance(random_state, np.random.Generator | np.random.RandomState):
        return
    seed_sequence(random_state)


def generator(random_state: Any) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(seed_sequence(random_state)))


def label_generators(random_state: Any, n: int) -> list[np.random.Generator]:
    """``n`` independent generators, the i-th one reserved for label (or bag) i."""
    return [np.random.Generator(np.random.PCG64(child)) for child in seed_sequence(random_state).spawn(n)]


def uniform_index(u: np.ndarray | float, size: np.ndarray | int) -> np.ndarray | int:
    """Map a uniform draw in [0, 1) to an index in [0, size): ``floor(u * size)``, never ``size`` itself."""
    return (np.asarray(u) * size).astype(np.int64)


class UniformTable:
    """Per-bag buffers of uniform draws, read by visit number; grown on demand from each bag's generator.

    ``Generator.random`` turns each 64-bit output into one double, so drawing k numbers in slices of any size
    yields the same k numbers: the table is exactly the stream that a one-at-a-time loop would read.
    """

    def __init__(self, generators: list[np.random.Generator], capacity: int):
        self._generators = generators
        self._table = np.stack([g.random(capacity) for g in generators]) if generators else np.empty((0, 0))

    def read(self, bag: np.ndarray, visit: np.ndarray) -> np.ndarray:
        """The uniforms of bag ``bag[i]`` at visit ``visit[i]`` (0-based), element-wise."""
        needed = int(visit.max()) + 1 if visit.size else 0
        capacity = self._table.shape[1]
        if needed > capacity:
            extra = max(needed, 2 * capacity) - capacity
            grown = [g.random(extra) for g in self._generators]
            self._table = np.concatenate([self._table, np.stack(grown)], axis=1)
        return self._table[bag, visit]
