"""Teacher-student multitask learning on scikit-learn's handwritten digits, each training image labelled once.

Three tasks of different kinds on the 8 x 8 digit images (``sklearn.datasets.load_digits``, bundled with
scikit-learn: nothing is downloaded):

* ``digit``      - multi-class, the digit 0-9;
* ``attributes`` - multi-label, four yes/no properties of the digit: even, >= 5, prime, has a closed loop;
* ``shape``      - binned regression (10 bins per dimension) of two numbers measured on the image: its ink
  (mean intensity) and the height of its centre of mass, each scaled to [-1, 1].

Every training image is labelled for ONE task only (a random third each), as in the paper, and gets
Gaussian pixel noise (std 0.1) as augmentation. A teacher learns from these labels alone; five students
learn from the labels and the teacher's soft labels on every task (Algorithm 1; by default the teacher runs
on the same noisy batch, "online"); their ensemble averages their probabilities, with per-label thresholds
for ``attributes`` tuned on the validation split. A held-out test split with all three labels scores
everyone.

    python examples/digits/run.py                   # full run (under 2 minutes on 2 CPU cores)
    python examples/digits/run.py --quick           # a few seconds: fewer epochs, two students

The Markdown table is printed and written to ``--results`` (default ``examples/digits/results.md``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

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


def scores_row(name: str, scores: dict[str, dict[str, float]]) -> dict[str, float | str]:
    row = {
        "model": name,
        "digit macro F1": scores["digit"]["score"],
        "digit accuracy": scores["digit"]["accuracy"],
        "attributes mean F1": scores["attributes"]["score"],
        "shape mean CCC": scores["shape"]["score"],
    }
    row["mean score"] = float(np.mean([scores[task.name]["score"] for task in TASKS]))
    return row


def markdown_table(rows: list[dict[str, float | str]]) -> str:
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    for row in rows:
        cells = [value if isinstance(value, str) else f"{value:.3f}" for value in row.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few epochs and two students (a smoke test)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--students", type=int, default=None, help="number of students (default 5)")
    parser.add_argument("--soft-labels", choices=["online", "cached"], default="online")
    parser.add_argument("--results", type=Path, default=Path(__file__).with_name("results.md"))
    parser.add_argument("--out-dir", type=Path, default=None, help="checkpoints and metrics.csv (resumable)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    started, cpu_started = time.perf_counter(), time.process_time()

    teacher_epochs, student_epochs = (3, 2) if args.quick else (30, 30)
    num_students = args.students or (2 if args.quick else 5)
    train_set, train_plain, val_set, test_set, sources = make_splits(args.seed, noise=0.1)
    sampler = md.MultiTaskBatchSampler(sources, batch_size=32)  # N = 32 per task: batches of 96

    def settings(epochs: int) -> md.TrainConfig:
        # Adam at 3e-3, divided by 10 after 20 epochs: a small MLP from scratch needs more than the paper's
        # 1e-4 (which fine-tunes a pretrained ResNet).
        return md.TrainConfig(epochs=epochs, lr=3e-3, lr_step_epochs=20, progress=False, tensorboard=False)

    torch.manual_seed(args.seed)
    result = md.distill(
        MultitaskMLP(),
        TASKS,
        train_set,
        sampler,
        val_set,
        md.DistillConfig(
            teacher=settings(teacher_epochs),
            student=settings(student_epochs),
            num_students=num_students,
            soft_labels=args.soft_labels,
            seed=args.seed,
        ),
        cache_dataset=train_plain,
        out_dir=args.out_dir,
    )

    rows = [scores_row("teacher", md.evaluate(result.teacher.model, TASKS, test_set))]
    students = result.students
    for k, student in enumerate(students, start=1):
        rows.append(scores_row(f"student {k}", md.evaluate(student, TASKS, test_set)))
    mean_row = {"model": f"students' mean (of {len(students)})"}
    mean_row.update(
        {key: float(np.mean([row[key] for row in rows[1:]])) for key in rows[0] if key != "model"}
    )
    rows.append(mean_row)
    # The ensemble's test predictions do not depend on the thresholds: predict once, score twice.
    ensemble = md.Ensemble(students, TASKS)
    test_predictions = md.predict(ensemble, TASKS, test_set)
    scores = md.score_predictions(TASKS, test_predictions, ensemble.score_kwargs())
    rows.append(scores_row("ensemble, thresholds 0.5", scores))
    ensemble.tune_thresholds(val_set)
    scores = md.score_predictions(TASKS, test_predictions, ensemble.score_kwargs())
    rows.append(scores_row("ensemble, tuned thresholds", scores))

    elapsed = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    table = markdown_table(rows)
    summary = (
        f"{len(train_set)} training images (each labelled for one task), {len(val_set)} validation and "
        f"{len(test_set)} test images (all labels). Teacher {teacher_epochs} epochs, {num_students} students "
        f"x {student_epochs} epochs, {args.soft_labels} soft labels, seed {args.seed}; {elapsed:.0f} s "
        f"wall-clock, {cpu_seconds:.0f} s CPU ({args.threads} torch thread(s))."
    )
    report = f"{table}\n\n{summary}\n"
    print(report)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(report)
    return report


if __name__ == "__main__":
    main()
