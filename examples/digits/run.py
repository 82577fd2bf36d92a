"""Teacher-student multitask learning on scikit-learn's handwritten digits, each training image labelled once.

Three tasks of different kinds on the 8 x 8 digit images (``sklearn.datasets.load_digits``, bundled with
scikit-learn: nothing is downloaded):

* ``digit``      - multi-class, the digit 0-9;
* ``attributes`` - multi-label, four yes/no properties of the digit: even, >= 5, prime, has a closed loop;
* ``shape``      - binned regression (10 bins per dimension) of two numbers measured on the image: its ink
  (mean intensity) and the height of its centre of mass, each scaled to [-1, 1].

Every training image is labelled for ONE task only (a random third each), as in the paper, and gets
Gaussian pixel noise (std 0.1) as augmentation. A teacher learns from these labels alone; students learn from
the labels and the teacher's soft labels on every task (Algorithm 1); their ensemble averages their
probabilities, with per-label thresholds for ``attributes`` tuned on the validation split. A held-out test
split with all three labels scores everyone. Epochs are selected on the validation split.

One run says little (the teacher alone moves by about 0.01 between seeds), so the script runs a *study*:
every seed trains a teacher and each variant's students from it, and the variants are compared with the
teacher seed by seed (paired differences with 95% intervals, :mod:`mtl_distill.study`)::

    python examples/digits/run.py                          # the package's defaults over seeds 0-4
    python examples/digits/run.py --variants paper,default # two variants (one teacher per seed)
    python examples/digits/run.py --study                  # every variant of the README's tables
    python examples/digits/run.py --seeds 0                # one seed: a single-run table
    python examples/digits/run.py --quick                  # seconds: a smoke test

Runs are saved under ``--out-dir`` (default ``runs/digits``) and resume: a finished seed is not trained
again. The Markdown summary is printed and written to ``--results``.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import Tensor, nn
from torch.utils.data import Dataset

import mtl_distill as md

ATTRIBUTES = {
    "even": lambda digit: digit % 2 == 0,
    "ge5": lambda digit: digit >= 5,
    "prime": lambda digit: np.isin(digit, [2, 3, 5, 7]),
    "loop": lambda digit: np.isin(digit, [0, 6, 8, 9]),
}
TASKS = [
    md.MultiClassTask("digit", num_classes=10),
    md.MultiLabelTask("attributes", num_labels=4, label_names=list(ATTRIBUTES)),
    md.BinnedRegressionTask("shape", num_dims=2, num_bins=10, dim_names=["ink", "height"]),
]
#: Metrics of the tables: the task's headline score (macro F1, mean F1, mean CCC).
METRICS = {"digit": "digit macro F1", "attributes": "attributes mean F1", "shape": "shape mean CCC"}


class Digits(Dataset):
    """Items ``(image [64], targets, masks)``; with ``noise``, Gaussian pixel noise of that scale is added."""

    def __init__(self, images: Tensor, targets: dict[str, Tensor], masks: dict[str, Tensor], noise: float):
        self.images, self.targets, self.masks, self.noise = images.reshape(-1, 64), targets, masks, noise

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image = self.images[index]
        if self.noise:
            image = image + self.noise * torch.randn(64)
        targets = {name: values[index] for name, values in self.targets.items()}
        masks = {name: values[index] for name, values in self.masks.items()}
        return image, targets, masks


class MultitaskMLP(nn.Module):
    """A shared two-layer trunk and one linear head per task (the paper's layout, scaled down)."""

    def __init__(self, hidden: int = 128):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.heads = nn.ModuleDict({task.name: nn.Linear(hidden, task.num_outputs) for task in TASKS})

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        features = self.trunk(images)
        return {name: head(features) for name, head in self.heads.items()}


def shape_measures(images: np.ndarray) -> np.ndarray:
    """Ink (mean intensity) and height of the centre of mass of each ``[8, 8]`` image, ``[n, 2]``."""
    ink = images.mean(axis=(1, 2))
    rows = np.arange(8)[None, :, None]
    height = 7 - (images * rows).sum(axis=(1, 2)) / images.sum(axis=(1, 2))
    return np.stack([ink, height], axis=1)


def make_splits(seed: int, noise: float) -> tuple[Digits, Digits, Digits, Digits, dict[str, np.ndarray]]:
    """Train (one label per image, ``noise`` added), its noise-free view, validation and test (all labels)."""
    pixels, digits = load_digits(return_X_y=True)
    images = pixels.reshape(-1, 8, 8) / 16.0
    measures = shape_measures(images)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(digits))
    test, val, train = np.split(order, [int(0.3 * len(order)), int(0.45 * len(order))])
    # Scale the measures to [-1, 1] between the training split's 1st and 99th percentiles (clipping beyond).
    low, high = np.percentile(measures[train], [1, 99], axis=0)
    scaled = np.clip(2 * (measures - low) / (high - low) - 1, -1, 1)
    targets = {
        "digit": torch.from_numpy(digits).long(),
        "attributes": torch.from_numpy(np.stack([rule(digits) for rule in ATTRIBUTES.values()], 1)).float(),
        "shape": torch.from_numpy(scaled).float(),
    }
    images = torch.from_numpy(images).float()

    def subset(indices: np.ndarray, masks: dict[str, np.ndarray], noise: float = 0.0) -> Digits:
        return Digits(
            images[indices],
            {name: values[indices] for name, values in targets.items()},
            {name: torch.from_numpy(mask) for name, mask in masks.items()},
            noise,
        )

    labelled_task = rng.integers(0, len(TASKS), len(train))  # each training image: one task's label
    train_masks = {task.name: labelled_task == k for k, task in enumerate(TASKS)}
    full = {task.name: np.ones(len(test), dtype=bool) for task in TASKS}
    full_val = {task.name: np.ones(len(val), dtype=bool) for task in TASKS}
    sources = {name: np.flatnonzero(mask) for name, mask in train_masks.items()}
    return (
        subset(train, train_masks, noise),
        subset(train, train_masks),
        subset(val, full_val),
        subset(test, full),
        sources,
    )


