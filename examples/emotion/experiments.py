"""The paper's experiments (section V): Table I, Figure 5 and Table II, on whatever data the config names.

- ``table1``: single-task CNNs (one ResNet and one head per task) trained on ground truth, three ways per
  task: *baseline* (Aff-Wild2 alone, no balancing), *+ external data* (the recipe's sources, no balancing),
  *+ balancing* (the recipe as it is). Aff-Wild2 keeps the recipe's down-sampling step in all three, so each
  row changes one thing.
- ``figure5``: single-task CNN (balanced) vs the multitask teacher, the students' mean and the ensemble
  (from ``table1`` and ``evaluate``).
- ``table2``: the multitask CNN-RNN (Fig. 4b) at each sequence length: the trained teacher CNN frozen, one
  bidirectional GRU per task trained on Aff-Wild2 clips only (the external sets are not videos), a teacher
  and ``count`` students (Algorithm 1, online soft labels) and their ensemble, next to the CNN's rows. As the
  CNN is frozen, its per-frame head features are computed once (center crop) and the GRUs train on them -
  the same model, without running the CNN on every clip of every step.

Every model is scored as in ``evaluate``: on the held-out test videos of the synthetic corpus (on Aff-Wild2's
validation set with the real data), epochs selected and AU thresholds tuned per model on the validation set.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from affect_data.datasets import task_label_tensors
from affect_data.models import MultitaskCNNRNN, TemporalHeads
from affect_data.prediction import abaw_tasks
from affect_data.schema import TASK_COLUMNS
from emotion.config import Config
from emotion.evaluate import evaluation_tables, reported_split, score_models
from emotion.factory import (
    build_model,
    check_resumable,
    frame_dataset,
    load_model,
    open_frame_cache,
    resolve_device,
    seeded,
)
from emotion.pipeline import progress_bars, write_json
from emotion.prepare import keep_rows, load_sources
from emotion.results import (
    PAPER_COLUMNS,
    STUDENTS_MEAN,
    figure5,
    grouped_bars,
    markdown_table,
    score_row,
    score_rows,
)
from emotion.train import train_config
from mtl_distill.batching import MultiTaskBatchSampler, concat_datasets
from mtl_distill.distillation import train_students, train_teacher
from mtl_distill.evaluation import predict
from mtl_distill.logging_utils import progress

__all__ = ["FeatureClips", "run_figure5", "run_table1", "run_table2"]

VARIANTS = ("baseline", "+ external data", "+ balancing")


# -- Table I ------------------------------------------------------------------------------------------------
def run_table1(config: Config, folder: Path) -> dict[str, Any]:
    """Train and score the nine single-task CNNs; write ``table1.md``, ``table1.png`` and ``scores.json``."""
    from affect_data.recipes import PAPER_RECIPE, check_recipe, prepare_task

    recipe = check_recipe(config.data.recipe or PAPER_RECIPE)
    sources = load_sources(config)
    tables = evaluation_tables(config)
    cache = open_frame_cache(config)
    epochs = config.experiments.single_task_epochs or config.training.teacher.epochs
    device, batch_size = resolve_device(config.training.device), config.evaluation.batch_size
    scores: dict[str, dict[str, Any]] = {variant: {} for variant in VARIANTS}
    for task in abaw_tasks():
        datasets = {
            split: frame_dataset(table, config, train=False, task_names=[task.name])
            for split, table in tables.items()
        }
        for variant, task_recipe in zip(VARIANTS, _variants(recipe, task.name), strict=True):
            out_dir = folder / f"{task.name}_{variant.strip('+ ').replace(' ', '_')}"
            data = prepare_task(sources, task.name, task_recipe, random_state=config.seed)
            table, indices = data.train, data.indices
            if cache is not None:  # rows whose image the crop cache could not read are left out
                table, indices = keep_rows(table, indices, cache.covers(table))
            model = build_model(config, tasks=[task])
            check_resumable(out_dir, model, "table1")
            result = train_teacher(
                model,
                [task],
                frame_dataset(table, config, train=True, task_names=[task.name]),
                MultiTaskBatchSampler(
                    {task.name: indices},
                    batch_size=config.training.batch_per_task,
                    steps_per_epoch=config.training.steps_per_epoch,
                    seed=config.seed,
                ),
                datasets["validation"],
                train_config(config, epochs),
                seed=config.seed,
                out_dir=out_dir,
            )
            model = result.model.to(device)
            predicted = {
                split: {
                    "model": predict(model, [task], dataset, batch_size=batch_size, device=device).outputs
                }
                for split, dataset in datasets.items()
            }
            scored, _ = score_models(tables, predicted, config.evaluation.tune_thresholds)
            scores[variant].update(scored["model"])
    write_json(folder / "scores.json", scores)
    rows = {variant: score_row(scores[variant], PAPER_COLUMNS) for variant in VARIANTS}
    table = pd.DataFrame(rows).T
    (folder / "table1.md").write_text(
        f"Table I: single-task CNNs on the {reported_split(tables)} set.\n\n{markdown_table(table)}\n",
        encoding="utf-8",
    )
    grouped_bars(table, folder / "table1.png", "Table I: single-task CNNs")
    return {"rows": rows}


def _variants(recipe: dict[str, Any], task: str) -> list[dict[str, Any]]:
    """The task's recipe as baseline (Aff-Wild2 alone, unbalanced), + external (unbalanced), + balancing."""
    spec = recipe["tasks"][task]
    validation = recipe["validation"]
    aff_wild2 = {name: source for name, source in spec["sources"].items() if name == validation["source"]}
    return [
        {"tasks": {task: {"sources": aff_wild2, "balance": None}}, "validation": validation},
        {"tasks": {task: {"sources": spec["sources"], "balance": None}}, "validation": validation},
        {"tasks": {task: spec}, "validation": validation},
    ]


