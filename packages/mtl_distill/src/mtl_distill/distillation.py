"""Algorithm 1 of the paper: a teacher learns from ground truth, then K students from it and the ground truth.

Reading order, top to bottom:

1. :class:`DistillConfig` - the settings: a teacher run, ``num_students`` student runs per generation, where
   the soft labels come from and where the students start; :class:`DistillResult` - the runs it produced.
2. :func:`distill` - Algorithm 1 end to end: :func:`train_teacher` (procedure TEACHER), then
   :func:`train_generations`: :func:`train_students` (procedure STUDENT, ``num_students`` times) for each
   generation; from the second generation on, the previous generation's ensemble is the teacher.
3. How each student starts and what it learns from: its seed, :func:`reset_parameters`
   (``student_init="random"``) and the cached teacher outputs (``soft_labels="cached"``).

Each run is one :class:`~mtl_distill.trainer.Trainer` (:mod:`mtl_distill.trainer`: the training loop,
checkpoints and resume, DDP). With an output folder the whole algorithm resumes: ``teacher/`` and
``generation_<g>/student_<k>/`` each hold one run's checkpoint.

Public names: :class:`DistillConfig`, :class:`DistillResult`, :func:`distill`, :func:`train_teacher`,
:func:`train_generations`, :func:`train_students`, :func:`reset_parameters`.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from mtl_distill import distributed
from mtl_distill.batching import MultiTaskBatchSampler
from mtl_distill.checkpoint import load_checkpoint, save_checkpoint
from mtl_distill.soft_labels import (
    CachedSoftLabels,
    EnsembleTeacher,
    OnlineSoftLabels,
    PerTaskSoftLabels,
    SoftLabelCache,
)
from mtl_distill.tasks import Task
from mtl_distill.trainer import SoftLabelSource, TrainConfig, Trainer, TrainResult

__all__ = [
    "DistillConfig",
    "DistillResult",
    "distill",
    "reset_parameters",
    "train_generations",
    "train_students",
    "train_teacher",
]

#: Where students start (see :class:`DistillConfig`).
STUDENT_INITS = ("teacher_initial", "random", "teacher")
SOFT_LABEL_KINDS = ("online", "cached")
#: ``soft_labels`` value: each task's own ``Task.preferred_soft_labels``.
BY_TASK = "by_task"


@dataclass
class DistillConfig:
    """Settings of Algorithm 1: a teacher run, then ``num_students`` student runs per generation.

    The defaults are the best method the project's studies found (``examples/digits`` and
    ``examples/emotion``, 5 seeds each): students trained as long as the teacher, on online soft labels,
    with ``TrainConfig``'s default loss; :meth:`paper` is the paper exactly.

    Parameters
    ----------
    teacher, student : TrainConfig
        Settings of the teacher run and of every student run: 8 epochs each by default (the paper: 8 and 3,
        students after an ImageNet start; from random weights, short students stay below their teacher).
    num_students : int, default 5
        Students per generation (K).
    generations : int, default 1
        1 is the paper. With more, the previous generation's students, as an
        :class:`~mtl_distill.soft_labels.EnsembleTeacher` (averaged probabilities), teach the next one.
    soft_labels : {"by_task", "online", "cached"} or mapping, default "by_task"
        "online": the teacher runs on every (augmented) training batch (the paper). "cached": the teacher's
        outputs are computed once per sample on ``cache_dataset`` (give an un-augmented view of the training
        samples; default the training dataset itself) and looked up. A mapping ``{task name: "online" or
        "cached"}`` naming every task chooses per task (the teacher then runs once per batch for the online
        tasks, and the cache holds every task's outputs). "by_task" is the mapping of each task's
        ``Task.preferred_soft_labels``: cached for classification, online for regression. It was the best
        setting of the project's studies on both problems: on the digits example its students beat their
        teacher on every task with intervals above zero on 10 seeds it was not chosen on, and on the
        synthetic affect corpus it was level with online soft labels for the students and the only setting
        whose ensemble beat the teacher on every task.
    cache_dtype : str, default "float16"
        Storage type of the cached teacher logits ("float16", "bfloat16" or "float32").
    student_init : {"teacher_initial", "random", "teacher"}, default "teacher_initial"
        Where each student starts: the teacher's starting weights (the paper: its ImageNet start), fresh
        random weights of its own (each parameterised module's ``reset_parameters()`` under the student's
        seed: students that differ from the start), or the trained teacher's weights (born-again
        fine-tuning: the students' budget then adds to the teacher's).
    bagging : bool, default False
        Each student draws its batches from its own bootstrap bag of every task's samples
        (:meth:`~mtl_distill.batching.MultiTaskBatchSampler.bagged`, under the student's seed): members that
        differ in their data, for the ensemble, at the price of about 37% of the samples per student.
    seed : int, default 0
        The teacher's seed; each student's seed is derived from ``(seed, generation, student)``.
    """

    teacher: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=8))
    student: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=8))
    num_students: int = 5
    generations: int = 1
    soft_labels: str | Mapping[str, str] = BY_TASK
    cache_dtype: str = "float16"
    student_init: str = "teacher_initial"
    bagging: bool = False
    seed: int = 0

    @classmethod
    def paper(cls, teacher_epochs: int = 8, student_epochs: int = 3, **settings: Any) -> DistillConfig:
        """The paper's Algorithm 1 exactly: Adam 1e-4 divided by 10 every 3 epochs, a teacher of 8 epochs and
        5 students of 3 epochs from the teacher's starting weights, lam 0.6, T 1.5 without T^2, online soft
        labels. ``settings`` go to both runs' :class:`TrainConfig` (e.g. ``device``, ``progress``).

        Example
        -------
        >>> config = DistillConfig.paper(progress=False)
        >>> config.student.epochs, config.student.lam, config.student.temperature, config.soft_labels
        (3, 0.6, 1.5, 'online')
        """
        optimisation = {"lr": 1e-4, "lr_step_epochs": 3, "lr_gamma": 0.1, **settings}
        loss = {
            "lam": 0.6,
            "temperature": 1.5,
            "t2_scaling": False,
            "unlabelled_weight": 1.0,
            "batch_loss_weight": "lam",
        }
        return cls(
            teacher=TrainConfig(epochs=teacher_epochs, **optimisation),
            student=TrainConfig(epochs=student_epochs, **loss, **optimisation),
            num_students=5,
            soft_labels="online",
            student_init="teacher_initial",
        )

    def __post_init__(self) -> None:
        _soft_label_kinds(self.soft_labels)  # a mapping's task names: by distill, which knows the tasks
        if self.cache_dtype not in ("float16", "bfloat16", "float32"):
            raise ValueError(f"cache_dtype must be float16, bfloat16 or float32, got {self.cache_dtype!r}")
        if self.student_init not in STUDENT_INITS:
            raise ValueError(f"student_init must be one of {STUDENT_INITS}, got {self.student_init!r}")
        if self.num_students < 1 or self.generations < 1:
            raise ValueError(
                f"num_students and generations must be >= 1, got {self.num_students}, {self.generations}"
            )


@dataclass
class DistillResult:
    """The teacher's run and, per generation, the students' runs (``generations[g][k]``)."""

    teacher: TrainResult
    generations: list[list[TrainResult]]

    @property
    def students(self) -> list[nn.Module]:
        """The last generation's student models."""
        return [run.model for run in self.generations[-1]]


def distill(
    model: nn.Module,
    tasks: Sequence[Task],
    train_dataset: Dataset,
    batch_sampler: MultiTaskBatchSampler,
    val_dataset: Dataset | None = None,
    config: DistillConfig | None = None,
    *,
    cache_dataset: Dataset | None = None,
    out_dir: str | os.PathLike | None = None,
    teacher: TrainResult | None = None,
) -> DistillResult:
    """Algorithm 1 end to end: the teacher, then ``num_students`` students for each generation.

    ``teacher``, a finished :func:`train_teacher` run that started from ``model``'s weights, is used
    instead of training one (``config.teacher`` is then ignored): one teacher can serve several student
    settings.

    ``model`` is not modified: the teacher starts from a copy of its current weights, and the students from
    the same weights, fresh random ones or the trained teacher's (``config.student_init``). Everything
    resumes from ``out_dir`` (``teacher/``, ``generation_<g>/student_<k>/``) when run again; the students
    then start from the weights saved in ``teacher/initial.pt`` by the first run.

    Example
    -------
    >>> import torch
    >>> from mtl_distill import MultiClassTask, MultiLabelTask
    >>> from mtl_distill.batching import MultiTaskBatchSampler
    >>> class Model(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.heads = torch.nn.ModuleDict({"c": torch.nn.Linear(3, 2), "m": torch.nn.Linear(3, 2)})
    ...     def forward(self, x):
    ...         return {name: head(x) for name, head in self.heads.items()}
    >>> def item(i):
    ...     x = torch.randn(3)
    ...     return x, {"c": torch.tensor(int(x[0] > 0)), "m": (x[1:] > 0).float()}, {
    ...         "c": torch.tensor(i < 6), "m": torch.tensor(i >= 6)}
    >>> data = [item(i) for i in range(12)]
    >>> sampler = MultiTaskBatchSampler({"c": range(6), "m": range(6, 12)}, batch_size=2)
    >>> quiet = TrainConfig(epochs=1, progress=False)
    >>> result = distill(Model(), [MultiClassTask("c", 2), MultiLabelTask("m", 2)], data, sampler, data,
    ...                  DistillConfig(teacher=quiet, student=quiet, num_students=2))
    >>> len(result.students)
    2
    """
    config = config if config is not None else DistillConfig()
    # Checked against the tasks before the teacher trains for hours, not after.
    _soft_label_kinds(config.soft_labels, tasks)
    root = Path(out_dir) if out_dir is not None else None
    initial_model = copy.deepcopy(model)
    saved_initial = root / "teacher" / "initial.pt" if root is not None else None
    if saved_initial is not None and saved_initial.is_file():  # resuming: the first run's starting weights
        initial_model.load_state_dict(load_checkpoint(saved_initial))
    if teacher is None:
        teacher = train_teacher(
            copy.deepcopy(initial_model),
            tasks,
            train_dataset,
            batch_sampler,
            val_dataset,
            config.teacher,
            seed=config.seed,
            out_dir=root / "teacher" if root is not None else None,
        )
    generations = train_generations(
        teacher.model if config.student_init == "teacher" else initial_model,
        teacher.model,
        tasks,
        train_dataset,
        batch_sampler,
        val_dataset,
        config.student,
        generations=config.generations,
        out_dirs=(lambda generation: root / f"generation_{generation}") if root is not None else None,
        num_students=config.num_students,
        soft_labels=config.soft_labels,
        cache_dataset=cache_dataset,
        cache_dtype=config.cache_dtype,
        reinitialise=config.student_init == "random",
        bagging=config.bagging,
        seed=config.seed,
    )
    return DistillResult(teacher, generations)


def train_teacher(
    model: nn.Module,
    tasks: Sequence[Task],
    train_dataset: Dataset,
    batch_sampler: MultiTaskBatchSampler,
    val_dataset: Dataset | None = None,
    config: TrainConfig | None = None,
    *,
    seed: int = 0,
    out_dir: str | os.PathLike | None = None,
) -> TrainResult:
    """Algorithm 1, procedure TEACHER: train ``model`` (in place) on ground truth only (Eq. 13).

    With ``out_dir``, the model's starting weights are saved first to ``<out_dir>/initial.pt`` (once), so
    that students started later - e.g. in another process - can begin from the same weights
    (``model.load_state_dict(mtl_distill.load_checkpoint(out_dir / "initial.pt"))``).
    """
    if out_dir is not None and distributed.rank() == 0 and not (Path(out_dir) / "initial.pt").is_file():
        save_checkpoint(model.state_dict(), Path(out_dir) / "initial.pt")
    trainer = Trainer(model, tasks, config, seed=seed, out_dir=out_dir, name="teacher")
    return trainer.fit(train_dataset, batch_sampler, val_dataset)


def train_generations(
    initial_model: nn.Module,
    teacher: nn.Module,
    tasks: Sequence[Task],
    train_dataset: Dataset,
    batch_sampler: MultiTaskBatchSampler,
    val_dataset: Dataset | None = None,
    config: TrainConfig | None = None,
    *,
    generations: int = 1,
    out_dirs: Callable[[int], str | os.PathLike] | None = None,
    **students: Any,
) -> list[list[TrainResult]]:
    """:func:`train_students` for each of ``generations``: generation 1 learns from ``teacher``, each later
    one from the previous generation's ensemble (an :class:`~mtl_distill.soft_labels.EnsembleTeacher`, the
    born-again networks of Furlanello et al.). ``out_dirs(g)`` is generation ``g``'s folder (1-based);
    ``students`` are :func:`train_students`' other keyword arguments (``num_students``, ``soft_labels``,
    ``seed``, ...). Returns each generation's runs.
    """
    if generations < 1:
        raise ValueError(f"generations must be >= 1, got {generations}")
    runs: list[list[TrainResult]] = []
    for generation in range(1, generations + 1):
        if runs:  # the generation before teaches this one
            teacher = EnsembleTeacher([run.model for run in runs[-1]], tasks)
        runs.append(
            train_students(
                initial_model,
                teacher,
                tasks,
                train_dataset,
                batch_sampler,
                val_dataset,
                config,
                generation=generation,
                out_dir=out_dirs(generation) if out_dirs is not None else None,
                **students,
            )
        )
    return runs


def train_students(
    initial_model: nn.Module,
    teacher: nn.Module,
    tasks: Sequence[Task],
    train_dataset: Dataset,
    batch_sampler: MultiTaskBatchSampler,
    val_dataset: Dataset | None = None,
    config: TrainConfig | None = None,
    *,
    num_students: int = 5,
    soft_labels: str | Mapping[str, str] = BY_TASK,
    cache_dataset: Dataset | None = None,
    cache_dtype: str = "float16",
    reinitialise: bool = False,
    bagging: bool = False,
    seed: int = 0,
    generation: int = 1,
    out_dir: str | os.PathLike | None = None,
) -> list[TrainResult]:
    """Algorithm 1, procedure STUDENT, ``num_students`` times: students of a frozen ``teacher`` (Eq. 14).

    Every student is a deep copy of ``initial_model`` (the paper: the teacher's *starting* weights) trained
    with its own seed, derived from ``(seed, generation, student index)``; with ``reinitialise`` each copy
    first gets fresh random weights of its own (``reset_parameters()`` of every module that has one, under
    the student's seed); with ``bagging`` each student draws from its own bootstrap bag of the samples
    (``batch_sampler.bagged(student seed)``). The teacher (a model or an
    :class:`~mtl_distill.soft_labels.EnsembleTeacher`) is copied, frozen and put in eval mode; the caller's
    modules are not modified. ``soft_labels`` is "by_task", "online", "cached" or a mapping of every task's
    name to one of the last two (:class:`DistillConfig`). "cached" computes the teacher's outputs once on
    ``cache_dataset`` (default ``train_dataset``; give an un-augmented view of the same samples), stored in
    ``cache_dtype`` (and in ``<out_dir>/soft_labels.pt``, reused on resume). Student ``k`` writes to
    ``<out_dir>/student_<k>``.
    """
    out_dir = Path(out_dir) if out_dir is not None else None
    config = config if config is not None else TrainConfig(epochs=8)
    device = distributed.resolve_device(config.device)
    per_task = _soft_label_kinds(soft_labels, tasks)
    kinds: dict[str, SoftLabelSource] = {}
    if "online" in per_task.values():
        kinds["online"] = OnlineSoftLabels(teacher, device)
    if "cached" in per_task.values():
        kinds["cached"] = CachedSoftLabels(
            _teacher_cache(teacher, cache_dataset or train_dataset, config, device, cache_dtype, out_dir)
        )
    if len(kinds) == 1:
        source = next(iter(kinds.values()))
    else:
        source = PerTaskSoftLabels({task: kinds[kind] for task, kind in per_task.items()})
    results = []
    for index in range(num_students):
        student_seed = _student_seed(seed, generation, index)
        student = copy.deepcopy(initial_model)
        if reinitialise:
            reset_parameters(student, student_seed)
        trainer = Trainer(
            student,
            tasks,
            config,
            soft_labels=source,
            seed=student_seed,
            out_dir=out_dir / f"student_{index}" if out_dir is not None else None,
            name=f"generation {generation} student {index + 1}/{num_students}",
        )
        sampler = batch_sampler.bagged(student_seed) if bagging else batch_sampler
        results.append(trainer.fit(train_dataset, sampler, val_dataset))
    return results


def _soft_label_kinds(
    soft_labels: str | Mapping[str, str], tasks: Sequence[Task] | None = None
) -> dict[str, str]:
    """Task name -> "online" or "cached", from one kind for every task, "by_task", or a mapping naming each
    task once.

    Without ``tasks`` only the kinds are checked (and the mapping, if any, is returned as it is).
    """
    task_names = [task.name for task in tasks] if tasks is not None else None
    if isinstance(soft_labels, str) and soft_labels in SOFT_LABEL_KINDS:
        return dict.fromkeys(task_names or (), soft_labels)
    if isinstance(soft_labels, str) and soft_labels == BY_TASK:
        soft_labels = {task.name: task.preferred_soft_labels for task in tasks or ()}
    if not isinstance(soft_labels, Mapping):
        raise ValueError(
            f"soft_labels must be {BY_TASK!r}, one of {SOFT_LABEL_KINDS} or a mapping task -> one of the "
            f"last two, got {soft_labels!r}"
        )
    wrong = {task: kind for task, kind in soft_labels.items() if kind not in SOFT_LABEL_KINDS}
    if wrong:
        raise ValueError(f"soft_labels of each task must be one of {SOFT_LABEL_KINDS}, got {wrong}")
    if task_names is None:
        return dict(soft_labels)
    missing = [name for name in task_names if name not in soft_labels]
    unknown = [name for name in soft_labels if name not in task_names]
    if missing or unknown:
        raise ValueError(
            f"soft_labels must name every task once: missing {missing}, not a task {unknown} "
            f"(the tasks: {list(task_names)})"
        )
    return {name: soft_labels[name] for name in task_names}


def _student_seed(seed: int, generation: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, generation, index + 1]).generate_state(1)[0])