# -- what is compared --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Schedule:
    """How long a teacher (and, unless a variant says otherwise, each student) trains.

    Adam at ``lr``, divided by 10 after ``lr_step_epochs``; an epoch is ``steps_per_epoch`` batches of 32
    images per task (None: one pass over the largest task's list, 11 batches).
    """

    epochs: int
    steps_per_epoch: int | None
    lr_step_epochs: int
    lr: float = 3e-3

    def train_config(self, epochs: int | None = None, **loss: Any) -> md.TrainConfig:
        return md.TrainConfig(
            epochs=self.epochs if epochs is None else epochs,
            lr=self.lr,
            lr_step_epochs=self.lr_step_epochs,
            progress=False,
            tensorboard=False,
            **loss,
        )


SCHEDULES = {
    # 40 epochs of 44 batches: the teacher's validation scores have levelled off (1,760 steps).
    "converged": Schedule(epochs=40, steps_per_epoch=44, lr_step_epochs=30),
    # This example's first schedule, 30 epochs of 11 batches (330 steps): far from converged.
    "short": Schedule(epochs=30, steps_per_epoch=None, lr_step_epochs=20),
    "quick": Schedule(epochs=3, steps_per_epoch=None, lr_step_epochs=20),
}


@dataclass(frozen=True)
class Variant:
    """One way of training the students: changes to the package's defaults, in package terms.

    ``student`` overrides :class:`mtl_distill.TrainConfig` loss fields of the students, ``distill``
    :class:`mtl_distill.DistillConfig` fields; ``student_epochs`` is a fraction of the teacher's epochs.
    """

    question: str
    description: str
    student: dict[str, Any] = field(default_factory=dict)
    distill: dict[str, Any] = field(default_factory=dict)
    student_epochs: float = 1.0
    schedule: str = "converged"