# -- Figure 5 -----------------------------------------------------------------------------------------------
def run_figure5(config: Config, folder: Path) -> dict[str, Any]:
    """Single-task CNN (balanced) vs multitask teacher vs students' mean vs ensemble: table and bar plot."""
    single = json.loads((config.stage_dir("table1") / "scores.json").read_text(encoding="utf-8"))
    evaluated = json.loads((config.stage_dir("evaluate") / "scores.json").read_text(encoding="utf-8"))
    rows = figure5(evaluated, folder / "figure5.png", single_task=single["+ balancing"])
    (folder / "figure5.md").write_text(
        f"Figure 5: single-task and multitask CNNs on the {evaluated.get('split', 'validation')} set.\n\n"
        f"{markdown_table(pd.DataFrame(rows).T)}\n",
        encoding="utf-8",
    )
    return {"rows": rows}


# -- Table II -----------------------------------------------------------------------------------------------
class FeatureClips(Dataset):
    """Clips of precomputed per-frame CNN head features, with per-frame targets and masks.

    Windows are affect_data's :class:`~affect_data.datasets.SequenceDataset` windows over ``table`` (padded
    frames masked out); item ``i`` is ``(features [L, T, hidden], targets, masks)`` with per-frame targets
    ``{task: [L, ...]}`` and masks ``{task: [L]}``.

    Parameters
    ----------
    features : Tensor ``[len(table), T, hidden]``
        Row ``k`` holds the features of ``table``'s ``k``-th frame (any float type; items are float32).
    table : pandas.DataFrame
        A frame table; its labels give the targets (missing -> masked out).
    length, stride : int
        Clip length and step between clip starts.
    """

    def __init__(self, features: torch.Tensor, table: pd.DataFrame, length: int, stride: int | None = None):
        from affect_data.datasets import SequenceDataset

        windows = SequenceDataset(table, length=length, stride=stride, task_names=())
        self.positions = torch.from_numpy(windows.positions)
        self.valid = torch.from_numpy(windows.valid)
        self.features = features
        self.labels = {task: task_label_tensors(table, task) for task in TASK_COLUMNS}

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int):
        rows, valid = self.positions[i], self.valid[i]
        targets = {task: values[rows] for task, (values, _) in self.labels.items()}
        masks = {task: mask[rows] & valid for task, (_, mask) in self.labels.items()}
        return self.features[rows].float(), targets, masks


