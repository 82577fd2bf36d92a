"""One training run: a teacher (Eq. 13) or one student of a soft-label source (Eq. 14).

Reading order, top to bottom:

1. :class:`TrainConfig` - the settings of one run; :class:`TrainResult` - what it produced.
2. :class:`Trainer` - the run: :meth:`Trainer.fit` is the training loop (epochs of batches, evaluation,
   best-epoch selection, checkpoints and resume); :meth:`Trainer.train_step`, below it, is one optimiser
   step (forward, soft labels, loss, backward, step on one batch); :meth:`Trainer.state_dict` is what a
   checkpoint holds.

Algorithm 1 - the teacher, then K students - is built from Trainers in :mod:`mtl_distill.distillation`.

A model maps an input batch to ``{task: logits [B, num_outputs]}``; a dataset item is
``(inputs, targets, masks)`` (see :mod:`mtl_distill.losses`). Batches come from a
:class:`~mtl_distill.batching.MultiTaskBatchSampler` (N samples per task per batch).

Checkpoints (``<out_dir>/checkpoint.pt``, every ``checkpoint_every`` steps and at each epoch end) hold the
model, optimiser, scheduler, grad scaler, position (epoch, step), history, best weights and RNG states; a
run killed at any step and started again with the same arguments resumes from the last checkpoint and ends
with the same weights as an uninterrupted run (CPU, deterministic ops). Under ``torchrun``, once the script
has joined the process group (:func:`mtl_distill.distributed.setup_distributed`, an entry point's call), the
model is wrapped in DistributedDataParallel and every rank trains on its share of the same global batches
(see :mod:`mtl_distill.distributed`). Constructing a trainer joins no group and sets no CUDA device.

Each finished epoch is logged at INFO on the ``mtl_distill.trainer`` logger (a child of ``mtl_distill``)
when ``TrainConfig.progress`` is set; a script shows these lines by configuring logging, e.g.
``logging.basicConfig(level=logging.INFO, format="%(message)s")``.

For benchmarks (``benchmarks/bench_trainer.py``): ``Trainer(model, tasks, config).train_step(batch)`` is the
teacher step and ``Trainer(model, tasks, config, soft_labels=source).train_step(batch)`` the student step,
``source`` an :class:`~mtl_distill.soft_labels.OnlineSoftLabels` or a
:class:`~mtl_distill.soft_labels.CachedSoftLabels`; ``batch`` is ``(inputs, targets, masks, indices)`` as a
DataLoader over an :class:`~mtl_distill.batching.IndexedDataset` yields it.

Public names: :class:`TrainConfig`, :class:`TrainResult`, :class:`Trainer`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from mtl_distill import distributed
from mtl_distill.batching import IndexedDataset, MultiTaskBatchSampler
from mtl_distill.checkpoint import load_checkpoint, rng_state, save_checkpoint, seed_everything, set_rng_state
from mtl_distill.evaluation import evaluate, flatten_sequence_batch, mean_task_score
from mtl_distill.logging_utils import MetricsLogger, flatten_scores, progress
from mtl_distill.losses import BATCH_LOSS_WEIGHTS, SOFT_LABEL_WEIGHTS, student_loss, teacher_loss
from mtl_distill.tasks import Task

__all__ = ["STUDENT_LOSS_SETTINGS", "TrainConfig", "TrainResult", "Trainer"]

_logger = logging.getLogger(__name__)  # "mtl_distill.trainer" (fit() calls its MetricsLogger "logger")

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer], Any]
SoftLabelSource = Callable[[Tensor, Tensor | None], Mapping[str, Tensor]]


@dataclass
class TrainConfig:
    """Settings of one training run (the teacher, or one student).

    Parameters
    ----------
    epochs : int, default 8
        Epochs to train (the paper: teacher 8, students 3). The epoch length is the batch sampler's.
    lr, lr_step_epochs, lr_gamma : float, int, float, default 1e-4, 3, 0.1
        The default optimiser and schedule: Adam(lr), learning rate times ``lr_gamma`` every
        ``lr_step_epochs`` epochs (the paper).
    optimizer : callable, optional
        ``optimizer(parameters) -> torch.optim.Optimizer``, replacing the default Adam.
    scheduler : callable, optional
        ``scheduler(optimizer) -> LR scheduler``, stepped once per epoch, replacing the default StepLR.
    reduction, task_weights, lam, temperature, t2_scaling
        Passed to :func:`mtl_distill.teacher_loss` / :func:`mtl_distill.student_loss` (the last three only
        matter for students; the paper's lam 0.6, T 1.5, no T^2).
    unlabelled_weight : float, optional
        Weight of the distillation loss on samples without the task's label (students only). Default
        ``1 - lam``: every sample's soft labels count as much as on a labelled one (Hinton et al.'s
        mixture), which the studies of ``examples/digits`` and ``examples/emotion`` found better than the
        paper's 1 (``DistillConfig.paper()`` keeps 1).
    batch_loss_weight : {"lam", "teacher_share"}, default "teacher_share"
        Weight of a task's batch term (the CCC of binned regression) in the student loss: ``lam`` (Eq. 14,
        ``DistillConfig.paper()``), or the share of the task's loss the term has in the teacher's loss
        (:func:`mtl_distill.student_loss`), which the project's studies found better for the regression
        task on the synthetic affect corpus and part of the best setting on both of its problems.
    soft_label_weight : {"uniform", "confidence"}, default "uniform"
        Every sample's soft labels weighted alike, or by the teacher's confidence on the sample relative to
        the batch's mean (:func:`mtl_distill.student_loss`).
    num_workers : int, default 0
        DataLoader workers for training and evaluation.
    eval_batch_size : int, default 256
        Batch size of the per-epoch evaluation.
    device : str, optional
        Default: ``cuda:LOCAL_RANK`` when CUDA is available, else CPU
        (:func:`mtl_distill.distributed.default_device`).
    amp, amp_dtype : bool, str, default False, "float16"
        Mixed precision (``torch.autocast``; a GradScaler for float16). CUDA only; ignored on CPU.
    channels_last : bool, default False
        Model and 4-D inputs in channels-last memory format. CUDA only; ignored on CPU.
    sync_batchnorm : bool, default False
        Under DDP, convert BatchNorm layers to SyncBatchNorm (batch statistics over all ranks).
    checkpoint_every : int, optional
        Also checkpoint every this many optimiser steps (a checkpoint is always written at each epoch end).
    resume : bool, default True
        Continue from ``<out_dir>/checkpoint.pt`` when it exists. The checkpoint records the settings that
        decide what the run computes (learning rate and schedule, loss settings, best-epoch rule); resuming
        under other ones is a ValueError naming them. ``epochs`` may grow: the run is then extended.
    keep_best : bool, default True
        End with the weights of the best epoch on the validation data (else the last epoch's).
    selection : callable, optional
        ``selection({task: scores}) -> float``, higher is better; default the mean of the tasks' ``"score"``.
    progress : bool, default True
        Progress bars (tqdm, when installed) and one summary line per epoch, logged at INFO on the
        ``mtl_distill.trainer`` logger (shown where the script configures logging).
    tensorboard : bool, default True
        Log the per-epoch metrics to TensorBoard as well when it is installed.
    """

    epochs: int = 8
    lr: float = 1e-4
    lr_step_epochs: int = 3
    lr_gamma: float = 0.1
    optimizer: OptimizerFactory | None = None
    scheduler: SchedulerFactory | None = None
    reduction: str = "sum"
    task_weights: Mapping[str, float] | None = None
    lam: float = 0.6
    temperature: float = 1.5
    t2_scaling: bool = False
    unlabelled_weight: float | None = None
    batch_loss_weight: str = "teacher_share"
    soft_label_weight: str = "uniform"
    num_workers: int = 0
    eval_batch_size: int = 256
    device: str | None = None
    amp: bool = False
    amp_dtype: str = "float16"
    channels_last: bool = False
    sync_batchnorm: bool = False
    checkpoint_every: int | None = None
    resume: bool = True
    keep_best: bool = True
    selection: Callable[[Mapping[str, Mapping[str, float]]], float] | None = None
    progress: bool = True
    tensorboard: bool = True

    @property
    def distillation_weight_unlabelled(self) -> float:
        """The weight of the distillation loss on samples without the task's label: ``unlabelled_weight``,
        or ``1 - lam`` when it is None."""
        return 1.0 - self.lam if self.unlabelled_weight is None else float(self.unlabelled_weight)

    def __post_init__(self) -> None:
        # Checked here rather than when first used, which can be an epoch into the run (the schedule's step,
        # the evaluation's DataLoader).
        _check_int(self.epochs, "epochs", minimum=0)
        if self.checkpoint_every is not None:
            _check_int(self.checkpoint_every, "checkpoint_every", minimum=1, or_none=True)
        if self.scheduler is None:
            _check_int(self.lr_step_epochs, "lr_step_epochs", minimum=1)
        _check_int(self.eval_batch_size, "eval_batch_size", minimum=1)
        _check_int(self.num_workers, "num_workers", minimum=0)
        if self.amp_dtype not in ("float16", "bfloat16"):
            raise ValueError(f"amp_dtype must be 'float16' or 'bfloat16', got {self.amp_dtype!r}")
        if self.reduction not in ("sum", "mean"):
            raise ValueError(f"reduction must be 'sum' or 'mean', got {self.reduction!r}")
        # The student's loss settings too: a student starts only after the whole teacher has trained.
        if not 0.0 <= self.lam <= 1.0:
            raise ValueError(f"lam must lie in [0, 1], got {self.lam!r}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature!r}")
        if self.unlabelled_weight is not None and not self.unlabelled_weight >= 0:
            raise ValueError(f"unlabelled_weight must be >= 0 or None, got {self.unlabelled_weight!r}")
        if self.batch_loss_weight not in BATCH_LOSS_WEIGHTS:
            raise ValueError(
                f"batch_loss_weight must be one of {BATCH_LOSS_WEIGHTS}, got {self.batch_loss_weight!r}"
            )
        if self.soft_label_weight not in SOFT_LABEL_WEIGHTS:
            raise ValueError(
                f"soft_label_weight must be one of {SOFT_LABEL_WEIGHTS}, got {self.soft_label_weight!r}"
            )
        if self.optimizer is None and not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if self.scheduler is None and not self.lr_gamma > 0:
            raise ValueError(f"lr_gamma must be > 0, got {self.lr_gamma!r}")
        for name, weight in (self.task_weights or {}).items():
            if not float(weight) >= 0:
                raise ValueError(f"task_weights[{name!r}] must be >= 0, got {weight!r}")


def _check_int(value: Any, name: str, minimum: int, or_none: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}{' or None' if or_none else ''}, got {value!r}")


@dataclass
class TrainResult:
    """What a run produced: the trained ``model`` (best epoch's weights unless ``keep_best=False``), the
    per-epoch ``history`` (the rows of ``metrics.csv``), the best epoch (0-based) and its selection score."""

    model: nn.Module
    history: list[dict[str, Any]]
    best_epoch: int | None
    best_score: float | None
    out_dir: Path | None = None


class Trainer:
    """Trains one model: a teacher (``soft_labels=None``) or a student of a soft-label source.

    The model is trained in place and moved to the trainer's device. ``fit`` calls ``model.train()`` at
    the start of every epoch: a model with frozen parts (e.g. a frozen CNN under a GRU) should override
    ``train()`` to keep them in eval mode (the trainer warns about frozen BatchNorm layers in train mode).

    Parameters
    ----------
    model : nn.Module
        Maps an input batch to ``{task: logits}``.
    tasks : sequence of Task
        The tasks to train, with their losses and metrics.
    config : TrainConfig, optional
    soft_labels : callable, optional
        ``soft_labels(inputs, indices) -> {task: teacher logits}``, e.g.
        :class:`~mtl_distill.soft_labels.OnlineSoftLabels` or
        :class:`~mtl_distill.soft_labels.CachedSoftLabels`.
        Given: the student loss (Eq. 14); not given: the teacher loss (Eq. 13).
    seed : int, default 0
        Seeds torch / numpy / random at the start of a fresh run and the batch sampler's draws.
    out_dir : path, optional
        Checkpoints, ``metrics.csv`` and ``model.pt`` (final weights) go here; nothing is written without it.
    name : str, default "model"
        Used in progress bars and error messages.

    Example
    -------
    >>> import torch
    >>> from mtl_distill import MultiClassTask
    >>> from mtl_distill.batching import MultiTaskBatchSampler
    >>> class Model(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.linear = torch.nn.Linear(2, 2)
    ...     def forward(self, x):
    ...         return {"c": self.linear(x)}
    >>> items = [(torch.randn(2), {"c": torch.tensor(i % 2)}, {"c": torch.tensor(True)}) for i in range(8)]
    >>> sampler = MultiTaskBatchSampler({"c": range(8)}, batch_size=4)
    >>> trainer = Trainer(Model(), [MultiClassTask("c", 2)], TrainConfig(epochs=2, progress=False))
    >>> result = trainer.fit(items, sampler, val_dataset=items)
    >>> len(result.history), result.best_epoch in (0, 1)
    (2, True)
    """

    def __init__(
        self,
        model: nn.Module,
        tasks: Sequence[Task],
        config: TrainConfig | None = None,
        *,
        soft_labels: SoftLabelSource | None = None,
        seed: int = 0,
        out_dir: str | os.PathLike | None = None,
        name: str = "model",
    ) -> None:
        self.config = config = config if config is not None else TrainConfig()
        self.tasks = list(tasks)
        self.seed, self.name = int(seed), name
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.device = distributed.resolve_device(config.device)
        on_gpu = self.device.type == "cuda"
        if (config.amp or config.channels_last) and not on_gpu:
            warnings.warn(
                "amp and channels_last apply on CUDA only; training in float32 on CPU", stacklevel=2
            )
        self.amp = config.amp and on_gpu
        self.amp_dtype = getattr(torch, config.amp_dtype)
        self.channels_last = config.channels_last and on_gpu

        if config.sync_batchnorm and distributed.is_distributed():
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        self.model = model
        self.net = model  # what the forward pass calls: the DDP wrapper under torchrun
        if distributed.is_distributed():
            self.net = nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device] if on_gpu else None
            )
        self.soft_labels = soft_labels.to(self.device) if hasattr(soft_labels, "to") else soft_labels

        params = model.parameters()
        self.optimizer = (
            config.optimizer(params) if config.optimizer else torch.optim.Adam(params, lr=config.lr)
        )
        self.scheduler = (
            config.scheduler(self.optimizer)
            if config.scheduler
            else torch.optim.lr_scheduler.StepLR(self.optimizer, config.lr_step_epochs, config.lr_gamma)
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp and self.amp_dtype == torch.float16)

        # Position and records: everything a checkpoint needs to continue exactly.
        self.epoch = 0  # epochs finished
        self.step = 0  # optimiser steps done in the current epoch
        self.global_step = 0
        self.epoch_loss = 0.0  # sum of this epoch's step losses so far
        self.history: list[dict[str, Any]] = []
        self.best_epoch: int | None = None
        self.best_score: float | None = None
        self.best_state: dict[str, Tensor] | None = None
        self._steps_per_epoch: int | None = None  # of the batch sampler, checked on resume

    # -- the training loop -------------------------------------------------------------------------------
    def fit(
        self,
        train_dataset: Dataset,
        batch_sampler: MultiTaskBatchSampler,
        val_dataset: Dataset | None = None,
    ) -> TrainResult:
        """Train for ``config.epochs`` epochs, evaluating on ``val_dataset`` after each one.

        ``batch_sampler`` indexes ``train_dataset``; the trainer draws with its own seed from a copy of it.
        Without ``val_dataset`` the last epoch counts as the best. Resumes from ``<out_dir>/checkpoint.pt``
        when ``config.resume`` and the file exists (an already finished run just loads its weights).
        """
        config, is_main = self.config, distributed.rank() == 0
        checkpoint = self.out_dir / "checkpoint.pt" if self.out_dir else None
        if config.resume and checkpoint is not None and checkpoint.is_file():
            state = load_checkpoint(checkpoint)
            self._check_settings(state.get("settings"), checkpoint)
            self.load_state_dict(state)
        else:
            seed_everything(self.seed)
        sampler = batch_sampler.with_seed(self.seed)
        sampler.item_seeds = True  # per-slot seeds: augmentations independent of workers and resumes
        self._check_sampler(sampler, checkpoint)
        loader = DataLoader(
            IndexedDataset(train_dataset),
            batch_sampler=sampler,
            num_workers=config.num_workers,
            pin_memory=self.device.type == "cuda",
            # Its own generator: drawing the workers' base seed must not advance the global RNG, whose state
            # the checkpoints restore (the items are seeded per slot anyway).
            generator=torch.Generator().manual_seed(self.seed),
        )
        logger = None
        if self.out_dir is not None and is_main:
            # A resumed run's history was logged before its checkpoint was written (see _end_epoch).
            logged = [row["epoch"] for row in self.history]
            logger = MetricsLogger(self.out_dir, config.tensorboard, logged_epochs=logged)

        while self.epoch < config.epochs:
            sampler.set_epoch(self.epoch, start_step=self.step)
            self.net.train()
            self._warn_about_frozen_batchnorm_in_train_mode()
            bar = progress(
                loader,
                total=len(sampler),
                desc=f"{self.name} epoch {self.epoch + 1}/{config.epochs}",
                enabled=config.progress and is_main,
            )
            for batch in bar:
                loss = self.train_step(batch)
                self.step += 1
                self.global_step += 1
                self.epoch_loss += loss
                if hasattr(bar, "set_postfix"):
                    bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
                every = config.checkpoint_every
                if every and self.global_step % every == 0 and self.step < sampler.steps_per_epoch:
                    self.save_checkpoint()
            self._end_epoch(val_dataset, sampler.steps_per_epoch, logger)

        if config.keep_best and self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        if self.out_dir is not None and is_main:
            save_checkpoint(self.model.state_dict(), self.out_dir / "model.pt")
        if logger is not None:
            logger.close()
        return TrainResult(self.model, self.history, self.best_epoch, self.best_score, self.out_dir)

    def _warn_about_frozen_batchnorm_in_train_mode(self) -> None:
        """A frozen BatchNorm (no trainable parameters) in train mode still updates its running statistics."""
        drifting = [
            name
            for name, module in self.model.named_modules()
            if isinstance(module, nn.modules.batchnorm._BatchNorm)
            and module.training
            and module.track_running_stats
            and module.affine
            and not any(parameter.requires_grad for parameter in module.parameters())
        ]
        if drifting:
            warnings.warn(
                "frozen BatchNorm layers are in train mode, so their running statistics change during "
                f"training: {drifting[:3]}{' ...' if len(drifting) > 3 else ''}; the trainer calls "
                "model.train() every epoch, so override the model's train() to keep frozen parts in eval "
                "mode",
                stacklevel=3,
            )

    def _check_settings(self, saved: Mapping[str, Any] | None, checkpoint: Path) -> None:
        """A checkpoint continues only the run that wrote it: resuming under other settings would mix two."""
        if saved is None:  # written before checkpoints recorded their settings
            return
        # A setting added after the checkpoint was written counts as the value that did what the code did.
        saved = {**_ADDED_SETTINGS, **saved}
        current = _resume_settings(self.config, student=self.soft_labels is not None)
        # Only what this run reads counts: older teachers' checkpoints also hold the students' settings.
        changed = sorted(key for key in current if saved.get(key) != current[key])
        if changed:
            details = ", ".join(f"{key} {saved.get(key)!r} -> {current.get(key)!r}" for key in changed)
            raise ValueError(
                f"{checkpoint} was written by a run with other settings ({details}): resuming would mix the "
                "two; restore the settings, or start afresh (TrainConfig(resume=False), another out_dir, or "
                "delete the checkpoint)"
            )

    def _check_sampler(self, sampler: MultiTaskBatchSampler, checkpoint: Path | None) -> None:
        saved = self._steps_per_epoch
        if saved is not None and saved != sampler.steps_per_epoch:
            raise ValueError(
                f"{checkpoint} was written with {saved} steps per epoch but the batch sampler has "
                f"{sampler.steps_per_epoch}: resume with the same data settings, or use another out_dir"
            )
        self._steps_per_epoch = sampler.steps_per_epoch

    # -- one optimiser step ------------------------------------------------------------------------------
    def train_step(self, batch: Sequence[Any]) -> float:
        """Forward, loss, backward and optimiser step on one batch; returns the loss.

        ``batch`` is ``(inputs, targets, masks)`` or ``(inputs, targets, masks, indices)`` (the indices are
        needed by cached soft labels). Raises FloatingPointError naming the task, epoch and step when the
        loss is NaN or infinite.
        """
        inputs, targets, masks, indices = self._to_device(batch)
        autocast = (
            torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp else contextlib.nullcontext()
        )
        with autocast:
            outputs = self.net(inputs)
            soft = self.soft_labels(inputs, indices) if self.soft_labels is not None else None
        # The paper's losses are sums over the whole batch (and the CCC a batch statistic): under DDP every
        # rank computes them on the gathered global batch (see mtl_distill.distributed).
        outputs, targets, masks, soft = distributed.gather_batch(outputs, targets, masks, soft)
        outputs, targets, soft, masks = flatten_sequence_batch(outputs, targets, soft, masks=masks)
        loss = self._loss(self.tasks, outputs, targets, masks, soft)
        value = loss.item()
        if not math.isfinite(value):
            raise self._non_finite_error(value, outputs, targets, masks, soft)

        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return value

    def _to_device(self, batch: Sequence[Any]) -> tuple[Tensor, dict, dict, Tensor | None]:
        if len(batch) not in (3, 4):
            raise ValueError(f"a batch must be (inputs, targets, masks[, indices]), got {len(batch)} parts")
        inputs, targets, masks = batch[:3]
        indices = batch[3] if len(batch) == 4 else None
        inputs = inputs.to(self.device, non_blocking=True)
        if self.channels_last and inputs.dim() == 4:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        targets = {name: value.to(self.device, non_blocking=True) for name, value in targets.items()}
        masks = {name: value.to(self.device, non_blocking=True) for name, value in masks.items()}
        return inputs, targets, masks, indices

    def _loss(
        self,
        tasks: Sequence[Task],
        outputs: Mapping[str, Tensor],
        targets: Mapping[str, Tensor],
        masks: Mapping[str, Tensor],
        soft: Mapping[str, Tensor] | None,
    ) -> Tensor:
        config = self.config
        weights = config.task_weights
        if weights is not None:
            weights = {task.name: weights[task.name] for task in tasks if task.name in weights}
        if soft is None:
            return teacher_loss(tasks, outputs, targets, masks, config.reduction, weights)
        return student_loss(
            tasks,
            outputs,
            soft,
            targets,
            masks,
            lam=config.lam,
            temperature=config.temperature,
            reduction=config.reduction,
            task_weights=weights,
            t2_scaling=config.t2_scaling,
            unlabelled_weight=config.distillation_weight_unlabelled,
            batch_loss_weight=config.batch_loss_weight,
            soft_label_weight=config.soft_label_weight,
        )

    def _non_finite_error(self, value: float, outputs, targets, masks, soft) -> FloatingPointError:
        """Name the task(s) whose part of the loss is not finite (each task's part computed alone)."""
        parts = {}
        for task in self.tasks:
            with torch.no_grad():
                parts[task.name] = float(self._loss([task], outputs, targets, masks, soft))
        bad = [name for name, part in parts.items() if not math.isfinite(part)]
        bad_outputs = [name for name in bad if not bool(torch.isfinite(outputs[name]).all())]
        detail = f"; the model's outputs are not finite for {bad_outputs}" if bad_outputs else ""
        return FloatingPointError(
            f"{self.name}: the loss is {value} at epoch {self.epoch + 1}, step {self.step + 1} "
            f"(global step {self.global_step + 1}): task(s) {bad or sorted(parts)} gave a non-finite loss "
            f"(per-task losses {parts}){detail}"
        )

    # -- the end of an epoch -----------------------------------------------------------------------------
    def _end_epoch(self, val_dataset: Dataset | None, steps: int, logger: MetricsLogger | None) -> None:
        """Evaluate, keep the best weights, step the schedule, record the epoch and checkpoint."""
        config = self.config
        row: dict[str, Any] = {
            "epoch": self.epoch,
            "global_step": self.global_step,
            "lr": self.optimizer.param_groups[0]["lr"],
            "train_loss": self.epoch_loss / steps,
        }
        selection = None
        if val_dataset is not None:
            scores = evaluate(
                self.model,
                self.tasks,
                val_dataset,
                batch_size=config.eval_batch_size,
                num_workers=config.num_workers,
                device=self.device,
                amp=self.amp,
                amp_dtype=self.amp_dtype,
            )
            selection = float((config.selection or mean_task_score)(scores))
            row.update(flatten_scores(scores))
            row["val/selection"] = selection
        improved = (
            self.best_state is None
            or selection is None  # no validation data: the latest epoch is the best
            or (math.isfinite(selection) and not selection <= self.best_score)
        )
        if improved:
            self.best_epoch, self.best_score = self.epoch, selection
            self.best_state = {
                key: value.detach().cpu().clone() for key, value in self.model.state_dict().items()
            }
        row["best_epoch"] = self.best_epoch
        self.scheduler.step()
        self.history.append(row)
        self.epoch, self.step, self.epoch_loss = self.epoch + 1, 0, 0.0
        # Records first, then the checkpoint: every epoch that a checkpoint holds is already in metrics.csv
        # and TensorBoard, so a resumed run loses no row and does not send those epochs again.
        if logger is not None:
            logger.write(self.history)
        self.save_checkpoint()
        if config.progress and distributed.rank() == 0:
            scored = f", val {selection:.4f}" if selection is not None else ""
            _logger.info(
                "%s epoch %d/%d: train loss %.4f%s",
                self.name,
                self.epoch,
                config.epochs,
                row["train_loss"],
                scored,
            )

    # -- checkpoints -------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: tensors and primitives only (``weights_only`` loadable).

        Keys: ``model``, ``optimizer``, ``scheduler``, ``scaler``, ``epoch`` (finished), ``step`` (in the
        current epoch), ``global_step``, ``epoch_loss``, ``history``, ``best_epoch``, ``best_score``,
        ``best_model``, ``rng`` (torch, CUDA, numpy, Python), ``seed`` (drives the batch sampler and the
        per-sample augmentation seeds of the DataLoader workers), ``steps_per_epoch``.
        """
        return {
            "format": "mtl_distill.Trainer/1",
            "name": self.name,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "global_step": self.global_step,
            "epoch_loss": self.epoch_loss,
            "history": self.history,
            "best_epoch": self.best_epoch,
            "best_score": self.best_score,
            "best_model": self.best_state,
            "rng": rng_state(),
            "seed": self.seed,
            "steps_per_epoch": self._steps_per_epoch,
            "settings": _resume_settings(self.config, student=self.soft_labels is not None),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict` (weights, optimiser, schedule, position, records, RNG states)."""
        missing = [
            key for key in ("model", "optimizer", "scheduler", "epoch", "step", "rng") if key not in state
        ]
        if missing:
            raise ValueError(f"not a Trainer checkpoint: keys {missing} are missing (it has {sorted(state)})")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state["scaler"]:  # empty when the run was saved without float16 mixed precision
            self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step = state["epoch"], state["step"]
        self.global_step, self.epoch_loss = state["global_step"], state["epoch_loss"]
        self.history = list(state["history"])
        self.best_epoch, self.best_score, self.best_state = (
            state["best_epoch"],
            state["best_score"],
            state["best_model"],
        )
        self.seed = state["seed"]
        self._steps_per_epoch = state["steps_per_epoch"]
        set_rng_state(state["rng"])

    def save_checkpoint(self) -> Path | None:
        """Write :meth:`state_dict` atomically to ``<out_dir>/checkpoint.pt`` (rank 0 only)."""
        if self.out_dir is None or distributed.rank() != 0:
            return None
        return save_checkpoint(self.state_dict(), self.out_dir / "checkpoint.pt")


#: Settings recorded in checkpoints since a later version, with the value that reproduces the earlier code.
_ADDED_SETTINGS = {"batch_loss_weight": "lam", "soft_label_weight": "uniform"}
#: The ``TrainConfig`` fields that only the student loss reads.
STUDENT_LOSS_SETTINGS = (
    "lam",
    "temperature",
    "t2_scaling",
    "unlabelled_weight",
    "batch_loss_weight",
    "soft_label_weight",
)


def _resume_settings(config: TrainConfig, student: bool) -> dict[str, Any]:
    """The settings that decide what a run computes, as plain values (a checkpoint records them).

    Left out: ``epochs`` (a run may be extended: the schedule continues where it was), where and how fast it
    runs (device, mixed precision, workers, evaluation batch size), what it prints, the optimiser /
    scheduler factories, which cannot be compared (only whether one was given), and for a run without soft
    labels (a teacher) the student loss's settings, which it does not read.
    """
    weights = config.task_weights
    settings = {
        "lr": config.lr,
        "lr_step_epochs": config.lr_step_epochs,
        "lr_gamma": config.lr_gamma,
        "custom_optimizer": config.optimizer is not None,
        "custom_scheduler": config.scheduler is not None,
        "reduction": config.reduction,
        "task_weights": {name: float(weights[name]) for name in sorted(weights)} if weights else None,
        "keep_best": config.keep_best,
    }
    if student:
        settings.update({key: getattr(config, key) for key in STUDENT_LOSS_SETTINGS})
    return settings