PAPER_LOSS = {
    "lam": 0.6,
    "temperature": 1.5,
    "t2_scaling": False,
    "unlabelled_weight": 1.0,
    "batch_loss_weight": "lam",
}
PAPER_DISTILL = {"soft_labels": "online", "student_init": "teacher_initial"}
# Variants that ran when online soft labels were the package's default name them (the default is now by task).
ONLINE = {"soft_labels": "online"}
VARIANTS = {
    "default": Variant(
        "defaults",
        "the package's defaults: students as long as the teacher, soft labels by task (cached for digit and "
        "attributes, online for shape), the CCC term at its share of the teacher's loss, every sample's "
        "distillation weighted 1 - lam = 0.4: the same training as per-task-kd-ccc",
    ),
    "online-kd": Variant(
        "defaults",
        "the package's defaults until the per-task study: students as long as the teacher, online soft "
        "labels, every sample's distillation weighted 1 - lam = 0.4 (Hinton et al.), the CCC term weighted "
        "lam",
        {"batch_loss_weight": "lam"},
        ONLINE,
    ),
    "paper": Variant(
        "the paper",
        "the paper exactly: lam 0.6, T 1.5, online soft labels, students from the teacher's start, "
        "for 3/8 of the teacher's epochs",
        PAPER_LOSS,
        PAPER_DISTILL,
        student_epochs=3 / 8,
    ),
    "paper-equal": Variant(
        "budget", "the paper's method, students as long as the teacher", PAPER_LOSS, PAPER_DISTILL
    ),
    "paper-short": Variant(
        "budget",
        "the paper's method, teacher and students on this example's first (short) schedule",
        PAPER_LOSS,
        PAPER_DISTILL,
        schedule="short",
    ),
    "from-teacher": Variant(
        "budget",
        "the paper's method, students start from the trained teacher (their budget adds to its)",
        PAPER_LOSS,
        {**PAPER_DISTILL, "student_init": "teacher"},
    ),
    "cached": Variant(
        "soft labels",
        "the paper's loss, students as long as the teacher, soft labels computed once on clean images",
        PAPER_LOSS,
        {**PAPER_DISTILL, "soft_labels": "cached"},
    ),
    "cached-kd": Variant(
        "soft labels",
        "students as long as the teacher; soft labels computed once on clean images, every sample's "
        "distillation weighted 1 - lam = 0.4 (the package's defaults before these studies)",
        {**PAPER_LOSS, "unlabelled_weight": 0.4},
        {**PAPER_DISTILL, "soft_labels": "cached"},
    ),
    "light": Variant(
        "loss weights",
        "students as long as the teacher; lam = 0.9, distillation of unlabelled samples weighted 0.1",
        {**PAPER_LOSS, "lam": 0.9, "unlabelled_weight": 0.1},
        PAPER_DISTILL,
    ),
    "own-init": Variant(
        "diversity",
        "the paper's loss, students as long as the teacher, each from its own random weights",
        PAPER_LOSS,
        {**PAPER_DISTILL, "student_init": "random"},
    ),
    "kd-ccc": Variant(
        "regression",
        "the package's defaults with the CCC term kept at the share of the loss it has in the teacher's "
        "(batch_loss_weight 'teacher_share')",
        {"batch_loss_weight": "teacher_share"},
        ONLINE,
    ),
    "cached-kd-ccc": Variant(
        "soft labels",
        "as kd-ccc, soft labels computed once on clean images",
        {"batch_loss_weight": "teacher_share"},
        {"soft_labels": "cached"},
    ),
    "per-task-kd-ccc": Variant(
        "soft labels",
        "as kd-ccc, soft labels per task: computed once on clean images for digit and attributes (where "
        "cached-kd-ccc won), online for shape (where kd-ccc won)",
        {"batch_loss_weight": "teacher_share"},
        {"soft_labels": {"digit": "cached", "attributes": "cached", "shape": "online"}},
    ),
    "per-task-own-init": Variant(
        "diversity",
        "as per-task-kd-ccc, each student from its own random weights: members that differ more, for the "
        "ensemble",
        {"batch_loss_weight": "teacher_share"},
        {
            "soft_labels": {"digit": "cached", "attributes": "cached", "shape": "online"},
            "student_init": "random",
        },
    ),
    "confidence": Variant(
        "soft labels",
        "as kd-ccc, each sample's soft labels weighted by the teacher's confidence on it (1 - normalised "
        "entropy, relative to the batch's mean)",
        {"batch_loss_weight": "teacher_share", "soft_label_weight": "confidence"},
        ONLINE,
    ),
    "per-task-confidence": Variant(
        "soft labels",
        "as per-task-kd-ccc, each sample's soft labels weighted by the teacher's confidence on it",
        {"batch_loss_weight": "teacher_share", "soft_label_weight": "confidence"},
        {"soft_labels": {"digit": "cached", "attributes": "cached", "shape": "online"}},
    ),
    "per-task-bagging": Variant(
        "diversity",
        "as per-task-kd-ccc, each student on its own bootstrap bag of every task's samples (bagging): "
        "members that differ in their data, for the ensemble",
        {"batch_loss_weight": "teacher_share"},
        {"soft_labels": {"digit": "cached", "attributes": "cached", "shape": "online"}, "bagging": True},
    ),
    "from-teacher-kd": Variant(
        "budget",
        "as kd-ccc, students start from the trained teacher (their budget adds to its)",
        {"batch_loss_weight": "teacher_share"},
        {**ONLINE, "student_init": "teacher"},
    ),
    "born-again": Variant(
        "generations",
        "as kd-ccc, two generations: the first generation's ensemble teaches the second (born-again "
        "networks), whose students are scored",
        {"batch_loss_weight": "teacher_share"},
        {**ONLINE, "generations": 2},
    ),
    "from-teacher-control": Variant(
        "control",
        "control of from-teacher-kd: students from the trained teacher with the teacher's loss (lam = 1, no "
        "soft labels), that is the teacher trained twice as long: other seeds only",
        {**PAPER_LOSS, "lam": 1.0, "unlabelled_weight": 0.0},
        {**PAPER_DISTILL, "soft_labels": "cached", "student_init": "teacher"},
    ),
    "no-distillation": Variant(
        "control",
        "control: the students' runs with the teacher's loss (lam = 1, no soft labels): other seeds only",
        {**PAPER_LOSS, "lam": 1.0, "unlabelled_weight": 0.0},
        {**PAPER_DISTILL, "soft_labels": "cached"},
    ),
}
STUDY = (
    "paper",
    "paper-equal",
    "paper-short",
    "from-teacher",
    "cached",
    "cached-kd",
    "light",
    "own-init",
    "no-distillation",
)


