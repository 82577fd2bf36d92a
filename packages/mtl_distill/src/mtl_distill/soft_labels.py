"""Where a student's soft labels come from: the teacher run online, or a cache of its outputs.

A *soft-label source* is any callable ``source(inputs, indices) -> {task: teacher logits [B, num_outputs]}``
for the batch being trained on (``indices`` are the samples' dataset indices):

* :class:`OnlineSoftLabels` runs the frozen teacher on the same (augmented) batch as the student - the paper.
* :class:`CachedSoftLabels` looks the teacher's logits up in a :class:`SoftLabelCache`, computed once per
  sample on an un-augmented pass and stored as float16 (2 bytes per logit): no teacher forward per step.
* :class:`PerTaskSoftLabels` takes each task's soft labels from a source of its own (e.g. cached for the
  classification tasks, online for a regression task).

A teacher is any model with the multitask output dict, or an :class:`EnsembleTeacher` of several students
(the next generation's teacher). The teacher is deep-copied, put in eval mode and frozen, so the caller's
module is never modified.

For benchmarks: build a source once, then time ``Trainer(model, tasks, config, soft_labels=source)
.train_step(batch)`` against the teacher's ``Trainer(...).train_step(batch)`` on the same batches.

Public names: :class:`SoftLabelCache`, :class:`OnlineSoftLabels`, :class:`CachedSoftLabels`,
:class:`PerTaskSoftLabels`, :class:`EnsembleTeacher`, :func:`frozen_copy`.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset

from mtl_distill import distributed
from mtl_distill.batching import IndexedDataset
from mtl_distill.checkpoint import load_checkpoint, save_checkpoint
from mtl_distill.logging_utils import progress as progress_bar
from mtl_distill.tasks import Task

__all__ = [
    "CachedSoftLabels",
    "EnsembleTeacher",
    "OnlineSoftLabels",
    "PerTaskSoftLabels",
    "SoftLabelCache",
    "frozen_copy",
]


def frozen_copy(model: nn.Module, device: torch.device | str | None = None) -> nn.Module:
    """A deep copy of ``model`` in eval mode with ``requires_grad=False`` everywhere (optionally moved)."""
    frozen = copy.deepcopy(model)
    if device is not None:
        frozen.to(device)
    frozen.eval()
    frozen.requires_grad_(False)
    return frozen


class EnsembleTeacher(nn.Module):
    """Several models acting as one teacher: per task, logits whose prediction is the members' mean.

    Each task's ``combine_logits`` turns the members' logits into logits of the averaged probabilities
    (sigmoid for multi-label, softmax for multi-class and per dimension for binned regression; the mean value
    for plain regression), which are valid teacher outputs for :func:`mtl_distill.student_loss`.

    Example
    -------
    >>> import torch
    >>> from mtl_distill import MultiClassTask
    >>> class Fixed(torch.nn.Module):
    ...     def __init__(self, logits):
    ...         super().__init__()
    ...         self.logits = logits
    ...     def forward(self, x):
    ...         return {"c": self.logits.expand(len(x), -1)}
    >>> pair = EnsembleTeacher([Fixed(torch.tensor([[0.0, 9.0]])), Fixed(torch.tensor([[9.0, 0.0]]))],
    ...                        [MultiClassTask("c", 2)])
    >>> torch.softmax(pair(torch.zeros(1, 1))["c"], dim=1).round(decimals=3).tolist()
    [[0.5, 0.5]]
    """

    def __init__(self, members: Sequence[nn.Module], tasks: Sequence[Task]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an EnsembleTeacher needs at least one member model")
        self.members = nn.ModuleList(members)
        self.tasks = list(tasks)

    def forward(self, inputs: Tensor) -> dict[str, Tensor]:
        outputs = [member(inputs) for member in self.members]
        return {task.name: task.combine_logits([out[task.name] for out in outputs]) for task in self.tasks}


class OnlineSoftLabels:
    """Soft labels from running the frozen teacher on the training batch itself (the paper's way).

    Parameters
    ----------
    teacher : nn.Module
        Copied and frozen (eval mode, no gradients); the caller's module is left as it is.
    device : torch.device or str, optional
        Where the copy lives; default where the teacher's parameters are.
    """

    def __init__(self, teacher: nn.Module, device: torch.device | str | None = None) -> None:
        self.teacher = frozen_copy(teacher, device)

    def to(self, device: torch.device | str) -> OnlineSoftLabels:
        self.teacher.to(device)
        return self

    @torch.no_grad()
    def __call__(self, inputs: Tensor, indices: Tensor | None = None) -> dict[str, Tensor]:
        return dict(self.teacher(inputs))


class SoftLabelCache:
    """Teacher logits of every sample of a dataset, ``[num_samples, num_outputs]`` per task, by index.

    A sequence model's items of ``L`` frames give ``[num_samples, L, num_outputs]``.

    Stored in ``dtype`` (float16 by default: 2 bytes per logit; values beyond float16's range are clipped
    to it). :meth:`lookup` returns float32.

    Parameters
    ----------
    logits : mapping of task name -> Tensor
        ``[num_samples, num_outputs]`` per task, row ``i`` for dataset index ``i``.
    computed : Tensor of bool, optional
        ``[num_samples]``, which rows hold teacher outputs (all by default); looking up another row is an
        error.

    Example
    -------
    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> class Head(torch.nn.Module):
    ...     def forward(self, x):
    ...         return {"t": x * 2}
    >>> items = [(torch.tensor([float(i)]), {}, {}) for i in range(4)]
    >>> cache = SoftLabelCache.build(Head(), items)
    >>> cache.lookup(torch.tensor([3, 1]))["t"].tolist()
    [[6.0], [2.0]]
    """

    def __init__(self, logits: Mapping[str, Tensor], computed: Tensor | None = None) -> None:
        sizes = {name: len(values) for name, values in logits.items()}
        if not sizes or len(set(sizes.values())) != 1:
            raise ValueError(f"a SoftLabelCache needs one row count for every task, got {sizes}")
        self.logits = dict(logits)
        self.num_samples = next(iter(sizes.values()))
        self.computed = (
            computed.bool() if computed is not None else torch.ones(self.num_samples, dtype=torch.bool)
        )

    @classmethod
    @torch.no_grad()
    def build(
        cls,
        teacher: nn.Module,
        dataset: Dataset,
        *,
        indices: Sequence[int] | np.ndarray | None = None,
        batch_size: int = 256,
        num_workers: int = 0,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float16,
        progress: bool = False,
    ) -> SoftLabelCache:
        """Run ``teacher`` (frozen copy, eval mode) once over ``dataset`` items ``(inputs, targets, masks)``.

        Give a dataset without random augmentation: the cache holds one output per sample (should the
        dataset augment anyway, item ``i`` is loaded with RNG seed ``i``, so the cache is reproducible).
        ``indices`` restricts the pass to those samples (default: all). Under ``torch.distributed`` each
        rank computes a share and the shares are gathered, so every rank ends with the whole cache.
        ``progress`` draws a progress bar over the batches (tqdm, when installed).
        """
        device = torch.device(device) if device is not None else _device_of(teacher)
        teacher = frozen_copy(teacher, device)
        wanted = (
            np.arange(len(dataset)) if indices is None else np.unique(np.asarray(indices, dtype=np.int64))
        )
        mine = wanted[distributed.rank() :: distributed.world_size()]
        # Each item is loaded with its index as the RNG seed: should the dataset still augment, the cache
        # holds the same view of every sample whatever the number of ranks or workers.
        keys = [(index, index) for index in mine.tolist()]
        loader = DataLoader(
            Subset(IndexedDataset(dataset), keys), batch_size=batch_size, num_workers=num_workers
        )
        chunks: dict[str, list[Tensor]] = {}
        for batch in progress_bar(loader, desc="caching soft labels", enabled=progress):
            outputs = teacher(batch[0].to(device))
            for name, values in outputs.items():
                chunks.setdefault(name, []).append(_to_storage(values, dtype))
        if not chunks:  # this rank had no samples: learn the output shapes from one sample
            outputs = teacher(torch.utils.data.default_collate([dataset[int(wanted[0])]])[0].to(device))
            chunks = {name: [_to_storage(values, dtype)[:0]] for name, values in outputs.items()}
        logits, computed = {}, torch.zeros(len(dataset), dtype=torch.bool)
        for name, parts in chunks.items():
            # [num_samples, *item shape]: [N, C] for frame models, [N, L, C] for sequence models
            table = torch.zeros(len(dataset), *parts[0].shape[1:], dtype=dtype)
            table[torch.from_numpy(mine)] = torch.cat(parts)
            logits[name] = table
        computed[torch.from_numpy(wanted)] = True
        if distributed.is_distributed():
            logits = _gather_shares(logits, device)
        return cls(logits, computed)

    def __len__(self) -> int:
        return self.num_samples

    def lookup(self, indices: Tensor, device: torch.device | str | None = None) -> dict[str, Tensor]:
        """The cached teacher logits of dataset ``indices`` as float32, per task."""
        indices = torch.as_tensor(indices, dtype=torch.long).cpu()
        if len(indices) and (indices.min() < 0 or indices.max() >= self.num_samples):
            raise IndexError(
                f"soft-label lookup of index {int(indices.max())} in a cache of {self.num_samples} samples"
            )
        if not bool(self.computed[indices].all()):
            missing = int(indices[~self.computed[indices]][0])
            raise KeyError(
                f"sample {missing} has no cached teacher output (it was not in the cache's indices)"
            )
        return {
            name: values[indices].to(device=device, dtype=torch.float32)
            for name, values in self.logits.items()
        }

    def state_dict(self) -> dict[str, Tensor | dict[str, Tensor]]:
        return {"logits": self.logits, "computed": self.computed}

    def save(self, path: str | os.PathLike) -> None:
        """Write the cache atomically (read it back with :meth:`load`)."""
        save_checkpoint(self.state_dict(), path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> SoftLabelCache:
        state = load_checkpoint(path)
        if "logits" not in state or "computed" not in state:
            raise ValueError(f"{path} is not a soft-label cache (keys {sorted(state)})")
        return cls(state["logits"], state["computed"])


class CachedSoftLabels:
    """Soft labels looked up in a :class:`SoftLabelCache` by the batch's sample indices."""

    def __init__(self, cache: SoftLabelCache) -> None:
        self.cache = cache

    def to(self, device: torch.device | str) -> CachedSoftLabels:
        return self

    def __call__(self, inputs: Tensor, indices: Tensor | None = None) -> dict[str, Tensor]:
        if indices is None:
            raise ValueError(
                "cached soft labels need the batch's sample indices: load batches through "
                "mtl_distill.batching.IndexedDataset (the Trainer does) so that each batch ends with the "
                "indices"
            )
        return self.cache.lookup(indices, device=inputs.device)


class PerTaskSoftLabels:
    """Each task's soft labels from its own source: ``sources`` maps a task name to a soft-label source.

    Every distinct source runs once per batch (one teacher forward however many tasks take it online); a
    task whose source returns no logits for it is an error naming the task.

    Example
    -------
    >>> import torch
    >>> online = lambda inputs, indices: {"c": inputs, "r": inputs}
    >>> cached = lambda inputs, indices: {"c": torch.zeros_like(inputs), "r": torch.zeros_like(inputs)}
    >>> source = PerTaskSoftLabels({"c": cached, "r": online})
    >>> {task: logits.tolist() for task, logits in source(torch.ones(1, 2), torch.tensor([0])).items()}
    {'c': [[0.0, 0.0]], 'r': [[1.0, 1.0]]}
    """

    def __init__(self, sources: Mapping[str, Callable[..., Mapping[str, Tensor]]]) -> None:
        if not sources:
            raise ValueError("PerTaskSoftLabels needs a source for at least one task")
        self.sources = dict(sources)

    def to(self, device: torch.device | str) -> PerTaskSoftLabels:
        for source in {id(source): source for source in self.sources.values()}.values():
            if hasattr(source, "to"):
                source.to(device)
        return self

    def __call__(self, inputs: Tensor, indices: Tensor | None = None) -> dict[str, Tensor]:
        outputs: dict[int, Mapping[str, Tensor]] = {}
        soft = {}
        for task, source in self.sources.items():
            if id(source) not in outputs:
                outputs[id(source)] = source(inputs, indices)
            if task not in outputs[id(source)]:
                raise KeyError(f"the soft-label source of task {task!r} gives no logits for it")
            soft[task] = outputs[id(source)][task]
        return soft


def _device_of(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def _to_storage(values: Tensor, dtype: torch.dtype) -> Tensor:
    values = values.detach().float().cpu()
    if dtype.is_floating_point:
        limit = torch.finfo(dtype).max
        values = values.clamp(-limit, limit)
    return values.to(dtype)


def _gather_shares(logits: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    """Every rank filled its own rows (the others are 0): summing the tables across ranks merges them."""
    merged = {}
    for name, table in logits.items():
        # float32 on the collective's device: the sum is exact since each row is non-zero on one rank only
        summed = table.float().to(device)
        torch.distributed.all_reduce(summed)
        merged[name] = summed.cpu().to(table.dtype)
    return merged
