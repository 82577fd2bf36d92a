"""A tiny learnable multitask problem for the trainer's tests, and a script that trains on it.

Inputs are 8 standard-normal features; three tasks are simple functions of them: 3 yes/no attributes
(multi-label), 4 classes (multi-class) and 2 values in [-1, 1] (binned regression). Each training sample
is labelled for one task only (the paper's setting); validation samples carry all labels.

Run as a script (``python toy_training.py --out DIR``), it runs Algorithm 1 and saves the final weights of
the teacher and every student to ``DIR/final.pt``. The resume test kills it with SIGKILL (``--pause-after``
makes it announce a step on stdout and wait to be killed) and the DDP test launches it under torchrun.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from mtl_distill import distributed
from mtl_distill.batching import MultiTaskBatchSampler
from mtl_distill.checkpoint import save_checkpoint
from mtl_distill.distillation import DistillConfig, distill, train_students
from mtl_distill.tasks import BinnedRegressionTask, MultiClassTask, MultiLabelTask
from mtl_distill.trainer import TrainConfig, Trainer

NUM_FEATURES = 8
TASK_NAMES = ("attr", "cls", "val")


def make_tasks() -> list:
    return [
        MultiLabelTask("attr", num_labels=3),
        MultiClassTask("cls", num_classes=4),
        BinnedRegressionTask("val", num_dims=2, num_bins=10),
    ]


class ToyDataset(Dataset):
    """Items ``(x, targets, masks)``; ``labelled[i]`` names the task sample i is labelled for (or "all").

    With ``noise > 0`` each access adds fresh Gaussian noise drawn from torch's global generator (a random
    augmentation, to check that item seeding makes it reproducible).
    """

    def __init__(self, num_samples: int, seed: int, labelled: list[str], noise: float = 0.0) -> None:
        generator = torch.Generator().manual_seed(seed)
        weights = torch.Generator().manual_seed(1234)  # the same functions in every split
        self.x = torch.randn(num_samples, NUM_FEATURES, generator=generator)
        attr_w = torch.randn(NUM_FEATURES, 3, generator=weights)
        cls_w = torch.randn(NUM_FEATURES, 4, generator=weights)
        val_w = torch.randn(NUM_FEATURES, 2, generator=weights) / 2
        self.targets = {
            "attr": (self.x @ attr_w > 0).float(),
            "cls": (self.x @ cls_w).argmax(dim=1),
            "val": torch.tanh(self.x @ val_w),
        }
        self.labelled = labelled
        self.noise = noise

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int):
        x = self.x[index]
        if self.noise:
            x = x + self.noise * torch.randn(NUM_FEATURES)
        label = self.labelled[index]
        targets = {name: values[index] for name, values in self.targets.items()}
        masks = {name: torch.tensor(label in (name, "all")) for name in TASK_NAMES}
        return x, targets, masks


class ToyModel(nn.Module):
    """A shared two-layer trunk and one linear head per task: ``{task: logits}``."""

    def __init__(self, dropout: float = 0.0, hidden: int = 32) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Linear(NUM_FEATURES, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
        )
        self.heads = nn.ModuleDict({task.name: nn.Linear(hidden, task.num_outputs) for task in make_tasks()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.trunk(x)
        return {name: head(features) for name, head in self.heads.items()}


def make_data(per_task: int = 48, noise: float = 0.0, seed: int = 0):
    """(train dataset, per-task index lists, validation dataset): samples 0..per_task-1 are "attr", ..."""
    labelled = [name for name in TASK_NAMES for _ in range(per_task)]
    train = ToyDataset(len(labelled), seed=seed, labelled=labelled, noise=noise)
    sources = {name: list(range(i * per_task, (i + 1) * per_task)) for i, name in enumerate(TASK_NAMES)}
    val = ToyDataset(96, seed=seed + 1, labelled=["all"] * 96)
    return train, sources, val


def make_model(dropout: float = 0.0, seed: int = 0) -> ToyModel:
    torch.manual_seed(seed)
    return ToyModel(dropout)


def run(
    out_dir: Path | None,
    *,
    dropout: float = 0.3,
    noise: float = 0.1,
    batch_size: int = 4,
    steps_per_epoch: int = 6,
    teacher_epochs: int = 2,
    student_epochs: int = 2,
    num_students: int = 2,
    soft_labels: str = "online",
    checkpoint_every: int | None = 2,
    keep_best: bool = True,
    also_cached: bool = False,
) -> dict[str, dict[str, torch.Tensor]]:
    """Algorithm 1 on the toy problem; returns the final state dicts of the teacher and the students.

    ``also_cached`` adds one student of the same teacher trained with cached soft labels.
    """
    train, sources, val = make_data(noise=noise)
    sampler = MultiTaskBatchSampler(sources, batch_size=batch_size, steps_per_epoch=steps_per_epoch)

    def settings(epochs: int) -> TrainConfig:
        return TrainConfig(
            epochs=epochs,
            lr=3e-3,
            lr_step_epochs=1,
            lr_gamma=0.5,
            checkpoint_every=checkpoint_every,
            keep_best=keep_best,
            progress=False,
        )

    config = DistillConfig(
        teacher=settings(teacher_epochs),
        student=settings(student_epochs),
        num_students=num_students,
        soft_labels=soft_labels,
        seed=7,
    )
    result = distill(make_model(dropout), make_tasks(), train, sampler, val, config, out_dir=out_dir)
    final = {"teacher": result.teacher.model.state_dict()}
    final.update({f"student_{k}": model.state_dict() for k, model in enumerate(result.students)})
    if also_cached:
        (cached,) = train_students(
            make_model(dropout),
            result.teacher.model,
            make_tasks(),
            train,
            sampler,
            val,
            config.student,
            num_students=1,
            soft_labels="cached",
            out_dir=out_dir / "cached" if out_dir is not None else None,
        )
        final["cached_student_0"] = cached.model.state_dict()
    return final


def _pause_after(step_count: int) -> None:
    """Make the process announce its ``step_count``-th training step on stdout, then wait to be killed."""
    original = Trainer.train_step
    done = 0

    def train_step(self, batch):
        nonlocal done
        loss = original(self, batch)
        done += 1
        if done == step_count:
            print(f"PAUSED {self.name} epoch {self.epoch} step {self.step + 1}", flush=True)
            time.sleep(600)
        return loss

    Trainer.train_step = train_step


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--pause-after", type=int, default=None, help="announce this step, then wait")
    parser.add_argument("--ddp", action="store_true", help="the DDP test's settings (no dropout, no noise)")
    args = parser.parse_args(argv)
    distributed.setup_distributed()  # the entry point joins torchrun's process group (a no-op without it)
    torch.set_num_threads(1)
    if args.pause_after is not None:
        _pause_after(args.pause_after)
    final = run(args.out, **DDP_SETTINGS) if args.ddp else run(args.out)
    if torch.distributed.is_initialized() and torch.distributed.get_rank() != 0:
        return
    save_checkpoint(final, args.out / "final.pt")
    print("DONE", flush=True)


# The DDP test compares 2 ranks with 1 process: no dropout (its masks depend on the local batch shape), and
# a batch size divisible by 2; the teacher and students keep their last epoch (no best-epoch tie breaks).
DDP_SETTINGS = {
    "dropout": 0.0,
    "noise": 0.1,
    "batch_size": 4,
    "steps_per_epoch": 5,
    "teacher_epochs": 2,
    "student_epochs": 1,
    "num_students": 1,
    "checkpoint_every": None,
    "keep_best": False,
    "also_cached": True,
}

if __name__ == "__main__":
    sys.exit(main())
