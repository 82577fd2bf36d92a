"""The model file: a trained ensemble of the paper's networks (:mod:`affect_data.models`) in one file.

A model file is an ``mtl_distill.Ensemble`` file - the tasks (AU names, expression classes, valence-arousal
bins: :func:`affect_data.prediction.abaw_tasks`), the members' weights, the AU thresholds - whose
``metadata`` says how to rebuild the members and where they came from:

- ``kind`` (:data:`KIND`) and ``version`` (:data:`VERSION`), the layout this module reads and writes;
- ``architecture``: ``model`` (``"MultitaskCNN"``, or ``"MultitaskCNNRNN"`` for CNN-GRU members), the
  CNN's ``backbone``, ``hidden``, ``dropout`` and ``num_outputs`` (task -> logits), the input ``image_size``
  and the ``normalize`` statistics (mean, std); a CNN-GRU file adds ``rnn_hidden`` and ``sequence_length``;
- ``provenance``: a mapping of plain values that the writer chooses (the emotion example records the data,
  the config, the members' names, the date and the package versions).

The file holds only tensors and plain containers, so :func:`load_model_file` reads it with
``torch.load(weights_only=True)``, and a user predicting on video needs nothing else
(:func:`affect_data.prediction.predict_video`). Write one with :func:`model_file_metadata` and
``Ensemble.save``.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> from affect_data.models import MultitaskCNN
>>> from affect_data.prediction import abaw_tasks
>>> from mtl_distill import Ensemble
>>> architecture = {"model": "MultitaskCNN", "backbone": "resnet_tiny", "hidden": 16, "dropout": 0.0,
...                 "num_outputs": {"AU": 8, "EXPR": 7, "VA": 40}, "image_size": 64,
...                 "normalize": [[0.485, 0.456, 0.406], [0.229, 0.224, 0.225]]}
>>> member = MultitaskCNN("resnet_tiny", hidden=16, dropout=0.0)
>>> metadata = model_file_metadata(architecture, {"trained_on": "nothing yet"})
>>> path = Path(tempfile.mkdtemp()) / "model.pt"
>>> _ = Ensemble([member], abaw_tasks(), metadata=metadata).save(path)
>>> loaded = load_model_file(path)
>>> type(loaded.members[0]).__name__, loaded.metadata["architecture"]["image_size"]
('MultitaskCNN', 64)
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from affect_data.models import MultitaskCNN, MultitaskCNNRNN, SlidingCNNRNN
from affect_data.prediction import abaw_tasks
from mtl_distill.checkpoint import load_checkpoint
from mtl_distill.ensemble import Ensemble

__all__ = ["KIND", "MODELS", "VERSION", "ModelFileError", "load_model_file", "model_file_metadata"]

#: ``metadata["kind"]`` of a model file (the name it had when the emotion example alone wrote it).
KIND = "emotion.model"
#: The layout version this module reads and writes.
VERSION = 1
#: The architectures a model file may hold.
MODELS = ("MultitaskCNN", "MultitaskCNNRNN")

_CNN_KEYS = ("backbone", "hidden", "dropout")
_INPUT_KEYS = ("num_outputs", "image_size", "normalize")
_RNN_KEYS = ("sequence_length", "rnn_hidden")
_EXPORT_AGAIN = "export it again"


class ModelFileError(ValueError):
    """A model file that cannot be used; the one-line message names the file and what is wrong."""


def model_file_metadata(architecture: Mapping[str, Any], provenance: Mapping[str, Any]) -> dict[str, Any]:
    """The ``metadata`` of an ``Ensemble`` that ``Ensemble.save`` writes as a model file.

    Parameters
    ----------
    architecture : mapping
        What builds one member and what it reads (the module docstring lists the keys).
    provenance : mapping
        Plain values saying where the members came from.

    Raises
    ------
    ModelFileError
        If ``architecture`` lacks a key or names an unknown model: the file would not load.
    """
    _check_architecture(architecture, "the architecture", "add it")
    return {
        "kind": KIND,
        "version": VERSION,
        "architecture": dict(architecture),
        "provenance": dict(provenance),
    }


def load_model_file(path: str | os.PathLike, map_location: str = "cpu") -> Ensemble:
    """Read a model file (``weights_only=True``) as an ``Ensemble`` in eval mode.

    ``ensemble.metadata`` holds ``architecture`` and ``provenance`` (the module docstring) and
    ``ensemble.thresholds["AU"]`` the AU thresholds. The members are :class:`~affect_data.models.MultitaskCNN`
    s, or for a CNN-GRU file :class:`~affect_data.models.SlidingCNNRNN` s sharing one CNN.

    Raises
    ------
    ModelFileError
        In one line naming the file: missing, unreadable (truncated, damaged, not a torch file), not a model
        file, of another version, lacking a key, of an unknown architecture, with tasks other than
        :func:`~affect_data.prediction.abaw_tasks`, or with weights that do not fit its own architecture.
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
        raise ModelFileError(
            f"{path} is not an emotion model file: its metadata lacks kind {KIND!r} (model_file_metadata "
            "writes it, as the emotion example's `run.py export` does)"
        )
    if info.get("version") != VERSION:
        raise ModelFileError(
            f"{path} is an emotion model file of version {info.get('version')!r}; this code reads version "
            f"{VERSION}: write it again with this version (the emotion example's `run.py export`)"
        )
    architecture = _required(info, "architecture", path, _EXPORT_AGAIN)
    _check_architecture(architecture, path, _EXPORT_AGAIN)
    _required(info, "provenance", path, _EXPORT_AGAIN)
    expected = [task.to_config() for task in abaw_tasks()]
    if state.get("tasks") != expected:
        raise ModelFileError(
            f"{path}: its tasks {_task_names(state.get('tasks'))} differ from this version's "
            f"{_task_names(expected)} (other AU names, classes or bins)"
        )
    try:
        ensemble = Ensemble.from_saved(state, _member_factory(architecture), source=path)
    except (ValueError, TypeError, KeyError) as error:
        message = " ".join(str(error).split())  # load_state_dict's report spans lines
        message = (
            message.removeprefix(f"{path}: ")
            .removeprefix("damaged Ensemble file, ")
            .replace("model_factory()'s", "its architecture's")[:300]
        )
        raise ModelFileError(f"model file {path} is damaged: {message}") from None
    return ensemble.eval()