def run_table2(config: Config, folder: Path) -> dict[str, Any]:
    """CNN-RNN teacher, students and ensemble per sequence length, next to the CNN's (``table2.md``)."""
    from affect_data import load_aff_wild2
    from affect_data.recipes import labelled_rows

    experiments, tasks = config.experiments, abaw_tasks()
    device = resolve_device(config.training.device)
    cnn = load_model(config, config.stage_dir("teacher") / "model.pt", "teacher")
    tables = evaluation_tables(config)
    aff_wild2 = load_aff_wild2(config.data.roots()["aff_wild2"], splits=("train",))
    train_tables = {
        task.name: aff_wild2[labelled_rows(aff_wild2, task.name)].reset_index(drop=True) for task in tasks
    }
    lookup = _head_features(cnn, config, [*train_tables.values(), *tables.values()], device)
    train_features = {name: lookup(table) for name, table in train_tables.items()}  # once, not per length
    eval_features = {split: lookup(table) for split, table in tables.items()}

    rows = {f"CNN {name}": row for name, row in _cnn_rows(config).items()}
    scores = {}
    for length in experiments.sequence_lengths:
        out_dir = folder / f"length_{length}"
        clips = {
            name: FeatureClips(train_features[name], table, length) for name, table in train_tables.items()
        }
        train, offsets = concat_datasets(clips)
        sampler = MultiTaskBatchSampler(
            {name: np.arange(len(c)) for name, c in clips.items()},
            batch_size=experiments.sequence_batch_per_task,
            steps_per_epoch=experiments.sequence_steps_per_epoch,
            offsets=offsets,
            seed=config.seed,
        )
        eval_clips = {split: FeatureClips(eval_features[split], tables[split], length) for split in tables}
        val_clips = eval_clips["validation"]
        with seeded(config.seed + length):  # the same GRU start whatever ran before in this process
            initial = TemporalHeads(MultitaskCNNRNN(cnn))
        check_resumable(out_dir / "teacher", initial, "table2")
        check_resumable(out_dir / "students", initial, "table2")
        teacher_epochs = experiments.sequence_epochs or config.training.teacher.epochs
        teacher = train_teacher(
            copy.deepcopy(initial), tasks, train, sampler, val_clips, train_config(config, teacher_epochs),
            seed=config.seed, out_dir=out_dir / "teacher",
        )  # fmt: skip
        students = config.training.students
        runs = train_students(
            initial, teacher.model, tasks, train, sampler, val_clips,
            train_config(config, experiments.sequence_student_epochs or students.epochs, students=True),
            num_students=students.count, soft_labels="online", seed=config.seed, out_dir=out_dir / "students",
        )  # fmt: skip
        models = {"teacher": teacher.model, **{f"student_{k}": run.model for k, run in enumerate(runs)}}
        predictions = {
            split: {
                name: _predict_clips(model, clips, len(tables[split]), device)
                for name, model in models.items()
            }
            for split, clips in eval_clips.items()
        }
        scores[length], _ = score_models(tables, predictions, config.evaluation.tune_thresholds)
        rows.update(
            {f"CNN-RNN L={length} {name}": row for name, row in _summary_rows(scores[length]).items()}
        )
    write_json(folder / "scores.json", {str(length): s for length, s in scores.items()})
    table = pd.DataFrame(rows).T
    (folder / "table2.md").write_text(
        f"Table II: multitask CNN and CNN-RNN on the {reported_split(tables)} set (best student: best mean "
        "score).\n\n" + markdown_table(table) + "\n",
        encoding="utf-8",
    )
    grouped_bars(table, folder / "table2.png", "Table II: CNN vs CNN-RNN")
    return {"rows": rows}


def _head_features(cnn, config: Config, tables: list[pd.DataFrame], device: torch.device):
    """Run the frozen CNN once over every distinct frame of ``tables``; return ``table -> [n, T, hidden]``."""
    paths = pd.Index(pd.concat([table["path"] for table in tables]).astype(str).unique())
    # The crop cache holds the recipe's frames only; the CNN-RNN reads every Aff-Wild2 frame: decode them.
    uncached = dataclasses.replace(config, data=dataclasses.replace(config.data, frame_cache=False))
    dataset = frame_dataset(pd.DataFrame({"path": paths}), uncached, train=False, task_names=[])
    cnn = cnn.to(device).eval()
    parts = []
    with torch.inference_mode():
        loader = DataLoader(dataset, batch_size=config.evaluation.batch_size)
        for images, _, _ in progress(loader, desc="features", enabled=progress_bars()):
            features = cnn.features(images.to(device))
            # Half precision per batch, not at the end: the float32 copy of every frame is never held.
            parts.append(torch.stack([features[task] for task in cnn.num_outputs], dim=1).half().cpu())
    every = torch.cat(parts)  # 768 bytes per frame: Aff-Wild2's 1.4 M frames fit in about 1 GB

    def lookup(table: pd.DataFrame) -> torch.Tensor:
        return every[torch.from_numpy(paths.get_indexer(table["path"].astype(str)))]

    return lookup


def _predict_clips(model, clips: FeatureClips, n_rows: int, device: torch.device) -> dict[str, np.ndarray]:
    """Per-frame predictions in table order (each frame once: clips do not overlap, padding dropped)."""
    predicted = predict(model, abaw_tasks(), clips, batch_size=64, device=device)
    rows = clips.positions.flatten().numpy()
    valid = clips.valid.flatten().numpy()
    out = {}
    for task, values in predicted.outputs.items():
        array = np.full((n_rows, *values.shape[1:]), np.nan)
        array[rows[valid]] = values[valid]
        out[task] = array
    return out


def _summary_rows(models: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Teacher, best student (best mean headline score), students' mean and ensemble rows."""
    rows = score_rows(models, PAPER_COLUMNS)
    students = [name for name in rows if name.startswith("student_")]
    if not students:
        return rows
    best = max(students, key=lambda name: np.mean(list(rows[name].values())))
    return {
        "teacher": rows["teacher"],
        f"best student ({best})": rows[best],
        STUDENTS_MEAN: rows[STUDENTS_MEAN],
        "ensemble": rows["ensemble"],
    }


def _cnn_rows(config: Config) -> dict[str, dict[str, float]]:
    evaluated = json.loads((config.stage_dir("evaluate") / "scores.json").read_text(encoding="utf-8"))
    return _summary_rows(evaluated["models"])
