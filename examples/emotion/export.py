"""The ``export`` stage: a finished run's ensemble as one self-contained model file.

``run.py export`` writes ``<run>/export/emotion_model.pt``: the ensemble that ``evaluate`` saved and
``run.py predict --config`` uses (``<run>/evaluate/ensemble.pt``: the students, or the teacher when the run
has none), as a model file of :mod:`affect_data.model_file` (the format, and its reader
``load_model_file``), with the AU thresholds that ``evaluate`` tuned and this example's ``provenance``
(:func:`provenance`): the data the members were trained on (``synthetic`` or ``real``, the data set names and
roots, the synthetic corpus's preset and seed), the config's name and hash, the members' names, the date, and
the versions of Python and the packages. ``run.py predict --model FILE`` needs nothing else.

``run.py export --sequence-length L`` (:func:`export_sequence_model`) writes the paper's best model instead,
``table2``'s CNN-GRU ensemble of clip length ``L``, into ``<run>/table2/length_<L>/emotion_model.pt`` (where
redoing ``table2`` removes it with the checkpoints it came from): the teacher CNN, once, and the GRUs and
output layers of ``table2``'s students of that length (its teacher's when it has none) as
:class:`~affect_data.models.SlidingCNNRNN` members, with AU thresholds tuned on the validation frames the way
``predict`` predicts them (each frame from its window of ``L``,
:func:`affect_data.prediction.sliding_windows`), as ``evaluate`` tunes the CNN's. Its ``architecture`` says
``"model": "MultitaskCNNRNN"`` and adds ``rnn_hidden`` and ``sequence_length``; the provenance is the CNN's,
the members named by their folders.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from affect_data.model_file import load_model_file, model_file_metadata
from affect_data.models import MultitaskCNNRNN, SlidingCNNRNN, TemporalHeads
from affect_data.prediction import abaw_tasks, sequence_predictions
from emotion.config import Config
from emotion.factory import IMAGENET_NORMALIZE
from emotion.pipeline import IGNORED_KEYS, StageError, read_marker
from mtl_distill.ensemble import Ensemble

__all__ = [
    "MODEL_FILE",
    "config_hash",
    "export_model",
    "export_sequence_model",
    "provenance",
    "run_export",
    "sequence_ensemble",
]

#: The model file's name in the ``export`` stage's folder.
MODEL_FILE = "emotion_model.pt"

_PACKAGES = ("torch", "numpy", "mtl-distill", "affect-data", "imbalance")


def run_export(config: Config, folder: Path) -> dict[str, Any]:
    """The ``export`` stage: write :data:`MODEL_FILE` into ``folder``; the summary says what it holds."""
    path = export_model(config, folder / MODEL_FILE)
    # Read back as `predict --model` reads it: the stage does not finish on a file that does not load.
    origin = load_model_file(path).metadata["provenance"]
    return {"file": str(path), "members": origin["members"], "trained_on": origin["trained_on"]}


def export_model(config: Config, path: str | os.PathLike) -> Path:
    """Write the run's ensemble (its students, or its teacher) with its tuned AU thresholds to ``path``.

    The ensemble and its thresholds are those ``evaluate`` saved (:func:`emotion.evaluate.load_run_ensemble`),
    with this project's metadata (the module docstring) in place of ``evaluate``'s.

    Parameters
    ----------
    config : Config
        A run whose ``evaluate`` stage is done.
    path : path
        The model file to create or replace (atomically).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    StageError
        In one line, if the run has no finished ``evaluate`` stage, or its ``ensemble.pt`` is missing, damaged
        or holds members of another model than the config's.
    """
    from emotion.evaluate import ENSEMBLE_FILE
    from emotion.inference import run_ensemble

    ensemble = run_ensemble(config)
    ensemble.metadata = model_file_metadata(
        _architecture(config, "MultitaskCNN"),
        {**ensemble.metadata["provenance"], "thresholds": f"evaluate's {ENSEMBLE_FILE}"},
    )
    return ensemble.save(path)


def _architecture(config: Config, model: str) -> dict[str, Any]:
    """What builds the config's CNN (the one model, or the CNN under the GRUs) and what it reads."""
    return {
        "model": model,
        "backbone": config.model.backbone,
        "hidden": config.model.hidden,
        "dropout": config.model.dropout,
        "num_outputs": {task.name: task.num_outputs for task in abaw_tasks()},
        "image_size": config.data.image_size,
        "normalize": [list(values) for values in IMAGENET_NORMALIZE],
    }


