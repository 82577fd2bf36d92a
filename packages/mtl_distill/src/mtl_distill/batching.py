"""The paper's batches: N samples of every task in each batch, drawn from per-task index lists or samplers.

Each task has a *source* of sample indices: a plain sequence of ints (e.g. a balanced list from
``imbalance.MLROS().fit_indices(y)``) or any ``torch.utils.data.Sampler`` over ints (e.g.
``imbalance.torch.ResampledSampler``, which draws a new balanced list for every ``set_epoch``).
:class:`MultiTaskBatchSampler` reads each source as an endless stream - cycle 0, cycle 1, ... - and cuts
``batch_size[task]`` indices per task for every batch, so one batch holds ``sum(batch_size.values())``
samples (the paper's ``3 N``). A source that runs out starts its next cycle: a sampler gets
``set_epoch(cycle)``, a plain list is reshuffled. The epoch length is a number of steps that the user sets,
not the length of the shortest list.

:meth:`MultiTaskBatchSampler.bagged` gives a copy that draws from its own bootstrap bag of every task's
samples (bagging, for ensemble members that differ in their data).

Everything is a pure function of ``(seed, epoch, step)``: the batch at any step can be recomputed without
replaying the ones before it, which is what makes an exact resume and identical batches across DDP ranks
cheap. Under ``torch.distributed`` every rank computes the same *global* batch and keeps its share
(``batch_size[task] / world_size`` per task), so per-task samplers must not shard themselves.

With ``item_seeds=True`` every batch entry is an ``(index, seed)`` pair; :class:`IndexedDataset` seeds
torch / numpy / random with that seed before loading the item, so random augmentations depend on the
sample's slot in the global batch only - not on the DataLoader worker that loads it, on the number of
workers, on resuming, or on the number of DDP ranks.

Public names: :class:`MultiTaskBatchSampler`, :class:`IndexedDataset`, :func:`concat_datasets`.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset, Sampler

from mtl_distill.checkpoint import seed_everything

__all__ = ["IndexedDataset", "MultiTaskBatchSampler", "concat_datasets"]

IndexSource = Sampler | Sequence[int] | np.ndarray | torch.Tensor


def concat_datasets(datasets: Mapping[str, Dataset]) -> tuple[ConcatDataset, dict[str, int]]:
    """Join one dataset per task into one dataset, returning it and each task's index offset.

    Pass the offsets to :class:`MultiTaskBatchSampler` so that per-task sources can keep indexing their own
    dataset (``0 .. len(datasets[task]) - 1``).

    Example
    -------
    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> parts = {"a": TensorDataset(torch.zeros(3)), "b": TensorDataset(torch.ones(2))}
    >>> joined, offsets = concat_datasets(parts)
    >>> len(joined), offsets
    (5, {'a': 0, 'b': 3})
    """
    if not datasets:
        raise ValueError("concat_datasets needs at least one task dataset, got an empty mapping")
    offsets, total = {}, 0
    for name, dataset in datasets.items():
        offsets[name] = total
        total += len(dataset)
    return ConcatDataset(list(datasets.values())), offsets


class MultiTaskBatchSampler(Sampler[list]):
    """Batches of ``batch_size[task]`` indices from each task's source, for ``DataLoader(batch_sampler=...)``.

    Parameters
    ----------
    sources : mapping of task name -> Sampler or sequence of ints
        Indices into the dataset (plus ``offsets[task]``). A sampler with ``set_epoch`` is asked for a new
        list each cycle (``set_epoch(cycle)``); a sampler without it is read once and its list reused. Pass
        samplers that do not shard for DDP themselves (``num_replicas=1``): this class shards the batch.
    batch_size : int or mapping of task name -> int
        Samples per task per batch (the paper's N), the same for every task when an int.
    steps_per_epoch : int, optional
        Batches per epoch. Default: enough batches for one pass over the longest source.
    offsets : mapping of task name -> int, optional
        Added to that task's indices (see :func:`concat_datasets`). Default 0.
    shuffle : bool, default True
        Permute every cycle of every source with a generator seeded by ``(seed, task, cycle)``; otherwise the
        sources' own order is kept.
    seed : int, default 0
        Drives the shuffling and the item seeds. :class:`mtl_distill.trainer.Trainer` draws from a copy
        seeded with its run's seed (:meth:`with_seed`), so that every student sees its own batches.
    num_replicas, rank : int, optional
        DDP world size and this process's rank; read from ``torch.distributed`` when initialised and not
        given. Each task's batch size must be divisible by the world size.
    item_seeds : bool, default False
        Yield ``(index, seed)`` pairs for :class:`IndexedDataset` instead of plain ints.

    Notes
    -----
    Call ``set_epoch(epoch, start_step)`` before iterating; ``len()`` is the number of batches left in the
    epoch. Batches are task-major: the first ``batch_size[first task]`` entries come from the first source.

    Example
    -------
    >>> sources = {"AU": [0, 1, 2, 3], "EXPR": [10, 11]}
    >>> sampler = MultiTaskBatchSampler(sources, batch_size=2, steps_per_epoch=3)
    >>> batches = list(sampler)
    >>> len(batches), [len(b) for b in batches]
    (3, [4, 4, 4])
    >>> all(set(b[:2]) <= {0, 1, 2, 3} and set(b[2:]) <= {10, 11} for b in batches)
    True
    """

    def __init__(
        self,
        sources: Mapping[str, IndexSource],
        batch_size: int | Mapping[str, int],
        steps_per_epoch: int | None = None,
        *,
        offsets: Mapping[str, int] | None = None,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        item_seeds: bool = False,
    ) -> None:
        if not sources:
            raise ValueError("MultiTaskBatchSampler needs at least one task source, got an empty mapping")
        self.tasks = list(sources)
        self.batch_size = _per_task_ints(batch_size, self.tasks, "batch_size")
        self.offsets = _per_task_ints(offsets or 0, self.tasks, "offsets", minimum=0)
        self._sources = {name: _check_source(name, source) for name, source in sources.items()}
        self.bag_seed: int | None = None
        self._multiplicity_blocks: dict[tuple[str, int], np.ndarray] = {}
        self._bag_lengths: dict[str, int] = {}  # a fixed list's bagged cycle length
        if steps_per_epoch is None:
            longest = max(self._cycle_length(name, 0) / self.batch_size[name] for name in self.tasks)
            steps_per_epoch = max(1, int(np.ceil(longest)))
        if int(steps_per_epoch) != steps_per_epoch or steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be a positive int, got {steps_per_epoch!r}")
        self.steps_per_epoch = int(steps_per_epoch)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.num_replicas = num_replicas
        self.rank = rank
        self.item_seeds = item_seeds
        self.epoch = 0
        self.start_step = 0
        self._cycle_starts: dict[str, list[int]] = {name: [0] for name in self.tasks}
        self._cycle_cache: dict[str, tuple[int, np.ndarray]] = {}
        self._fixed_lists: dict[str, np.ndarray] = {}  # samplers without set_epoch, read once

    # -- public API -------------------------------------------------------------------------------------
    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        """Select the epoch to iterate, starting after ``start_step`` batches (to resume mid-epoch)."""
        if epoch < 0 or not 0 <= start_step <= self.steps_per_epoch:
            raise ValueError(
                f"set_epoch needs epoch >= 0 and 0 <= start_step <= {self.steps_per_epoch}, "
                f"got epoch={epoch}, start_step={start_step}"
            )
        self.epoch, self.start_step = int(epoch), int(start_step)

    def with_seed(self, seed: int) -> MultiTaskBatchSampler:
        """A copy drawing with another seed (the trainer gives each student its own)."""
        clone = copy.copy(self)
        clone.seed = int(seed)
        clone._cycle_cache = {}
        return clone

    def bagged(self, bag_seed: int) -> MultiTaskBatchSampler:
        """A copy that draws from its own bootstrap bag of each task's samples (bagging).

        Every sample index ``i`` of a task gets a multiplicity ``k_i ~ Poisson(1)``, a fixed function of
        ``(bag_seed, task, i)``: each cycle of the task's source repeats ``i`` ``k_i`` times, so about 37%
        of the samples are left out of this copy's training and others count twice or more (the Poisson
        bootstrap, which needs no list of all samples in advance and so also works with a sampler that
        draws a new list every cycle). An index the source lists twice (a re-balanced list) keeps its two
        places, each repeated ``k_i`` times. Cycles get shorter or longer by a few percent; the epoch length,
        a number of steps, does not change.

        Example
        -------
        >>> bag = MultiTaskBatchSampler({"a": range(1000)}, batch_size=100).bagged(bag_seed=1)
        >>> batches = [bag.global_batch(epoch, step) for epoch in range(3) for step in range(10)]
        >>> seen = {int(i) for batch in batches for i in batch}
        >>> 560 < len(seen) < 700  # about 1 - 1/e of the 1000 samples, however long it draws
        True
        """
        clone = copy.copy(self)
        clone.bag_seed = int(bag_seed)
        clone._cycle_cache = {}
        clone._cycle_starts = {name: [0] for name in self.tasks}  # the bag changes the cycles' lengths
        clone._multiplicity_blocks = {}
        clone._bag_lengths = {}
        return clone

    def global_batch(self, epoch: int, step: int) -> np.ndarray:
        """The indices of batch ``step`` of ``epoch`` for all ranks together, task-major (int64 array)."""
        parts = []
        for name in self.tasks:
            n = self.batch_size[name]
            first = (epoch * self.steps_per_epoch + step) * n
            parts.append(self._stream(name, first, n) + self.offsets[name])
        return np.concatenate(parts)

    def item_seed_values(self, epoch: int, step: int) -> np.ndarray:
        """One uint32 seed per slot of the global batch of ``(epoch, step)``."""
        total = sum(self.batch_size.values())
        return np.random.SeedSequence([self.seed, epoch, step]).generate_state(total)

    def __len__(self) -> int:
        return self.steps_per_epoch - self.start_step

    def __iter__(self) -> Iterator[list]:
        slots = self._rank_slots()
        for step in range(self.start_step, self.steps_per_epoch):
            indices = self.global_batch(self.epoch, step)[slots].tolist()
            if self.item_seeds:
                seeds = self.item_seed_values(self.epoch, step)[slots].tolist()
                yield list(zip(indices, seeds, strict=True))
            else:
                yield indices

    # -- internals --------------------------------------------------------------------------------------
    def _rank_slots(self) -> np.ndarray:
        """Positions of this rank's share in the global batch: a contiguous chunk of every task's block."""
        world, rank = self.num_replicas, self.rank
        if world is None or rank is None:
            initialised = torch.distributed.is_available() and torch.distributed.is_initialized()
            world = world if world is not None else (torch.distributed.get_world_size() if initialised else 1)
            rank = rank if rank is not None else (torch.distributed.get_rank() if initialised else 0)
        if not 0 <= rank < world:
            raise ValueError(f"rank must lie in [0, {world}), got {rank}")
        slots, start = [], 0
        for name in self.tasks:
            n = self.batch_size[name]
            if n % world:
                raise ValueError(
                    f"batch_size[{name!r}] = {n} is not divisible by the world size {world}: every DDP rank "
                    "must get the same number of samples per task"
                )
            share = n // world
            slots.append(np.arange(start + rank * share, start + (rank + 1) * share))
            start += n
        return np.concatenate(slots)

    def _stream(self, name: str, first: int, count: int) -> np.ndarray:
        """``count`` indices of task ``name``'s endless stream, starting at position ``first``."""
        out = np.empty(count, dtype=np.int64)
        filled = 0
        while filled < count:
            position = first + filled
            cycle, cycle_start = self._locate(name, position)
            values = self._cycle(name, cycle)
            take = values[position - cycle_start : position - cycle_start + count - filled]
            out[filled : filled + len(take)] = take
            filled += len(take)
        return out

    def _locate(self, name: str, position: int) -> tuple[int, int]:
        """The cycle that holds stream ``position`` and the position where that cycle starts."""
        source = self._sources[name]
        if not isinstance(source, Sampler) or not hasattr(source, "set_epoch"):
            length = self._cycle_length(name, 0)  # every cycle has the same length
            return position // length, position // length * length
        starts = self._cycle_starts[name]
        while starts[-1] <= position:
            starts.append(starts[-1] + self._cycle_length(name, len(starts) - 1))
        cycle = int(np.searchsorted(starts, position, side="right")) - 1
        return cycle, starts[cycle]

    def _cycle_length(self, name: str, cycle: int) -> int:
        if self.bag_seed is None:
            return self._source_length(name, cycle)
        if hasattr(self._sources[name], "set_epoch"):
            # Asked once per cycle (``_locate`` keeps the starts); the cycle it builds is the one read next.
            return len(self._cycle(name, cycle))
        # A fixed list has one bag, so one length: counted once, not rebuilt for every batch.
        if name not in self._bag_lengths:
            size = int(self._multiplicities(name, self._source_values(name, cycle)).sum())
            self._bag_lengths[name] = self._check_bag(name, size, cycle)
        return self._bag_lengths[name]

    def _source_length(self, name: str, cycle: int) -> int:
        source = self._sources[name]
        if hasattr(source, "set_epoch"):
            source.set_epoch(cycle)
        length = len(source)
        if length < 1:
            raise ValueError(f"the index source of task {name!r} is empty (cycle {cycle})")
        return length

    def _cycle(self, name: str, cycle: int) -> np.ndarray:
        """The indices of one cycle of a source, shuffled when asked; the last one is kept."""
        cached = self._cycle_cache.get(name)
        if cached is not None and cached[0] == cycle:
            return cached[1]
        values = self._source_values(name, cycle)
        if self.bag_seed is not None:
            values = np.repeat(values, self._multiplicities(name, values))
            self._check_bag(name, len(values), cycle)
        if self.shuffle:
            task_number = self.tasks.index(name)
            values = values[np.random.default_rng([self.seed, task_number, cycle]).permutation(len(values))]
        self._cycle_cache[name] = (cycle, values)
        return values

    def _source_values(self, name: str, cycle: int) -> np.ndarray:
        """The indices the task's source gives for ``cycle``, checked, in the source's own order."""
        source = self._sources[name]
        if isinstance(source, Sampler):
            if hasattr(source, "set_epoch"):
                source.set_epoch(cycle)
                values = np.fromiter(iter(source), dtype=np.int64)
            else:  # no set_epoch: one list, read once and reused by every cycle
                if name not in self._fixed_lists:
                    self._fixed_lists[name] = np.fromiter(iter(source), dtype=np.int64)
                values = self._fixed_lists[name]
            if len(values) != self._source_length(name, cycle):
                raise ValueError(
                    f"the sampler of task {name!r} yielded {len(values)} indices in cycle {cycle} but its "
                    f"len() is {self._source_length(name, cycle)}"
                )
            if values.size and values.min() < 0:
                raise ValueError(f"the sampler of task {name!r} yielded a negative index ({values.min()})")
        else:
            values = source
        return values

    def _multiplicities(self, name: str, indices: np.ndarray) -> np.ndarray:
        """The bag's Poisson(1) count of each index, drawn in blocks so that any index can be looked up."""
        blocks, block_of = np.unique(indices // _BAG_BLOCK, return_inverse=True)
        task_number = self.tasks.index(name)
        for block in blocks.tolist():
            if (name, block) not in self._multiplicity_blocks:
                rng = np.random.default_rng([self.bag_seed, task_number, block])
                self._multiplicity_blocks[name, block] = rng.poisson(1.0, _BAG_BLOCK)
        table = np.stack([self._multiplicity_blocks[name, block] for block in blocks.tolist()])
        return table[block_of, indices % _BAG_BLOCK]

    def _check_bag(self, name: str, size: int, cycle: int) -> int:
        if not size:
            raise ValueError(
                f"the bootstrap bag (bag_seed {self.bag_seed}) of task {name!r} left no sample of cycle "
                f"{cycle}: the source is too small to bag"
            )
        return size


#: Indices whose bag multiplicities are drawn together (:meth:`MultiTaskBatchSampler.bagged`).
_BAG_BLOCK = 4096


class IndexedDataset(Dataset):
    """Wraps a dataset so that items carry their index: ``(inputs, targets, masks, index)``.

    Keys may be plain ints or ``(index, seed)`` pairs from ``MultiTaskBatchSampler(item_seeds=True)``. With a
    seed, torch's, numpy's and Python's global generators are seeded before the item is loaded, so random
    augmentations are reproducible per batch slot whatever the DataLoader workers. In the main process
    (``num_workers=0``) the generators' states are restored afterwards, so model-side randomness (dropout)
    is not disturbed by data loading.

    Example
    -------
    >>> import torch
    >>> items = [(torch.rand(2), {"t": torch.tensor(1.0)}, {"t": torch.tensor(True)})] * 3
    >>> indexed = IndexedDataset(items)
    >>> indexed[(2, 123)][3]
    2
    >>> torch.equal(indexed[(0, 7)][0], indexed[0][0])
    True
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[Any, Any, Any, int]:
        index, seed = (key, None) if not isinstance(key, tuple) else key
        index = int(index)
        if not 0 <= index < len(self.dataset):
            raise IndexError(
                f"sample index {index} is out of range for a dataset of {len(self.dataset)} items"
            )
        if seed is None:
            item = self.dataset[index]
        elif torch.utils.data.get_worker_info() is not None:
            seed_everything(seed, accelerators=False)
            item = self.dataset[index]
        else:
            saved = torch.get_rng_state(), np.random.get_state(), random.getstate()  # noqa: NPY002
            seed_everything(seed, accelerators=False)
            try:
                item = self.dataset[index]
            finally:
                torch.set_rng_state(saved[0])
                np.random.set_state(saved[1])  # noqa: NPY002
                random.setstate(saved[2])
        if not isinstance(item, tuple | list) or len(item) != 3:
            raise ValueError(
                f"dataset item {index} must be (inputs, targets, masks), got {type(item).__name__}"
                + (f" of length {len(item)}" if isinstance(item, tuple | list) else "")
            )
        return item[0], item[1], item[2], index


def _per_task_ints(value: int | Mapping[str, int], tasks: list[str], what: str, minimum: int = 1) -> dict:
    if isinstance(value, Mapping):
        unknown = set(value) - set(tasks)
        if unknown:
            raise ValueError(f"{what} names unknown task(s) {sorted(unknown)}; the sources are {tasks}")
        value = {name: value.get(name, 0 if minimum == 0 else None) for name in tasks}
        missing = [name for name, v in value.items() if v is None]
        if missing:
            raise ValueError(f"{what} gives no value for task(s) {missing}")
    else:
        value = dict.fromkeys(tasks, value)
    for name, v in value.items():
        if isinstance(v, bool) or int(v) != v or v < minimum:
            raise ValueError(f"{what}[{name!r}] must be an int >= {minimum}, got {v!r}")
    return {name: int(v) for name, v in value.items()}


def _check_source(name: str, source: IndexSource) -> Sampler | np.ndarray:
    if isinstance(source, Sampler):
        if getattr(source, "num_replicas", 1) not in (1, None):
            raise ValueError(
                f"the sampler of task {name!r} shards for {source.num_replicas} replicas; pass it unsharded "
                "(num_replicas=1, rank=0): MultiTaskBatchSampler splits each global batch across ranks"
            )
        if not hasattr(source, "__len__"):
            raise ValueError(f"the sampler of task {name!r} has no len(); a sized sampler is needed")
        return source
    values = np.asarray(source.cpu() if isinstance(source, torch.Tensor) else source)
    if values.ndim != 1 or (values.size and not np.issubdtype(values.dtype, np.integer)):
        raise ValueError(
            f"the index list of task {name!r} must be a 1-D sequence of ints, got shape {values.shape} "
            f"and dtype {values.dtype}"
        )
    if values.size == 0:
        raise ValueError(f"the index list of task {name!r} is empty")
    if values.min() < 0:
        raise ValueError(f"the index list of task {name!r} holds a negative index ({values.min()})")
    return values.astype(np.int64)
