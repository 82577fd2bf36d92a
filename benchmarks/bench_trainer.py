"""Cost of mtl_distill's training step against a bare PyTorch loop, on CPU, same model and batches.

Four step functions, each an Adam step on the same pre-collated batches of an MLP with the paper's three
heads (8 action units, 7 expressions, 2 x 20 valence-arousal bins), N samples per task per batch:

* ``bare loop``        - forward, ``teacher_loss``, backward, step: what one would write by hand;
* ``trainer teacher``  - ``Trainer(model, tasks).train_step(batch)``;
* ``student, cached``  - ``Trainer(..., soft_labels=CachedSoftLabels(cache)).train_step(batch)``;
* ``student, online``  - ``Trainer(..., soft_labels=OnlineSoftLabels(teacher)).train_step(batch)``.

The variants run interleaved, round after round, so that a change in machine load hits them alike; the
median over rounds of each variant's mean step time is reported. Goals (issue 3): the trainer's teacher step
within 5% of the bare loop; a cached student step within 1.1x of a teacher step, an online one within 1.5x.

    python benchmarks/bench_trainer.py [--hidden 1024] [--per-task 32] [--rounds 15] [--threads 1]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from torch import nn
from torch.utils.data import DataLoader

import mtl_distill as md
from mtl_distill.batching import IndexedDataset
from mtl_distill.soft_labels import CachedSoftLabels, OnlineSoftLabels, SoftLabelCache

TASKS = [
    md.MultiLabelTask("au", num_labels=8),
    md.MultiClassTask("expr", num_classes=7),
    md.BinnedRegressionTask("va", num_dims=2, num_bins=20),
]


class Net(nn.Module):
    def __init__(self, features: int, hidden: int):
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
        )
        self.heads = nn.ModuleDict({task.name: nn.Linear(hidden, task.num_outputs) for task in TASKS})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.trunk(x)
        return {name: head(features) for name, head in self.heads.items()}


def make_dataset(size: int, features: int) -> list:
    """Random inputs; each sample labelled for one task, as in the paper."""
    generator = torch.Generator().manual_seed(0)
    items = []
    for index in range(size):
        labelled = TASKS[index % len(TASKS)].name
        targets = {
            "au": torch.randint(0, 2, (8,), generator=generator).float(),
            "expr": torch.randint(0, 7, (), generator=generator),
            "va": torch.rand(2, generator=generator) * 2 - 1,
        }
        masks = {task.name: torch.tensor(task.name == labelled) for task in TASKS}
        items.append((torch.randn(features, generator=generator), targets, masks))
    return items


def make_batches(dataset: list, per_task: int, count: int) -> list:
    sources = {task.name: range(k, len(dataset), len(TASKS)) for k, task in enumerate(TASKS)}
    sampler = md.MultiTaskBatchSampler(sources, batch_size=per_task, steps_per_epoch=count)
    loader = DataLoader(IndexedDataset(dataset), batch_sampler=sampler)
    return list(loader)


def bare_step_function(model: nn.Module):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step(batch) -> float:
        inputs, targets, masks, _ = batch
        loss = md.teacher_loss(TASKS, model(inputs), targets, masks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def time_steps(step, batches: list) -> float:
    started = time.perf_counter()
    for batch in batches:
        step(batch)
    return (time.perf_counter() - started) / len(batches)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=int, default=512)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--per-task", type=int, default=32, help="N: samples per task per batch")
    parser.add_argument("--steps", type=int, default=20, help="steps per variant per round")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    dataset = make_dataset(30 * args.per_task, args.features)
    batches = make_batches(dataset, args.per_task, args.steps)
    initial = Net(args.features, args.hidden)
    teacher = copy.deepcopy(initial)  # its weights do not matter for timing
    quiet = md.TrainConfig(progress=False, tensorboard=False, device="cpu")
    cache = SoftLabelCache.build(teacher, dataset, device="cpu")
    steps = {
        "bare loop": bare_step_function(copy.deepcopy(initial)),
        "trainer teacher": md.Trainer(copy.deepcopy(initial), TASKS, quiet).train_step,
        "student, cached": md.Trainer(
            copy.deepcopy(initial), TASKS, quiet, soft_labels=CachedSoftLabels(cache)
        ).train_step,
        "student, online": md.Trainer(
            copy.deepcopy(initial), TASKS, quiet, soft_labels=OnlineSoftLabels(teacher, "cpu")
        ).train_step,
    }
    for step in steps.values():  # warm-up: allocator, Adam state, first-call costs
        time_steps(step, batches[:3])
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            samples[name].append(time_steps(step, batches))
    median = {name: statistics.median(values) for name, values in samples.items()}

    ratios = {
        "trainer teacher": ("bare loop", 1.05),
        "student, cached": ("trainer teacher", 1.10),
        "student, online": ("trainer teacher", 1.50),
    }
    batch_size = args.per_task * len(TASKS)
    print(
        f"CPU, {args.threads} thread(s); MLP {args.features}-{args.hidden}-{args.hidden} + 3 heads; "
        f"batch {batch_size} ({args.per_task} per task); "
        f"median over {args.rounds} rounds of {args.steps} steps\n"
    )
    print("| step | ms / step | ratio | against | goal |")
    print("| --- | ---: | ---: | --- | ---: |")
    result = {}
    for name, seconds in median.items():
        if name in ratios:
            reference, goal = ratios[name]
            ratio = seconds / median[reference]
            result[name] = ratio
            print(f"| {name} | {1e3 * seconds:.2f} | {ratio:.3f} | {reference} | <= {goal:.2f} |")
        else:
            print(f"| {name} | {1e3 * seconds:.2f} | | | |")
    return result


if __name__ == "__main__":
    main()