def reset_parameters(model: nn.Module, seed: int) -> nn.Module:
    """Fresh random weights, in place: ``reset_parameters()`` of every submodule that has one, drawn from
    torch's generator seeded with ``seed`` (the global generator's state is left as it was).

    Raises a ValueError when a parameter belongs to no module that can reset it (a bare ``nn.Parameter``):
    it would silently keep its old value.
    """
    resettable = [module for module in model.modules() if callable(getattr(module, "reset_parameters", None))]
    covered = {id(p) for module in resettable for p in module.parameters(recurse=False)}
    left = [name for name, p in model.named_parameters() if id(p) not in covered]
    if left:
        raise ValueError(
            f"cannot re-initialise parameters {left[:3]}: no module with reset_parameters() owns them; "
            "give the model's modules a reset_parameters() or use student_init='teacher_initial'"
        )
    devices = [p.device for p in model.parameters() if p.device.type == "cuda"]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for module in resettable:
            module.reset_parameters()
    return model


def _teacher_cache(
    teacher: nn.Module,
    dataset: Dataset,
    config: TrainConfig,
    device: torch.device,
    dtype: str,
    out_dir: Path | None,
) -> SoftLabelCache:
    path = out_dir / "soft_labels.pt" if out_dir is not None else None
    if path is not None and path.is_file():
        return SoftLabelCache.load(path)
    cache = SoftLabelCache.build(
        teacher,
        dataset,
        batch_size=config.eval_batch_size,
        num_workers=config.num_workers,
        device=device,
        dtype=getattr(torch, dtype),
        progress=config.progress and distributed.rank() == 0,
    )
    if path is not None and distributed.rank() == 0:
        cache.save(path)
    return cache
