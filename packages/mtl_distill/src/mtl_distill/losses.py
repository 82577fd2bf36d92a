"""The batch losses of the paper: the teacher loss (Eq. 13) and the student loss (Eq. 14).

A batch is three dicts keyed by task name: ``outputs`` (logits ``[B, num_outputs]``), ``targets`` (any
value where unlabelled) and ``masks`` (bool ``[B]``, True where the sample has that task's label). A sample
may carry any subset of labels; the paper's batches (one labelled task per sample) are a special case.

With ``reduction="sum"``, for each task ``j`` with supervision ``L_j``, distillation ``H_j``, optional batch
term ``C_j`` (the CCC term of binned regression, over the labelled samples) and task weight ``w_j``::

    teacher = sum_j w_j * (sum_{n labelled for j} L_j(n) + C_j)                                          (13)
    student = sum_j w_j * (sum_{n labelled for j} [lam * L_j(n) + (1 - lam) * H_j(n)] + lam * C_j
                           + u * sum_{n not labelled for j} H_j(n))                                      (14)

with ``u = 1`` in the paper (``unlabelled_weight``). ``soft_label_weight="confidence"`` multiplies each
``H_j(n)`` by ``c_j(n) / mean_n c_j(n)``, the teacher's confidence on the sample (``Task.teacher_confidence``)
relative to the batch's mean: sure soft labels count more, unsure ones less, and the task's total
distillation weight stays as it was. ``batch_loss_weight="teacher_share"`` replaces the
``lam`` in front of ``C_j`` by ``(n_j + u * m_j) / n_j`` (``n_j`` samples labelled for ``j`` in the batch,
``m_j`` not): the batch term then keeps the share of task ``j``'s loss that it has in Eq. 13, where ``C_j``
stands beside ``n_j`` per-sample terms. The soft labels stand in for per-sample supervision only; nothing in
them replaces a term over the whole batch such as the CCC.

``reduction="mean"`` divides the total by the batch size ``B``. The teacher's outputs are detached: the
student loss never sends gradients into the teacher.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from mtl_distill.tasks import Task, _at_least_float32

__all__ = ["BATCH_LOSS_WEIGHTS", "SOFT_LABEL_WEIGHTS", "student_loss", "teacher_loss"]

#: What ``student_loss(batch_loss_weight=...)`` accepts.
BATCH_LOSS_WEIGHTS = ("lam", "teacher_share")
#: What ``student_loss(soft_label_weight=...)`` accepts.
SOFT_LABEL_WEIGHTS = ("uniform", "confidence")


def teacher_loss(
    tasks: Sequence[Task],
    outputs: Mapping[str, Tensor],
    targets: Mapping[str, Tensor],
    masks: Mapping[str, Tensor],
    reduction: str = "sum",
    task_weights: Mapping[str, float] | None = None,
) -> Tensor:
    """Supervision loss of the teacher over a batch (Eq. 13): ground truth only.

    Parameters
    ----------
    tasks : sequence of Task
        The tasks to sum over; ``outputs`` may hold further entries, which are ignored.
    outputs : dict of str to Tensor
        Logits ``[B, task.num_outputs]`` per task.
    targets : dict of str to Tensor
        Targets per task (see each Task for its shape and dtype); unlabelled rows may hold any value.
    masks : dict of str to Tensor
        Bool ``[B]`` per task, True where the sample is labelled for the task. A task with no labelled sample
        in the batch contributes exactly 0.
    reduction : {"sum", "mean"}, default "sum"
        ``"sum"`` is Eq. 13 as written; ``"mean"`` divides it by the batch size.
    task_weights : dict of str to float, optional
        Multiplies each task's part of the loss (default 1 for every task).

    Returns
    -------
    Tensor
        A scalar (float32, or float64 for float64 logits).

    Example
    -------
    >>> import torch
    >>> from mtl_distill import MultiClassTask
    >>> tasks = [MultiClassTask("digit", num_classes=2)]
    >>> outputs = {"digit": torch.zeros(2, 2)}
    >>> targets, masks = {"digit": torch.tensor([1, -1])}, {"digit": torch.tensor([True, False])}
    >>> loss = teacher_loss(tasks, outputs, targets, masks)
    >>> round(float(loss), 4)  # -log(1/2), from the single labelled sample
    0.6931
    """
    batch_size, weights = _check_batch(tasks, outputs, targets, masks, reduction, task_weights)
    total = 0.0
    for task in tasks:
        logits = _at_least_float32(outputs[task.name])
        mask = masks[task.name]
        prepared = task.prepare_targets(targets[task.name], mask)
        supervised = torch.where(mask, task.supervision_loss(logits, prepared), 0.0).sum()
        total = total + weights[task.name] * (supervised + task.batch_loss(logits, prepared, mask))
    return _reduce(total, batch_size, reduction)


def student_loss(
    tasks: Sequence[Task],
    student_outputs: Mapping[str, Tensor],
    teacher_outputs: Mapping[str, Tensor],
    targets: Mapping[str, Tensor],
    masks: Mapping[str, Tensor],
    lam: float = 0.6,
    temperature: float = 1.5,
    reduction: str = "sum",
    task_weights: Mapping[str, float] | None = None,
    t2_scaling: bool = False,
    unlabelled_weight: float = 1.0,
    batch_loss_weight: str = "lam",
    soft_label_weight: str = "uniform",
) -> Tensor:
    """Student loss over a batch (Eq. 14): ground truth where labelled, the teacher's soft labels everywhere.

    Parameters
    ----------
    tasks, targets, masks, reduction, task_weights
        As in :func:`teacher_loss`.
    student_outputs : dict of str to Tensor
        The student's logits ``[B, task.num_outputs]`` per task.
    teacher_outputs : dict of str to Tensor
        The teacher's logits on the same samples (detached; any float dtype, e.g. a float16 cache).
    lam : float, default 0.6
        Weight of the ground truth on labelled samples (``lam * L + (1 - lam) * H``), in [0, 1]. It also
        weights the CCC term of binned regression.
    temperature : float, default 1.5
        ``T`` of the softmax distillation losses (Eq. 11-12). The multi-label loss (Eq. 10) and plain
        regression do not use it.
    t2_scaling : bool, default False
        Multiply the temperature-softened distillation losses by ``T^2`` (Hinton et al.); the paper does not.
    unlabelled_weight : float, default 1.0
        Weight ``u`` of the distillation loss on the samples that have no label for the task (the paper: 1,
        so that a sample's missing labels count as much as a label). ``1 - lam`` gives every sample the same
        distillation weight, labelled or not, as in Hinton et al.'s mixture.
    batch_loss_weight : {"lam", "teacher_share"}, default "lam"
        The weight of a task's batch term (the CCC term of binned regression): ``lam`` (Eq. 14), or
        ``(n + u * m) / n`` for ``n`` labelled and ``m`` unlabelled samples of the task in the batch, so that
        the term keeps the share of the task's loss it has in the teacher's loss (see the module's docstring).
    soft_label_weight : {"uniform", "confidence"}, default "uniform"
        Every sample's distillation term weighted alike (the paper), or by the teacher's confidence on it
        relative to the batch's mean confidence for the task (see the module's docstring).

    Returns
    -------
    Tensor
        A scalar (float32, or float64 for float64 logits).

    Example
    -------
    >>> import torch
    >>> from mtl_distill import MultiLabelTask
    >>> tasks = [MultiLabelTask("attr", num_labels=1)]
    >>> zeros = {"attr": torch.zeros(1, 1)}
    >>> loss = student_loss(tasks, zeros, zeros, {"attr": torch.zeros(1, 1)}, {"attr": torch.tensor([False])})
    >>> round(float(loss), 4)  # BCE(1/2, 1/2) = log 2: the teacher's uncertainty is the target's entropy
    0.6931
    """
    batch_size, weights = _check_batch(tasks, student_outputs, targets, masks, reduction, task_weights)
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must lie in [0, 1], got {lam!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    if not unlabelled_weight >= 0:
        raise ValueError(f"unlabelled_weight must be >= 0, got {unlabelled_weight!r}")
    if batch_loss_weight not in BATCH_LOSS_WEIGHTS:
        raise ValueError(f"batch_loss_weight must be one of {BATCH_LOSS_WEIGHTS}, got {batch_loss_weight!r}")
    if soft_label_weight not in SOFT_LABEL_WEIGHTS:
        raise ValueError(f"soft_label_weight must be one of {SOFT_LABEL_WEIGHTS}, got {soft_label_weight!r}")
    _check_outputs(tasks, teacher_outputs, batch_size, "teacher_outputs")
    total = 0.0
    for task in tasks:
        logits = _at_least_float32(student_outputs[task.name])
        teacher_logits = teacher_outputs[task.name].detach().to(logits.dtype)
        mask = masks[task.name]
        prepared = task.prepare_targets(targets[task.name], mask)
        distilled = task.distillation_loss(logits, teacher_logits, temperature)
        if t2_scaling and task.uses_temperature:
            distilled = distilled * temperature**2
        if soft_label_weight == "confidence":
            distilled = distilled * _relative_confidence(task, teacher_logits)
        labelled = lam * task.supervision_loss(logits, prepared) + (1 - lam) * distilled
        per_sample = torch.where(mask, labelled, unlabelled_weight * distilled).sum()
        batch_term = task.batch_loss(logits, prepared, mask)
        if batch_loss_weight == "lam":
            batch_term = lam * batch_term
        else:  # teacher_share; a batch without a labelled sample has a batch term of 0 whatever its weight
            # Counted on the tensor's device: no host synchronisation per task and step on a GPU.
            labelled_count = mask.sum()
            share = (
                labelled_count + unlabelled_weight * (len(mask) - labelled_count)
            ) / labelled_count.clamp(min=1)
            batch_term = share * batch_term
        total = total + weights[task.name] * (per_sample + batch_term)
    return _reduce(total, batch_size, reduction)


def _check_batch(
    tasks: Sequence[Task],
    outputs: Mapping[str, Tensor],
    targets: Mapping[str, Tensor],
    masks: Mapping[str, Tensor],
    reduction: str,
    task_weights: Mapping[str, float] | None,
) -> tuple[int, dict[str, float]]:
    """Validate everything but the target values (each Task checks those); return B and the task weights."""
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    if isinstance(tasks, Task) or not tasks:
        raise ValueError("tasks must be a non-empty sequence of Task objects")
    names = []
    for task in tasks:
        if not isinstance(task, Task):
            raise TypeError(f"tasks must hold Task objects, got {type(task).__name__}")
        names.append(task.name)
    if len(set(names)) != len(names):
        raise ValueError(f"task names must be unique, got {names}")
    batch_size = _check_outputs(tasks, outputs, None, "outputs")
    for what, mapping in (("targets", targets), ("masks", masks)):
        missing = [name for name in names if name not in mapping]
        if missing:
            raise ValueError(f"{what} has no entry for task(s) {missing}; it has {sorted(mapping)}")
    for name in names:
        mask = masks[name]
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool or tuple(mask.shape) != (batch_size,):
            shape = list(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
            dtype = mask.dtype if isinstance(mask, Tensor) else ""
            raise ValueError(
                f"masks[{name!r}] must be a bool tensor of shape [{batch_size}], got {shape} {dtype}"
            )
        if not isinstance(targets[name], Tensor):
            raise TypeError(f"targets[{name!r}] must be a torch.Tensor, got {type(targets[name]).__name__}")
    weights = {name: 1.0 for name in names}
    if task_weights is not None:
        unknown = sorted(set(task_weights) - set(names))
        if unknown:
            raise ValueError(f"task_weights names unknown task(s) {unknown}; tasks are {names}")
        for name, weight in task_weights.items():
            if not float(weight) >= 0:
                raise ValueError(f"task_weights[{name!r}] must be >= 0, got {weight!r}")
            weights[name] = float(weight)
    return batch_size, weights


def _check_outputs(
    tasks: Sequence[Task], outputs: Mapping[str, Tensor], batch_size: int | None, what: str
) -> int:
    """Check that ``outputs`` has logits of the right shape for every task and one batch size; return it."""
    missing = [task.name for task in tasks if task.name not in outputs]
    if missing:
        raise ValueError(f"{what} has no entry for task(s) {missing}; it has {sorted(outputs)}")
    for task in tasks:
        logits = outputs[task.name]
        task.check_logits(logits, what=what)
        if batch_size is None:
            batch_size = len(logits)
        elif len(logits) != batch_size:
            raise ValueError(
                f"{what}[{task.name!r}] has batch size {len(logits)}, the other tasks {batch_size}"
            )
    return batch_size


def _relative_confidence(task: Task, teacher_logits: Tensor) -> Tensor:
    """The teacher's confidence per sample over the batch's mean; 1 everywhere if the mean is 0."""
    confidence = task.teacher_confidence(teacher_logits).to(teacher_logits.dtype)
    mean = confidence.mean()
    return torch.where(mean > 0, confidence / mean.clamp(min=torch.finfo(mean.dtype).tiny), 1.0)


def _reduce(total: Tensor, batch_size: int, reduction: str) -> Tensor:
    return total / batch_size if reduction == "mean" and batch_size > 0 else total
