"""The ``evaluate`` stage: teacher, each student and the student ensemble, scored with the ABAW 2020 metrics.

Which frames are scored:

- on the synthetic corpus, the held-out **test** videos (``prepare``'s ``test.csv``, complete hidden truth):
  frames that played no part in model selection, since the epochs were selected and the AU thresholds are
  tuned on the validation videos;
- on the real data sets, the Aff-Wild2 **validation** videos, as in the ABAW 2020 protocol (the test labels
  are withheld): there the AU thresholds are tuned on the frames that are scored, which flatters the tuned
  AU score, so the score at the fixed threshold 0.5 is reported beside it.

Every model predicts every frame once (no augmentation); the predictions are saved
(``predictions/<split>/<model>.npz``, reused when an interrupted evaluation resumes), the ensemble averages
the students' predictions (sigmoid probabilities, softmax probabilities, expected valence/arousal), and
``affect_data.metrics`` scores them, skipping frames without a label for a task. AU decisions use per-AU
thresholds that maximise each AU's F1 on the validation frames, tuned for each model separately and saved in
``thresholds.json``. ``scores.json`` says which split it scored (``split``).

The run's ensemble - its students, or its teacher when it has none - is saved with its tuned AU thresholds as
an ``mtl_distill.Ensemble`` in ``ensemble.pt``; whatever uses the run's models afterwards (``run.py predict
--config``) loads that file with :func:`load_run_ensemble`.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from affect_data.metrics import au_score, expr_score, va_score
from affect_data.prediction import abaw_tasks
from affect_data.schema import AU_NAMES
from emotion.config import Config
from emotion.factory import (
    frame_dataset,
    load_ensemble,
    load_model,
    read_table,
    resolve_device,
    truth_arrays,
)
from emotion.pipeline import progress_bars, write_json
from mtl_distill.checkpoint import write_atomically
from mtl_distill.ensemble import Ensemble, average_predictions, tune_thresholds
from mtl_distill.evaluation import predict

__all__ = [
    "ENSEMBLE_FILE",
    "evaluation_tables",
    "load_run_ensemble",
    "model_paths",
    "reported_split",
    "run_evaluate",
    "save_run_ensemble",
    "score",
    "score_models",
    "score_task",
    "tune_au_thresholds",
]

#: The run's ensemble in the ``evaluate`` stage's folder.
ENSEMBLE_FILE = "ensemble.pt"


def run_evaluate(config: Config, folder: Path) -> dict[str, Any]:
    """Predict the validation (and test) frames with every model, tune AU thresholds on validation, score
    the reported split; write ``scores.json``, ``thresholds.json`` and the run's ensemble."""
    tables = evaluation_tables(config)
    device = resolve_device(config.training.device)
    predictions: dict[str, dict[str, dict[str, np.ndarray]]] = {split: {} for split in tables}
    for split, table in tables.items():
        dataset = frame_dataset(table, config, train=False)
        for name, path in model_paths(config).items():
            predictions[split][name] = _predict_once(
                config,
                path,
                _stage_of(name),
                dataset,
                device,
                folder / "predictions" / split / f"{name}.npz",
            )
    scores, thresholds = score_models(tables, predictions, config.evaluation.tune_thresholds)
    reported = reported_split(tables)
    result = {
        "split": reported,
        "n_frames": len(tables[reported]),
        "n_videos": int(tables[reported]["video"].nunique()),
        "thresholds_tuned_on": "validation",
        "models": scores,
        "students": [name for name in scores if name.startswith("student_")],
    }
    write_json(folder / "scores.json", result)
    write_json(
        folder / "thresholds.json",
        {name: dict(zip(AU_NAMES, t, strict=True)) for name, t in thresholds.items()},
    )
    save_run_ensemble(config, thresholds["ensemble" if "ensemble" in thresholds else "teacher"])
    return {
        name: {task: round(s[task]["score"], 4) for task in ("AU", "EXPR", "VA")}
        for name, s in scores.items()
    }


def save_run_ensemble(config: Config, thresholds: Sequence[float]) -> Path:
    """Save the run's ensemble - its students, or its teacher when it has none - with the AU ``thresholds``
    tuned for it, as ``evaluate``'s :data:`ENSEMBLE_FILE`; ``metadata["members"]`` names the models."""
    paths = model_paths(config)
    members = [name for name in paths if name.startswith("student_")] or ["teacher"]
    models = [load_model(config, paths[name], _stage_of(name)) for name in members]
    ensemble = Ensemble(models, abaw_tasks(), {"AU": thresholds}, metadata={"members": members})
    return ensemble.save(config.stage_dir("evaluate") / ENSEMBLE_FILE)


