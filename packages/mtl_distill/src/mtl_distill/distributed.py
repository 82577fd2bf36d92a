"""DistributedDataParallel under ``torchrun``: process-group setup, model wrapping and batch gathering.

The trainer uses PyTorch's own engine (``torch.distributed`` + ``DistributedDataParallel``); this module only
adds what the paper's losses need on top of it:

* The losses are *sums over the batch* and the binned-regression loss holds a CCC term, a statistic of the
  whole batch. So every rank gathers the whole global batch - outputs (differentiably), targets, masks and
  soft labels - and computes the global loss. The gradient of a gathered tensor flows back to its own rank
  summed over ranks (W copies of the same loss), and DDP divides by W when it averages gradients: the
  result is exactly the single-process gradient of the global batch, with no extra scaling.
* BatchNorm statistics differ per rank; ``TrainConfig(sync_batchnorm=True)`` converts the model with
  ``torch.nn.SyncBatchNorm``.

Launch: ``torchrun --nproc_per_node=2 train.py``, where ``train.py`` calls :func:`setup_distributed` once at
its start (gloo on CPU, nccl on CUDA), before it builds a trainer. Joining a process group and choosing the
CUDA device are process-wide effects, so they belong to the script's entry point (as in nanoGPT's
``train.py``); the trainer only asks whether a group exists (:func:`is_distributed`), and refuses to train
in a process that a launcher started (``WORLD_SIZE`` > 1) but that has not joined its group
(:func:`check_launched_group`): it would train alone on every batch. Public names: :func:`setup_distributed`,
:func:`default_device`, :func:`resolve_device`, :func:`check_launched_group`, :func:`is_distributed`,
:func:`world_size`, :func:`rank`, :func:`gather_batch`, :func:`all_gather_tensor`.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Mapping

import torch
import torch.distributed as dist

__all__ = [
    "all_gather_tensor",
    "check_launched_group",
    "default_device",
    "gather_batch",
    "is_distributed",
    "rank",
    "resolve_device",
    "setup_distributed",
    "world_size",
]


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Number of processes (1 outside a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 outside a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def default_device() -> torch.device:
    """This process's device, ``cuda:LOCAL_RANK`` when CUDA is available, else ``cpu``; it changes nothing.

    ``LOCAL_RANK`` is set by ``torchrun`` (0 when unset).

    Example
    -------
    >>> default_device().type in {"cpu", "cuda"}
    True
    """
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")


def setup_distributed(backend: str | None = None) -> torch.device:
    """Join the process group that ``torchrun`` describes in the environment, and pick this rank's device.

    Call it once, at the start of a script that may run under ``torchrun``, before building a trainer. It
    makes :func:`default_device` the current CUDA device (when CUDA is available), and joins the group when
    ``WORLD_SIZE`` > 1 and no group exists yet; otherwise it joins nothing. The backend defaults to nccl when
    CUDA is available, else gloo. A group joined here is destroyed when the process exits: left to
    interpreter teardown, gloo's threads can abort the process after training ended.

    Parameters
    ----------
    backend : str, optional
        The ``torch.distributed`` backend; default nccl on CUDA, gloo on CPU.

    Returns
    -------
    torch.device
        :func:`default_device`: ``cuda:LOCAL_RANK`` when CUDA is available, else ``cpu``.

    Example
    -------
    >>> setup_distributed().type in {"cpu", "cuda"}
    True
    """
    device = default_device()
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if _launched_world_size() > 1 and dist.is_available() and not dist.is_initialized():
        dist.init_process_group(backend=backend or ("nccl" if device.type == "cuda" else "gloo"))
        atexit.register(_destroy_process_group)
    return device


def check_launched_group() -> None:
    """Raise unless a process that a launcher started as one of several has joined its process group.

    Outside a launcher (``WORLD_SIZE`` unset or 1) it does nothing.

    Raises
    ------
    RuntimeError
        When ``WORLD_SIZE`` > 1 but no process group is initialised: each process would train on its own,
        each on every batch, and all would write the same files.

    Example
    -------
    >>> check_launched_group()  # not started by torchrun: nothing to check
    """
    size = _launched_world_size()
    if size > 1 and not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(
            f"this process is one of WORLD_SIZE={size} started by torchrun (or another launcher), but it "
            "has not joined their process group: call mtl_distill.distributed.setup_distributed() at the "
            "start of the script, before building a Trainer"
        )


def resolve_device(device: str | None = None) -> torch.device:
    """The device a training run uses: ``device`` when given, else :func:`default_device`.

    It only asks (joining a process group is the entry point's call, :func:`setup_distributed`), and it
    refuses, like :func:`check_launched_group`, in a launched process that has not joined its group.

    Example
    -------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    check_launched_group()
    return torch.device(device) if device is not None else default_device()


def _launched_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", 1))


def _destroy_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


class _AllGather(torch.autograd.Function):
    """All-gather along dim 0 whose backward hands every rank the sum over ranks of its slice's gradient."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, tensor.contiguous())
        ctx.rows = tensor.shape[0]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)
        start = dist.get_rank() * ctx.rows
        return grad[start : start + ctx.rows]


def all_gather_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` (same shape on every rank) across ranks along dim 0, in rank order.

    Differentiable: the gradient reaching this rank's slice is summed over ranks. Outside a process group
    the tensor is returned unchanged.
    """
    if not is_distributed():
        return tensor
    if tensor.requires_grad:
        return _AllGather.apply(tensor)
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


def gather_batch(*batches: Mapping[str, torch.Tensor] | None) -> tuple[dict[str, torch.Tensor] | None, ...]:
    """Gather every tensor of each task-keyed dict across ranks (see :func:`all_gather_tensor`).

    Bool tensors travel as uint8 (not every backend gathers bool). ``None`` entries pass through. Outside a
    process group nothing is gathered or converted (this runs on every training step).
    """
    if not is_distributed():
        return tuple(None if batch is None else dict(batch) for batch in batches)
    gathered = []
    for batch in batches:
        if batch is None:
            gathered.append(None)
            continue
        result = {}
        for name, tensor in batch.items():
            if tensor.dtype == torch.bool:
                result[name] = all_gather_tensor(tensor.to(torch.uint8)).bool()
            else:
                result[name] = all_gather_tensor(tensor)
        gathered.append(result)
    return tuple(gathered)