def export_sequence_model(config: Config, length: int) -> Path:
    """Write ``table2``'s CNN-GRU ensemble of clip length ``length`` (:func:`sequence_ensemble`) to
    ``<run>/table2/length_<length>/emotion_model.pt`` (atomically); returns the path."""
    path = config.stage_dir("table2") / f"length_{length}" / MODEL_FILE
    return sequence_ensemble(config, length).save(path)


def sequence_ensemble(config: Config, length: int) -> Ensemble:
    """``table2``'s CNN-GRU ensemble of clip length ``length``, as :func:`export_sequence_model` writes it.

    The members are :class:`~affect_data.models.SlidingCNNRNN` s over the run's teacher CNN (shared): the
    students of ``<run>/table2/length_<length>/``, or its teacher when it has none. The AU thresholds are
    tuned on the validation frames (``config.evaluation.tune_thresholds``; else 0.5), each frame predicted
    from its window as :func:`affect_data.prediction.predict_table` predicts. The validation frames go through
    the CNN once, on the config's ``training.device``.

    Raises
    ------
    StageError
        In one line, when ``table2`` has not run for ``length`` (naming the missing folder and
        ``run.py table2``), has not finished, was made from another teacher than the run's, or a checkpoint
        is missing or damaged.
    """
    from emotion.factory import build_model, load_weights, resolve_device

    checkpoints = _table2_checkpoints(config, length)
    cnn = load_weights(
        build_model(config, pretrained=False), config.stage_dir("teacher") / "model.pt", "teacher"
    )
    members = []
    for checkpoint in checkpoints:
        model = MultitaskCNNRNN(cnn)
        load_weights(TemporalHeads(model), checkpoint, "table2")  # table2 trains the GRUs in place
        members.append(SlidingCNNRNN(model, length))
    architecture = {
        **_architecture(config, "MultitaskCNNRNN"),
        "rnn_hidden": members[0].model.rnn["AU"].hidden_size,
        "sequence_length": length,
    }
    table2 = config.stage_dir("table2")
    tuned = config.evaluation.tune_thresholds
    origin = {
        **provenance(config, [str(path.parent.relative_to(table2.parent)) for path in checkpoints]),
        "thresholds": f"tuned on the validation frames, each predicted from its window of {length}"
        if tuned
        else "0.5 (evaluation.tune_thresholds is off)",
    }
    ensemble = Ensemble(members, abaw_tasks(), metadata=model_file_metadata(architecture, origin))
    device = resolve_device(config.training.device)
    if tuned:
        ensemble.set_thresholds({"AU": _validation_thresholds(config, ensemble.to(device).eval(), device)})
    return ensemble.cpu().eval()


def _table2_checkpoints(config: Config, length: int) -> list[Path]:
    """The GRU checkpoints of ``table2``'s ensemble of ``length``: its students', or its teacher's."""
    table2 = config.stage_dir("table2")
    folder = table2 / f"length_{length}"
    if not folder.is_dir():
        done = sorted(int(path.name.removeprefix("length_")) for path in table2.glob("length_[0-9]*"))
        raise StageError(
            f"{folder} does not exist: table2 has not run for sequence length {length} (it has for "
            f"{done or 'none'}); run `run.py table2` with {length} in experiments.sequence_lengths"
        )
    marker, teacher = read_marker(table2), read_marker(config.stage_dir("teacher"))
    if marker is None:
        raise StageError(f"{table2} holds an unfinished table2: run `run.py table2` to finish it")
    if teacher is None or marker.get("inputs", {}).get("teacher") != teacher["id"]:
        raise StageError(
            f"{table2} was made from another teacher than {config.stage_dir('teacher')}: run "
            "`run.py table2` again"
        )
    students = sorted(
        folder.glob("students/student_*/model.pt"), key=lambda path: int(path.parent.name[len("student_") :])
    )
    return students or [folder / "teacher" / "model.pt"]


