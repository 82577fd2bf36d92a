"""The ``export`` stage: a finished run's ensemble as one self-contained model file.

``run.py export`` writes ``<run>/export/emotion_model.pt``: the ensemble that ``run.py predict --config``
uses (the students, or the teacher when the run has none), as an ``mtl_distill.Ensemble`` file - the tasks
(AU names, expression classes, valence-arousal bins), the members' weights, the AU thresholds that
``evaluate`` tuned - with this project's metadata:

- ``architecture``: what builds one member (``backbone``, ``hidden``, ``dropout``, the task heads' widths),
  the input ``image_size`` and the ``normalize`` statistics;
- ``provenance``: the data the members were trained on (``synthetic`` or ``real``, the data set names and
  roots, the synthetic corpus's preset and seed), the config's name and hash, the members' names, the date,
  and the versions of Python and the packages.

The file holds only tensors and plain containers, so :func:`load_model_file` reads it with
``torch.load(weights_only=True)``, and ``run.py predict --model FILE`` needs nothing else.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from datetime import UTC, datetime
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

from emotion.config import Config
from emotion.factory import IMAGENET_NORMALIZE, paper_tasks
from emotion.models import MultitaskCNN
from emotion.pipeline import IGNORED_KEYS
from mtl_distill.checkpoint import load_checkpoint
from mtl_distill.ensemble import Ensemble

__all__ = [
    "KIND",
    "MODEL_FILE",
    "VERSION",
    "ModelFileError",
    "config_hash",
    "export_model",
    "load_model_file",
    "provenance",
    "run_export",
    "synthetic_warning",
]

#: The model file's name in the ``export`` stage's folder.
MODEL_FILE = "emotion_model.pt"
#: ``metadata["kind"]`` of a model file, and the layout version this code reads and writes.
KIND = "emotion.model"
VERSION = 1

_PACKAGES = ("torch", "numpy", "mtl-distill", "affect-data", "imbalance")


class ModelFileError(ValueError):
    """A model file that cannot be used; the one-line message names the file and what is wrong."""


def run_export(config: Config, folder: Path) -> dict[str, Any]:
    """The ``export`` stage: write :data:`MODEL_FILE` into ``folder``; the summary says what it holds."""
    path = export_model(config, folder / MODEL_FILE)
    origin = provenance(config)
    return {"file": str(path), "members": origin["members"], "trained_on": origin["trained_on"]}


def export_model(config: Config, path: str | os.PathLike) -> Path:
    """Write the run's ensemble (its students, or its teacher) with its tuned AU thresholds to ``path``.

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
        If the run has no finished ``evaluate`` stage.
    ValueError
        If a checkpoint does not fit the config's model.
    """
    from emotion.inference import load_ensemble
    from emotion.predict import read_thresholds

    models, key = load_ensemble(config)
    thresholds = read_thresholds(config.stage_dir("evaluate") / "thresholds.json", key=key)
    metadata = {
        "kind": KIND,
        "version": VERSION,
        "architecture": {
            "model": "MultitaskCNN",
            "backbone": config.model.backbone,
            "hidden": config.model.hidden,
            "dropout": config.model.dropout,
            "num_outputs": {task.name: task.num_outputs for task in paper_tasks()},
            "image_size": config.data.image_size,
            "normalize": [list(values) for values in IMAGENET_NORMALIZE],
        },
        "provenance": {**provenance(config), "thresholds": f"evaluate's thresholds.json, {key!r}"},
    }
    ensemble = Ensemble(models, paper_tasks(), {"AU": thresholds}, metadata=metadata)
    return ensemble.save(path)


def provenance(config: Config) -> dict[str, Any]:
    """What a run's models learned from and how they were made, in plain values.

    ``trained_on`` is ``"synthetic"`` or ``"real"``; ``data_sets`` names each data set the config gives a
    root for (all four of the synthetic corpus), ``synthetic_corpus`` its preset and seed (None on real
    data); then the config's ``name`` and :func:`config_hash`, the members (``student_0``, ... or
    ``teacher``), the date (UTC) and the versions of Python and the packages.

    Examples
    --------
    >>> from emotion.config import load_config
    >>> config = load_config(Path(__file__).parent / "configs" / "tiny.yaml", check_paths=False)
    >>> origin = provenance(config)
    >>> origin["trained_on"], [entry["name"] for entry in origin["data_sets"]][:2]
    ('synthetic', ['aff_wild2', 'disfa'])
    """
    from emotion.evaluate import model_paths

    synthetic = config.data.synthetic
    roots = config.data.roots()
    students = [name for name in model_paths(config) if name.startswith("student_")]
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
        "members": students or ["teacher"],
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


def synthetic_warning(origin: dict[str, Any] | None) -> str | None:
    """The warning to show wherever a model trained on synthetic faces predicts (None otherwise).

    Examples
    --------
    >>> synthetic_warning({"trained_on": "real"}) is None
    True
    >>> synthetic_warning({"trained_on": "synthetic"}).split(";")[0]
    'this model has only seen synthetic faces'
    """
    if not origin or origin.get("trained_on") != "synthetic":
        return None
    return (
        "this model has only seen synthetic faces; its predictions on real faces are meaningless "
        "(train on real data sets for predictions on real faces)"
    )


def load_model_file(path: str | os.PathLike, map_location: str = "cpu") -> Ensemble:
    """Read a model file written by :func:`export_model` (``weights_only=True``) as an ``Ensemble``.

    The returned ensemble is in eval mode; ``ensemble.metadata`` holds ``architecture`` and ``provenance``
    (see the module docstring) and ``ensemble.thresholds["AU"]`` the tuned AU thresholds.

    Raises
    ------
    ModelFileError
        In one line naming the file: missing, unreadable (truncated, damaged, not a torch file), not a model
        file of this project, of another version, lacking a key, with tasks other than this version's, or
        with weights that do not fit its own architecture.
    """
    path = Path(path)
    try:
        state = load_checkpoint(path, map_location=map_location)
    except FileNotFoundError:
        raise ModelFileError(f"model file {path} does not exist") from None
    except ValueError as error:  # torch's reason can run over many lines: its first says enough
        reason = str(error.__cause__ or error).strip().splitlines()[0]
        raise ModelFileError(
            f"model file {path} is unreadable (damaged or not a model file): {reason}"
        ) from None
    info = state.get("metadata")
    if not isinstance(info, dict) or info.get("kind") != KIND:
        raise ModelFileError(f"{path} is not an emotion model file (written by `run.py export`)")
    if info.get("version") != VERSION:
        raise ModelFileError(
            f"{path} is an emotion model file of version {info.get('version')!r}; this code reads version "
            f"{VERSION}: export the model again with this version's `run.py export`"
        )
    architecture = _required(info, "architecture", path)
    settings = {key: _required(architecture, key, path) for key in ("backbone", "hidden", "dropout")}
    for key in ("num_outputs", "image_size", "normalize"):
        _required(architecture, key, path)
    _required(info, "provenance", path)
    expected = [task.to_config() for task in paper_tasks()]
    if state.get("tasks") != expected:
        raise ModelFileError(
            f"{path}: its tasks {_task_names(state.get('tasks'))} differ from this version's "
            f"{_task_names(expected)} (other AU names, classes or bins)"
        )

    def member() -> MultitaskCNN:
        return MultitaskCNN(weights=None, num_outputs=architecture["num_outputs"], **settings)

    try:
        ensemble = Ensemble.from_saved(state, member, source=path)
    except (ValueError, TypeError, KeyError) as error:
        message = " ".join(str(error).split())  # load_state_dict's report spans lines
        message = (
            message.removeprefix(f"{path}: ")
            .removeprefix("damaged Ensemble file, ")
            .replace("model_factory()'s", "its architecture's")[:300]
        )
        raise ModelFileError(f"model file {path} is damaged: {message}") from None
    return ensemble.eval()


def _required(section: dict[str, Any], key: str, path: Path) -> Any:
    if not isinstance(section, dict) or key not in section:
        raise ModelFileError(f"{path}: the model file has no {key!r} in its metadata; export it again")
    return section[key]


def _task_names(configs: Any) -> str:
    if not isinstance(configs, list):
        return repr(configs)
    return ", ".join(
        str(config.get("name")) if isinstance(config, dict) else repr(config) for config in configs
    )
