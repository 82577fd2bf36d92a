"""The ``teacher`` and ``students`` stages: Algorithm 1 with ``mtl_distill`` on affect_data's frame datasets.

Training data: one :class:`~affect_data.datasets.FrameDataset` per task over that task's merged training table
(random crop and flip per sample), joined with ``mtl_distill.concat_datasets``; every batch holds N samples of
each task drawn from the balanced index lists that ``prepare`` saved (the paper's 3N batches). After each
epoch the model is scored on the validation table and the best epoch's weights are kept: the best by the mean
of the ABAW 2020 task scores (``affect_data.metrics.abaw_selection_score``), the numbers the evaluation
reports, so that the epoch kept is the one the report would rank first.

Outputs: ``teacher/`` holds ``initial.pt`` (the starting weights, shared with the students), ``checkpoint.pt``
(resume), ``metrics.csv`` and ``model.pt`` (best epoch); ``students/student_<k>/`` the same for each student,
and ``students/soft_labels.pt`` the cached teacher outputs when some task's soft labels are cached (the
default ``by_task`` caches AU's and EXPR's). With ``generations``
> 1, generation ``g`` before the last is in ``students/generation_<g>/`` and teaches the next as an ensemble;
the last generation's students are ``students/student_<k>/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from affect_data.metrics import abaw_selection_score
from affect_data.prediction import abaw_tasks
from emotion.config import Config
from emotion.factory import (
    build_model,
    check_resumable,
    frame_dataset,
    load_model,
    read_table,
    resolve_device,
)
from emotion.pipeline import progress_bars
from mtl_distill.batching import MultiTaskBatchSampler, concat_datasets
from mtl_distill.distillation import train_generations, train_teacher
from mtl_distill.trainer import STUDENT_LOSS_SETTINGS, TrainConfig

__all__ = ["run_students", "run_teacher", "train_config", "training_data"]


def run_teacher(config: Config, folder: Path) -> dict[str, Any]:
    """Train the teacher on ground truth only (Eq. 13); resumes from ``folder/checkpoint.pt``."""
    model = build_model(config)
    check_resumable(folder, model, "teacher")
    train, sampler, validation, _ = training_data(config)
    result = train_teacher(
        model,
        abaw_tasks(),
        train,
        sampler,
        validation,
        train_config(config, config.training.teacher.epochs),
        seed=config.seed,
        out_dir=folder,
    )
    return {"best_epoch": result.best_epoch, "best_score": result.best_score}


def run_students(config: Config, folder: Path) -> dict[str, Any]:
    """Train the students from the teacher's starting weights on ground truth + soft labels (Eq. 14), for each
    generation."""
    students = config.training.students
    teacher_dir = config.stage_dir("teacher")
    start = "model.pt" if students.init == "teacher" else "initial.pt"
    initial = load_model(config, teacher_dir / start, "teacher")
    teacher = load_model(config, teacher_dir / "model.pt", "teacher")
    check_resumable(folder, initial, "students")
    train, sampler, validation, unaugmented = training_data(config)
    last = students.generations
    *_, results = train_generations(
        initial,
        teacher,
        abaw_tasks(),
        train,
        sampler,
        validation,
        train_config(config, students.epochs, students=True),
        generations=last,
        out_dirs=lambda generation: folder if generation == last else folder / f"generation_{generation}",
        num_students=students.count,
        soft_labels=students.soft_labels,
        cache_dataset=unaugmented,
        reinitialise=students.init == "random",
        bagging=students.bagging,
        seed=config.seed,
    )
    return {
        f"student_{k}": {"best_epoch": r.best_epoch, "best_score": r.best_score}
        for k, r in enumerate(results)
    }


def training_data(config: Config) -> tuple[Any, MultiTaskBatchSampler, Any, Any]:
    """The joined per-task training datasets, the 3N batch sampler, the validation dataset, and an
    un-augmented view of the training datasets (for cached soft labels), from ``prepare``'s outputs."""
    prepared = config.stage_dir("prepare")
    tasks = [task.name for task in abaw_tasks()]
    tables = {task: read_table(prepared / f"train_{task}.csv") for task in tasks}
    train, offsets = concat_datasets(
        {task: frame_dataset(tables[task], config, train=True) for task in tasks}
    )
    unaugmented, _ = concat_datasets(
        {task: frame_dataset(tables[task], config, train=False) for task in tasks}
    )
    sampler = MultiTaskBatchSampler(
        {task: np.load(prepared / f"balanced_{task}.npy") for task in tasks},
        batch_size=config.training.batch_per_task,
        steps_per_epoch=config.training.steps_per_epoch,
        offsets=offsets,
        seed=config.seed,
    )
    validation = frame_dataset(read_table(prepared / "validation.csv"), config, train=False)
    return train, sampler, validation, unaugmented


def train_config(config: Config, epochs: int, students: bool = False) -> TrainConfig:
    """mtl_distill's settings for ``epochs`` epochs under the config's ``training`` section; with
    ``students``, the students' loss settings too (``mtl_distill.trainer.STUDENT_LOSS_SETTINGS``, read from
    ``training.students``, which has a field of each name)."""
    training = config.training
    loss = training.students
    keys = STUDENT_LOSS_SETTINGS if students else ()
    weight_decay = training.weight_decay
    device = resolve_device(training.device)
    return TrainConfig(
        epochs=epochs,
        lr=training.lr,
        lr_step_epochs=training.lr_step_epochs,
        lr_gamma=training.lr_gamma,
        optimizer=_adam(training.lr, weight_decay) if weight_decay else None,
        num_workers=config.data.num_workers,
        eval_batch_size=config.evaluation.batch_size,
        device=str(device),
        amp=device.type == "cuda",  # mixed precision and channels-last: GPU only
        channels_last=device.type == "cuda",
        selection=abaw_selection_score,
        progress=progress_bars(),
        **{key: getattr(loss, key) for key in keys},
    )


def _adam(lr: float, weight_decay: float):
    import torch

    return lambda parameters: torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay)
