"""A torch ``Sampler`` that re-draws a resampler's balanced index list every epoch, DDP-aware.

Every rank draws the same list from ``(seed, epoch)``, pads it to a multiple of the world size by repeating
its start, and takes ``list[rank::world_size]``: the ranks cover the list exactly once per epoch.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import numpy as np

from ._optional import missing_dependency
from .base import BaseResampler

try:
    import torch.distributed as dist
    from torch.utils.data import Sampler
except ImportError as error:
    raise missing_dependency("torch", "imbalance.torch", error) from error

__all__ = ["ResampledSampler", "shard"]


def shard(indices: np.ndarray, rank: int, num_replicas: int) -> np.ndarray:
    """Rank ``rank``'s share of ``indices``: pad to a multiple of ``num_replicas`` by repeating the start
    of the list (cyclically if needed), then take every ``num_replicas``-th index from ``rank``.

    Examples
    --------
    >>> import numpy as np
    >>> from imbalance.torch import shard
    >>> [shard(np.arange(5), r, 2).tolist() for r in range(2)]
    [[0, 2, 4], [1, 3, 0]]

    Raises
    ------
    ValueError
        ``num_replicas`` below 1, ``rank`` outside ``[0, num_replicas)`` (either not an integer), or
        ``indices`` not 1-D.
    """
    for value, label in ((num_replicas, "num_replicas"), (rank, "rank")):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise ValueError(f"{label} must be an integer, got {value!r}")
    if num_replicas < 1:
        raise ValueError(f"num_replicas must be at least 1, got {num_replicas}")
    if not 0 <= rank < num_replicas:
        raise ValueError(f"rank must lie in [0, {num_replicas - 1}], got {rank}")
    indices = np.asarray(indices)
    if indices.ndim != 1:
        raise ValueError(f"indices must be 1-D, got shape {indices.shape}")
    if indices.size == 0:
        return indices
    total = -(-indices.size // num_replicas) * num_replicas
    padded = np.resize(indices, total)  # np.resize repeats the array cyclically
    return padded[rank::num_replicas]


class ResampledSampler(Sampler[int]):
    """Yield a freshly resampled index list every epoch, sharded across DistributedDataParallel ranks.

    Parameters
    ----------
    resampler : BaseResampler
        Any resampler of this package (``MLROS``, ``ClassBalancedSampler``, ``BinnedSampler``, ...), or any
        object with ``fit_indices(y)`` and a ``random_state`` attribute. Its own ``random_state`` is ignored:
        epoch ``e`` works on a copy seeded from ``(seed, e)``.
    y : array-like
        The targets the resampler balances (label matrix, classes or continuous values).
    seed : int, default=0
        Base seed; the same on every rank.
    num_replicas, rank : int or None
        World size and this process's rank. ``None`` reads them from ``torch.distributed`` when it is
        initialised, else 1 and 0.
    shuffle : bool, default=True
        Shuffle the drawn list (with the same ``(seed, epoch)`` generator) before sharding; ML-ROS lists come
        ordered (originals, then clones), so leave it on for training.

    Examples
    --------
    >>> import numpy as np
    >>> from imbalance import ClassBalancedSampler
    >>> from imbalance.torch import ResampledSampler
    >>> y = np.array([0] * 8 + [1] * 2)
    >>> sampler = ResampledSampler(ClassBalancedSampler(), y, seed=0, num_replicas=2, rank=1)
    >>> sampler.set_epoch(3)
    >>> len(sampler), len(list(sampler))
    (5, 5)
    """

    def __init__(
        self,
        resampler: BaseResampler,
        y: Any,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
    ):
        if not (hasattr(resampler, "fit_indices") and hasattr(resampler, "random_state")):
            kind = type(resampler).__name__
            raise ValueError(f"resampler must have fit_indices(y) and a random_state attribute, got {kind}")
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        if num_replicas is None:
            num_replicas = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        if rank is None:
            rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        if num_replicas < 1:
            raise ValueError(f"num_replicas must be at least 1, got {num_replicas}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must lie in [0, {num_replicas - 1}], got {rank}")
        self.resampler = resampler
        self.y = y
        self.seed = int(seed)
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.shuffle = shuffle
        self.epoch = 0
        self._cache: tuple[int, np.ndarray] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose list the next iteration yields; call it before each epoch, on every rank."""
        if epoch < 0:
            raise ValueError(f"epoch must be non-negative, got {epoch}")
        self.epoch = int(epoch)

    def epoch_indices(self) -> np.ndarray:
        """The whole (unsharded, unpadded) list of the current epoch, identical on every rank."""
        if self._cache is None or self._cache[0] != self.epoch:
            sequence = np.random.SeedSequence([self.seed, self.epoch])
            draw_seed, shuffle_seed = sequence.spawn(2)
            resampler = copy.copy(self.resampler)  # the user's object keeps its own random_state
            resampler.random_state = np.random.Generator(np.random.PCG64(draw_seed))
            indices = resampler.fit_indices(self.y)
            if self.shuffle:
                indices = np.random.Generator(np.random.PCG64(shuffle_seed)).permutation(indices)
            self._cache = (self.epoch, indices)
        return self._cache[1]

    def __iter__(self) -> Iterator[int]:
        return iter(shard(self.epoch_indices(), self.rank, self.num_replicas).tolist())

    def __len__(self) -> int:
        return -(-self.epoch_indices().size // self.num_replicas)
