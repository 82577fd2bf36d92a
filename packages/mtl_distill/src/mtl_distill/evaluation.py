"""Predicting and scoring a multitask model on labelled data, with each task's own metric.

:func:`predict` runs a model over a dataset of ``(inputs, targets, masks)`` items and collects, per task,
the ``Task.predict`` outputs (probabilities or values), the targets and the masks as numpy arrays;
:func:`score_predictions` scores the labelled rows with ``Task.score``; :func:`evaluate` does both. The
trainer calls :func:`evaluate` after every epoch and picks the best epoch with :func:`mean_task_score`.

Sequence models are supported: outputs ``[B, L, C]`` with targets ``[B, L, ...]`` and masks ``[B, L]`` are
flattened to ``B * L`` samples (see :func:`flatten_sequence_batch`).

Public names: :class:`Predictions`, :func:`predict`, :func:`score_predictions`, :func:`evaluate`,
:func:`mean_task_score`, :func:`flatten_sequence_batch`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset

from mtl_distill import distributed
from mtl_distill.logging_utils import progress
from mtl_distill.tasks import Task

__all__ = [
    "Predictions",
    "evaluate",
    "flatten_sequence_batch",
    "mean_task_score",
    "predict",
    "score_predictions",
]


@dataclass
class Predictions:
    """Per-task arrays over the same samples: ``outputs`` (``Task.predict`` results), ``targets``, ``masks``.

    With ``predict(..., logits=True)`` the ``outputs`` are the raw logits instead.
    """

    outputs: dict[str, np.ndarray]
    targets: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]


def flatten_sequence_batch(
    outputs: Mapping[str, Tensor], *batches: Mapping[str, Tensor] | None, masks: Mapping[str, Tensor]
) -> tuple[dict[str, Tensor] | None, ...]:
    """Flatten sequence batches (masks ``[B, L]``) to ``B * L`` samples; frame batches pass unchanged.

    Returns ``(outputs, *batches, masks)`` with every tensor's two leading dims merged where the task's mask
    has two dims. ``None`` entries of ``batches`` pass through.

    Example
    -------
    >>> import torch
    >>> masks = {"t": torch.ones(2, 3, dtype=torch.bool)}
    >>> outputs, targets = {"t": torch.zeros(2, 3, 5)}, {"t": torch.zeros(2, 3)}
    >>> out, tgt, msk = flatten_sequence_batch(outputs, targets, masks=masks)
    >>> out["t"].shape, tgt["t"].shape, msk["t"].shape
    (torch.Size([6, 5]), torch.Size([6]), torch.Size([6]))
    """
    sequence_tasks = {name for name, mask in masks.items() if mask.dim() == 2}
    if not sequence_tasks:
        return (dict(outputs), *(None if b is None else dict(b) for b in batches), dict(masks))

    def flat(batch: Mapping[str, Tensor] | None) -> dict[str, Tensor] | None:
        if batch is None:
            return None
        return {
            name: value.flatten(0, 1) if name in sequence_tasks else value for name, value in batch.items()
        }

    return (flat(outputs), *(flat(b) for b in batches), flat(masks))


@torch.no_grad()
def predict(
    model: nn.Module,
    tasks: Sequence[Task],
    dataset: Dataset,
    *,
    batch_size: int = 256,
    num_workers: int = 0,
    device: torch.device | str | None = None,
    amp: bool = False,
    logits: bool = False,
    amp_dtype: torch.dtype = torch.float16,
    progress_desc: str | None = None,
) -> Predictions:
    """Run ``model`` in eval mode over ``dataset`` and collect per-task predictions, targets and masks.

    Under ``torch.distributed`` every rank predicts a share of the samples and all ranks receive all
    predictions, in dataset order. The model's train/eval mode is restored afterwards. ``amp`` runs the
    model under ``torch.autocast`` with ``amp_dtype`` (CUDA only; ignored on other devices). With
    ``progress_desc`` a progress bar of that description shows the batches (when tqdm is installed).

    Example
    -------
    >>> import torch
    >>> from mtl_distill import MultiClassTask
    >>> class Model(torch.nn.Module):
    ...     def forward(self, x):
    ...         return {"c": torch.cat([x, -x], dim=1)}
    >>> items = [(torch.tensor([1.0]), {"c": torch.tensor(0)}, {"c": torch.tensor(True)})] * 2
    >>> probabilities = predict(Model(), [MultiClassTask("c", 2)], items).outputs["c"]
    >>> probabilities.shape, [round(float(p), 3) for p in probabilities[0]]
    ((2, 2), [0.881, 0.119])
    """
    if len(dataset) == 0:
        raise ValueError("predict needs a dataset with at least one item, got an empty one")
    module = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    device = torch.device(device) if device is not None else _device_of(module)
    rank, world = distributed.rank(), distributed.world_size()
    order = np.arange(len(dataset))[rank::world]
    loader = DataLoader(Subset(dataset, order.tolist()), batch_size=batch_size, num_workers=num_workers)
    collected: dict[str, dict[str, list[np.ndarray]]] = {"outputs": {}, "targets": {}, "masks": {}}
    was_training = module.training
    module.eval()
    try:
        batches = progress(loader, desc=progress_desc or "", enabled=progress_desc is not None)
        for inputs, targets, masks in batches:
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp and device.type == "cuda"):
                outputs = module(inputs.to(device))
            outputs, targets, masks = flatten_sequence_batch(outputs, targets, masks=masks)
            for task in tasks:
                values = outputs[task.name].float()
                values = values if logits else task.predict(values)
                collected["outputs"].setdefault(task.name, []).append(values.cpu().numpy())
                collected["targets"].setdefault(task.name, []).append(targets[task.name].cpu().numpy())
                collected["masks"].setdefault(task.name, []).append(masks[task.name].cpu().numpy())
    finally:
        module.train(was_training)
    arrays = {
        kind: {name: np.concatenate(parts) for name, parts in per_task.items()}
        for kind, per_task in collected.items()
    }
    if world > 1:
        arrays = _gather_in_dataset_order(arrays, order, len(dataset))
    return Predictions(**arrays)


def score_predictions(
    tasks: Sequence[Task],
    predictions: Predictions,
    score_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, dict[str, float]]:
    """``Task.score`` of each task on its labelled rows; a task without labelled rows is left out (warning).

    ``score_kwargs`` passes extra arguments per task, e.g. ``{"AU": {"thresholds": tuned}}``.
    """
    scores = {}
    for task in tasks:
        mask = predictions.masks[task.name].astype(bool)
        if not mask.any():
            warnings.warn(f"no labelled sample for task {task.name!r}: it is not scored", stacklevel=2)
            continue
        extra = dict((score_kwargs or {}).get(task.name, {}))
        scores[task.name] = task.score(
            predictions.outputs[task.name][mask], predictions.targets[task.name][mask], **extra
        )
    return scores


def evaluate(model: nn.Module, tasks: Sequence[Task], dataset: Dataset, **kwargs: Any) -> dict[str, dict]:
    """:func:`predict` then :func:`score_predictions`: ``{task: {"score": ..., details...}}``."""
    return score_predictions(tasks, predict(model, tasks, dataset, **kwargs))


def mean_task_score(scores: Mapping[str, Mapping[str, float]]) -> float:
    """The default best-epoch criterion: the mean over tasks of each task's headline ``"score"``."""
    if not scores:
        return float("nan")
    return float(np.mean([task_scores["score"] for task_scores in scores.values()]))


def _device_of(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def _gather_in_dataset_order(
    arrays: dict[str, dict[str, np.ndarray]], order: np.ndarray, total: int
) -> dict[str, dict[str, np.ndarray]]:
    shares: list[Any] = [None] * distributed.world_size()
    torch.distributed.all_gather_object(shares, (order, arrays))
    positions = np.concatenate([share[0] for share in shares])
    inverse = np.empty(total, dtype=np.int64)
    inverse[positions] = np.arange(len(positions))
    # A rank with no item (fewer items than ranks) has no arrays at all: the other ranks' shares tell.
    filled = [share[1] for share in shares if len(share[0])]
    merged = {}
    for kind, per_task in filled[0].items():
        merged[kind] = {}
        for name in per_task:
            stacked = np.concatenate([share[kind][name] for share in filled])
            rows_per_item = len(stacked) // total  # sequence datasets give L rows per item
            blocks = stacked.reshape(total, rows_per_item, *stacked.shape[1:])
            merged[kind][name] = blocks[inverse].reshape(stacked.shape)
    return merged
