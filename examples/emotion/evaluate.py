"""The ``evaluate`` stage: teacher, each student and the student ensemble on the validation videos.

Every model predicts every validation frame once (no augmentation); the predictions are saved
(``predictions/<model>.npz``), the ensemble averages the students' predictions (sigmoid probabilities, softmax
probabilities, expected valence/arousal), and ``affect_data.metrics`` scores them with the ABAW 2020 metrics,
skipping frames without a label for a task. On the synthetic corpus the validation table holds the complete
hidden truth, so every task is scored on every frame.

AU decisions use per-AU thresholds that maximise each AU's F1 on these validation frames, tuned for each
model separately and saved in ``thresholds.json``; the scores at the fixed threshold 0.5 are reported too, as
tuning on the frames one scores is optimistic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from affect_data.metrics import au_score, expr_score, va_score
from affect_data.schema import AU_NAMES
from emotion.config import Config
from emotion.factory import build_model, frame_dataset, paper_tasks, read_table, resolve_device, truth_arrays
from emotion.pipeline import write_json
from mtl_distill.checkpoint import load_checkpoint
from mtl_distill.ensemble import average_predictions, tune_thresholds

__all__ = ["model_paths", "predict", "run_evaluate", "score", "score_task", "tune_au_thresholds"]


def run_evaluate(config: Config, folder: Path) -> dict[str, Any]:
    """Predict the validation frames with every model, tune AU thresholds, score, write ``scores.json``."""
    run_dir = config.run_dir
    table = read_table(run_dir / "prepare" / "validation.csv")
    truth = truth_arrays(table)
    dataset = frame_dataset(table, config, train=False)
    device = resolve_device(config.training.device)

    predictions = {}
    for name, path in model_paths(run_dir).items():
        cached = folder / "predictions" / f"{name}.npz"
        if cached.is_file():  # resuming an interrupted evaluation
            with np.load(cached) as saved:
                predictions[name] = dict(saved)
            continue
        model = build_model(config, pretrained=False)
        model.load_state_dict(load_checkpoint(path))
        predictions[name] = predict(
            model,
            dataset,
            config.evaluation.batch_size,
            device,
            desc=f"predict {name}",
            num_workers=config.data.num_workers,
        )
        cached.parent.mkdir(exist_ok=True)
        np.savez(cached.with_suffix(".tmp.npz"), **predictions[name])
        cached.with_suffix(".tmp.npz").replace(cached)

    students = [name for name in predictions if name.startswith("student_")]
    if students:
        predictions["ensemble"] = average_predictions([predictions[name] for name in students])

    scores, thresholds = {}, {}
    for name, predicted in predictions.items():
        thresholds[name] = (
            tune_au_thresholds(truth["AU"], predicted["AU"]).tolist()
            if config.evaluation.tune_thresholds
            else [0.5] * len(AU_NAMES)
        )
        scores[name] = score(truth, predicted, np.asarray(thresholds[name]))
    result = {"n_frames": len(table), "models": scores, "students": students}
    write_json(folder / "scores.json", result)
    write_json(
        folder / "thresholds.json",
        {name: dict(zip(AU_NAMES, t, strict=True)) for name, t in thresholds.items()},
    )
    return {
        name: {task: round(s[task]["score"], 4) for task in ("AU", "EXPR", "VA")}
        for name, s in scores.items()
    }


def model_paths(run_dir: Path) -> dict[str, Path]:
    """Model name -> weights file: ``teacher`` and ``student_0``, ``student_1``, ... in order."""
    paths = {"teacher": run_dir / "teacher" / "model.pt"}
    students = sorted((run_dir / "students").glob("student_*/model.pt"), key=lambda p: int(p.parent.name[8:]))
    paths.update({path.parent.name: path for path in students})
    return paths


def predict(
    model: torch.nn.Module,
    dataset: torch.utils.data.Dataset,
    batch_size: int,
    device: torch.device,
    desc: str = "",
    num_workers: int = 0,
) -> dict[str, np.ndarray]:
    """Task name -> ``Task.predict`` outputs (probabilities or expected values) of every item, in order,
    for each task the model predicts."""
    tasks = {task.name: task for task in paper_tasks()}
    model = model.to(device).eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    parts: dict[str, list[np.ndarray]] = {}
    with torch.inference_mode():
        for batch in tqdm(loader, desc=desc, unit="batch", leave=False):
            outputs = model(batch[0].to(device))
            for name, logits in outputs.items():
                parts.setdefault(name, []).append(tasks[name].predict(logits.float()).cpu().numpy())
    return {name: np.concatenate(values) for name, values in parts.items()}


def tune_au_thresholds(truth: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Per-AU thresholds maximising F1 on the frames whose 8 AU labels are all known (else 0.5 each)."""
    complete = ~np.isnan(truth).any(axis=1)
    if not complete.any():
        return np.full(truth.shape[1], 0.5)
    return tune_thresholds(probabilities[complete], truth[complete])


def score(truth: dict[str, np.ndarray], predicted: dict[str, np.ndarray], thresholds: np.ndarray) -> dict:
    """ABAW 2020 scores of one model: ``AU`` (tuned thresholds), ``AU@0.5``, ``EXPR`` and ``VA``."""
    scores = {}
    for task in predicted:
        scores.update(score_task(task, truth[task], predicted[task], thresholds))
    return scores


def score_task(
    task: str, truth: np.ndarray, predicted: np.ndarray, thresholds: np.ndarray | None = None
) -> dict:
    """One task's ABAW 2020 scores, keyed ``AU`` and ``AU@0.5`` (fixed threshold), ``EXPR`` or ``VA``."""
    if task == "AU":
        tuned = thresholds if thresholds is not None else 0.5
        return {
            "AU": au_score(truth, predicted, threshold=tuned),
            "AU@0.5": au_score(truth, predicted, threshold=0.5),
        }
    if task == "EXPR":
        return {"EXPR": expr_score(truth, predicted)}
    return {"VA": va_score(truth, predicted)}