def load_run_ensemble(config: Config) -> Ensemble:
    """The run's ensemble that ``evaluate`` saved (:func:`save_run_ensemble`), in eval mode.

    Raises
    ------
    StageError
        In one line naming the file and ``run.py evaluate --force``, when it is missing, damaged or holds
        members of another model than the config's.
    """
    return load_ensemble(config.stage_dir("evaluate") / ENSEMBLE_FILE, config, "evaluate")


def evaluation_tables(config: Config) -> dict[str, pd.DataFrame]:
    """``prepare``'s frame tables to evaluate on: ``validation``, and ``test`` when there is one."""
    prepared = config.stage_dir("prepare")
    tables = {"validation": read_table(prepared / "validation.csv")}
    if (prepared / "test.csv").is_file():  # the synthetic corpus's held-out test videos
        tables["test"] = read_table(prepared / "test.csv")
    return tables


def reported_split(tables: dict[str, pd.DataFrame]) -> str:
    """The split whose scores are reported: ``test`` when there is one, else ``validation``."""
    return "test" if "test" in tables else "validation"


def score_models(
    tables: dict[str, pd.DataFrame],
    predictions: dict[str, dict[str, dict[str, np.ndarray]]],
    tune_thresholds: bool = True,
) -> tuple[dict[str, dict], dict[str, list[float]]]:
    """Score each model's predictions of the reported split, AU thresholds tuned on its validation ones.

    ``predictions[split][model][task]``: ``Task.predict`` outputs (a model may predict a subset of the
    tasks). The students' ensemble (``student_*``, averaged) is added when there are students. Returns the
    scores per model (:func:`score`) and the AU thresholds used per model (0.5 without tuning).
    """
    predictions = {split: dict(models) for split, models in predictions.items()}
    for models in predictions.values():
        students = [name for name in models if name.startswith("student_")]
        if students:
            models["ensemble"] = average_predictions([models[name] for name in students])
    reported = reported_split(tables)
    validation_truth, truth = truth_arrays(tables["validation"]), truth_arrays(tables[reported])
    scores, thresholds = {}, {}
    for name, predicted in predictions[reported].items():
        cuts = np.full(len(AU_NAMES), 0.5)
        if tune_thresholds and "AU" in predicted:
            cuts = tune_au_thresholds(validation_truth["AU"], predictions["validation"][name]["AU"])
        thresholds[name] = cuts.tolist()
        scores[name] = score(truth, predicted, cuts)
    return scores, thresholds


def _predict_once(
    config: Config, weights: Path, stage: str, dataset: Any, device: torch.device, cached: Path
) -> dict[str, np.ndarray]:
    """A model's predictions of every item of ``dataset``, saved to ``cached`` (reused when resuming);
    ``stage`` wrote ``weights``."""
    if cached.is_file():
        try:
            with np.load(cached) as saved:
                return dict(saved)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):  # damaged: predict again, it is a cache
            cached.unlink()
    model = load_model(config, weights, stage).to(device)
    predicted = predict(
        model,
        abaw_tasks(),
        dataset,
        batch_size=config.evaluation.batch_size,
        num_workers=config.data.num_workers,
        device=device,
        progress_desc=f"predict {cached.parent.name} {cached.stem}" if progress_bars() else None,
    ).outputs
    write_atomically(cached, lambda file: np.savez(file, **predicted))
    return predicted


def _stage_of(model: str) -> str:
    """The stage that trains the model named ``model`` (``teacher``, ``student_<k>``)."""
    return "teacher" if model == "teacher" else "students"


def model_paths(config: Config) -> dict[str, Path]:
    """Model name -> weights file: ``teacher`` and ``student_0``, ``student_1``, ... in order."""
    paths = {"teacher": config.stage_dir("teacher") / "model.pt"}
    students = sorted(
        config.stage_dir("students").glob("student_*/model.pt"), key=lambda p: int(p.parent.name[8:])
    )
    paths.update({path.parent.name: path for path in students})
    return paths


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