def _member_factory(architecture: Mapping[str, Any]) -> Callable[[], torch.nn.Module]:
    """A function building one untrained member; a CNN-GRU file's members all sit on one CNN, as exported."""

    def build_cnn() -> MultitaskCNN:
        settings = {key: architecture[key] for key in _CNN_KEYS}
        return MultitaskCNN(weights=None, num_outputs=architecture["num_outputs"], **settings)

    if architecture["model"] == "MultitaskCNN":
        return build_cnn
    # Built on the first call, inside from_saved: settings that build no CNN are a "damaged" file too.
    shared_cnn = functools.cache(build_cnn)
    length, rnn_hidden = architecture["sequence_length"], architecture["rnn_hidden"]
    return lambda: SlidingCNNRNN(MultitaskCNNRNN(shared_cnn(), hidden=rnn_hidden), length)


def _check_architecture(architecture: Any, where: Path | str, advice: str) -> None:
    """Raise a ModelFileError naming ``where`` if ``architecture`` lacks a key or names an unknown model."""
    model = _required(architecture, "model", where, advice)
    if model not in MODELS:
        raise ModelFileError(
            f"{where}: its architecture {model!r} is unknown to this version ({', '.join(MODELS)})"
        )
    for key in _CNN_KEYS + _INPUT_KEYS + (_RNN_KEYS if model == "MultitaskCNNRNN" else ()):
        _required(architecture, key, where, advice)


def _required(section: Any, key: str, where: Path | str, advice: str) -> Any:
    if not isinstance(section, Mapping) or key not in section:
        raise ModelFileError(f"{where}: the model file has no {key!r} in its metadata; {advice}")
    return section[key]


def _task_names(configs: Any) -> str:
    if not isinstance(configs, list):
        return repr(configs)
    return ", ".join(
        str(config.get("name")) if isinstance(config, dict) else repr(config) for config in configs
    )