def _validation_thresholds(config: Config, ensemble: Ensemble, device: torch.device) -> np.ndarray:
    """Per-AU thresholds tuned on the validation frames, each predicted from its window (as predict)."""
    from torch.utils.data import DataLoader

    from emotion.evaluate import evaluation_tables, tune_au_thresholds
    from emotion.factory import frame_dataset, truth_arrays
    from emotion.pipeline import progress_bars
    from mtl_distill.logging_utils import progress

    # Each video's frames in time order: the tracks of sliding_windows.
    table = evaluation_tables(config)["validation"]
    table = table.sort_values(["dataset", "video", "frame"], kind="stable").reset_index(drop=True)
    loader = DataLoader(
        frame_dataset(table, config, train=False, task_names=[]),
        batch_size=config.evaluation.batch_size,
        num_workers=config.data.num_workers,
    )
    parts = []
    with torch.inference_mode():
        for images, _, _ in progress(loader, desc="validation features", enabled=progress_bars()):
            # Half precision, as table2 keeps them: Aff-Wild2's validation frames in a few hundred MB.
            parts.append(ensemble.members[0].features(images.to(device)).half().cpu())
    tracks = table.groupby(["dataset", "video"], sort=False).ngroup().to_numpy()
    predicted = sequence_predictions(ensemble, torch.cat(parts), tracks, config.evaluation.batch_size, device)
    return tune_au_thresholds(truth_arrays(table)["AU"], predicted["AU"])


def provenance(config: Config, members: Sequence[str]) -> dict[str, Any]:
    """What a run's models learned from and how they were made, in plain values.

    ``trained_on`` is ``"synthetic"`` or ``"real"``; ``data_sets`` names each data set the config gives a
    root for (all four of the synthetic corpus), ``synthetic_corpus`` its preset and seed (None on real
    data); then the config's ``name`` and :func:`config_hash`, the ``members`` as named (``student_0``, ... or
    ``teacher``: an ensemble's ``metadata["members"]``), the date (UTC) and the versions of Python and the
    packages.

    Examples
    --------
    >>> from emotion.config import load_config
    >>> config = load_config(Path(__file__).parent / "configs" / "tiny.yaml", check_paths=False)
    >>> origin = provenance(config, ["teacher"])
    >>> origin["trained_on"], [entry["name"] for entry in origin["data_sets"]][:2], origin["members"]
    ('synthetic', ['aff_wild2', 'disfa'], ['teacher'])
    """
    synthetic = config.data.synthetic
    roots = config.data.roots()
    return {
        "trained_on": "synthetic" if synthetic is not None else "real",
        "data_sets": [
            {"name": name, "root": str(root), "synthetic": synthetic is not None}
            for name, root in roots.items()
            if root is not None
        ],
        "synthetic_corpus": None
        if synthetic is None
        else {"preset": synthetic.preset, "seed": synthetic.seed, "root": synthetic.root},
        "recipe": config.data.recipe if config.data.recipe is not None else "paper",
        "config_name": config.name,
        "config_sha256": config_hash(config),
        "members": list(members),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": {"python": platform.python_version(), **_versions()},
    }


def _versions() -> dict[str, str]:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = package_metadata.version(name)
        except package_metadata.PackageNotFoundError:  # a source checkout run without installing
            versions[name] = "not installed"
    return versions


def config_hash(config: Config) -> str:
    """sha256 of the config as JSON with sorted keys, less the settings that change speed, not results.

    Those are ``pipeline.IGNORED_KEYS`` (device, data loading workers, evaluation batch size, run root), so
    the same training run elsewhere hashes the same.
    """
    data = config.to_dict()
    for key in IGNORED_KEYS:
        *parents, last = key.split(".")
        section = data
        for part in parents:
            section = section.get(part, {})
        section.pop(last, None)
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode("utf-8")).hexdigest()