# -- one seed ----------------------------------------------------------------------------------------------
def run_seed(
    seed: int, variants: list[str], out_dir: Path, quick: bool = False, students: int | None = None
) -> None:
    """Train the seed's teacher(s) and each variant's students; write each variant's ``scores.json``."""
    train_set, train_plain, val_set, test_set, sources = make_splits(seed, noise=0.1)
    teachers: dict[str, md.TrainResult] = {}
    for name in variants:
        result_path = out_dir / f"seed_{seed}" / name / "scores.json"
        if result_path.is_file():
            continue
        variant = VARIANTS[name]
        schedule = SCHEDULES["quick" if quick else variant.schedule]
        sampler = md.MultiTaskBatchSampler(sources, batch_size=32, steps_per_epoch=schedule.steps_per_epoch)
        key = "quick" if quick else variant.schedule
        if key not in teachers:
            teachers[key] = md.train_teacher(
                _initial_model(seed),
                TASKS,
                train_set,
                sampler,
                val_set,
                schedule.train_config(),
                seed=seed,
                out_dir=out_dir / f"seed_{seed}" / f"teacher-{key}",
            )
        config = md.DistillConfig(
            teacher=schedule.train_config(),
            student=schedule.train_config(
                max(1, round(schedule.epochs * variant.student_epochs)), **variant.student
            ),
            num_students=students or (2 if quick else 5),
            seed=seed,
            **variant.distill,
        )
        started = time.process_time()
        result = md.distill(
            _initial_model(seed),
            TASKS,
            train_set,
            sampler,
            val_set,
            config,
            cache_dataset=train_plain,
            out_dir=out_dir / f"seed_{seed}" / name,
            teacher=teachers[key],
        )
        scores = score_models(result, val_set, test_set)
        scores["budget"] = {
            "teacher_images": config.teacher.epochs * sampler.steps_per_epoch * 96,
            "student_images": config.generations * config.student.epochs * sampler.steps_per_epoch * 96,
            "student_cpu_seconds": round(time.process_time() - started, 1),
        }
        result_path.parent.mkdir(parents=True, exist_ok=True)
        result_path.write_text(json.dumps(scores, indent=1))


def _initial_model(seed: int) -> MultitaskMLP:
    torch.manual_seed(seed)
    return MultitaskMLP()


def score_models(
    result: md.DistillResult, val_set: Dataset, test_set: Dataset
) -> dict[str, dict[str, float]]:
    """Test scores of the teacher, each student and the ensemble (thresholds tuned on validation)."""

    def headline(scores: dict[str, dict[str, float]]) -> dict[str, float]:
        return {task: scores[task]["score"] for task in METRICS}

    models = {"teacher": headline(md.evaluate(result.teacher.model, TASKS, test_set))}
    for k, student in enumerate(result.students):
        models[f"student_{k}"] = headline(md.evaluate(student, TASKS, test_set))
    ensemble = md.Ensemble(result.students, TASKS)
    ensemble.tune_thresholds(val_set)
    models["ensemble"] = headline(ensemble.evaluate(test_set))
    return models


# -- the study ---------------------------------------------------------------------------------------------
def collect(seeds: list[int], variants: list[str], out_dir: Path) -> dict[int, dict[str, dict[str, float]]]:
    """``{seed: {model: {metric: value}}}``: the teacher, and per variant its students' mean and ensemble."""
    table: dict[int, dict[str, dict[str, float]]] = {}
    for seed in seeds:
        row: dict[str, dict[str, float]] = {}
        for name in variants:
            scores = json.loads((out_dir / f"seed_{seed}" / name / "scores.json").read_text())
            row[_teacher_row(name)] = scores["teacher"]
            students = [model for model in scores if model.startswith("student_")]
            row[f"{name}: students (mean)"] = {
                metric: float(np.mean([scores[s][metric] for s in students])) for metric in METRICS
            }
            row[f"{name}: ensemble"] = scores["ensemble"]
        table[seed] = row
    return table


def summary(seeds: list[int], variants: list[str], out_dir: Path, elapsed: float) -> str:
    """The Markdown tables: per variant its students' mean and ensemble against its teacher."""
    scores = collect(seeds, variants, out_dir)
    lines = [
        f"Test split (539 images, all labels), {len(seeds)} seed(s) ({', '.join(map(str, seeds))}); CPU "
        f"`{md.study.cpu_model()}`; {elapsed:.0f} s wall-clock for what this invocation trained.",
        "",
    ]
    if len(seeds) == 1:
        lines += ["**One run**: a single seed, no interval; compare methods with 5 or more seeds.", ""]
    if len(variants) > 1 and len(seeds) > 1:
        teachers = {name: _teacher_row(name) for name in variants}
        control = "no-distillation" if "no-distillation" in variants else None
        questions = md.study.compare_variants(
            scores, variants, control=control, teachers=teachers, metrics=list(METRICS), metric_names=METRICS
        )
        lines += ["### By question, a row per variant", "", questions, ""]
    for name in variants:
        variant = VARIANTS[name]
        models = {
            "teacher": _teacher_row(name),
            "students (mean)": f"{name}: students (mean)",
            "ensemble": f"{name}: ensemble",
        }
        study = md.study.summarize(
            {seed: {short: scores[seed][full] for short, full in models.items()} for seed in seeds},
            [("students (mean)", "teacher"), ("ensemble", "teacher"), ("ensemble", "students (mean)")],
            metrics=list(METRICS),
        )
        budget = json.loads((out_dir / f"seed_{seeds[0]}" / name / "scores.json").read_text())["budget"]
        lines += [
            f"### `{name}`: {variant.description}",
            "",
            f"Images seen: teacher {budget['teacher_images']:,}, each student {budget['student_images']:,}.",
            "",
            study.to_markdown(metric_names=METRICS),
        ]
    return "\n".join(lines)


def _teacher_row(variant: str) -> str:
    """The study table's row of a variant's teacher: one per schedule, shared by the variants on it."""
    schedule = VARIANTS[variant].schedule
    return "teacher" if schedule == "converged" else f"teacher ({schedule})"


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-4", help="seeds, e.g. 0-4 or 0,3 (default 0-4)")
    parser.add_argument("--variants", default="default", help=f"comma-separated, of: {', '.join(VARIANTS)}")
    parser.add_argument("--study", action="store_true", help="every variant of the README's research tables")
    parser.add_argument("--quick", action="store_true", help="3 epochs, two students, one seed: a smoke test")
    parser.add_argument("--students", type=int, default=None, help="students per variant (default 5)")
    parser.add_argument("--jobs", type=int, default=1, help="seeds trained at once, one process each")
    parser.add_argument("--out-dir", type=Path, default=Path("runs/digits"), help="runs, resumable")
    parser.add_argument("--results", type=Path, default=None, help="write the summary here too")
    args = parser.parse_args(argv)
    # The packages log through `logging` (the trainer: a line per epoch when progress is on): show INFO.
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    try:
        seeds = [0] if args.quick and args.seeds == "0-4" else md.study.parse_seeds(args.seeds)
    except ValueError as error:
        parser.error(f"--seeds: {error}")
    variants = list(STUDY) if args.study else args.variants.split(",")
    unknown = [name for name in variants if name not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
    out_dir = args.out_dir / "quick" if args.quick else args.out_dir

    started = time.perf_counter()
    # One thread per seed, also with --jobs 1, so that a seed's numbers do not depend on --jobs.
    md.study.run_seeds(
        functools.partial(
            run_seed, variants=variants, out_dir=out_dir, quick=args.quick, students=args.students
        ),
        seeds,
        args.jobs,
        threads=1,
        on_done=lambda seed, _: print(f"seed {seed} done", flush=True),
    )
    report = summary(seeds, variants, out_dir, time.perf_counter() - started)
    print(report)
    if args.results is not None:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(report)
    return report


if __name__ == "__main__":
    main()
