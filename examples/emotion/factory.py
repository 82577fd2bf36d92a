"""Build the pipeline's parts from the configuration: tasks, models, device, tables and datasets, and read
back the weights and checkpoints that stages saved (a damaged or foreign file is a one-line StageError)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from affect_data.models import MultitaskCNN
from affect_data.prediction import abaw_tasks
from affect_data.schema import AU_NAMES, VA_NAMES, as_frame_table
from affect_data.transforms import IMAGENET_MEAN, IMAGENET_STD
from emotion.config import Config
from emotion.pipeline import StageError
from mtl_distill import Task
from mtl_distill.checkpoint import load_checkpoint, write_atomically
from mtl_distill.distributed import default_device
from mtl_distill.ensemble import Ensemble

__all__ = [
    "IMAGENET_NORMALIZE",
    "build_model",
    "check_resumable",
    "frame_cache_folder",
    "frame_dataset",
    "load_ensemble",
    "load_model",
    "load_weights",
    "open_frame_cache",
    "read_table",
    "resolve_device",
    "seeded",
    "truth_arrays",
    "write_table",
]

#: Every backbone sees ImageNet-normalised inputs: "imagenet" weights and random ones share one pipeline.
IMAGENET_NORMALIZE = (IMAGENET_MEAN, IMAGENET_STD)


def build_model(config: Config, pretrained: bool = True, tasks: Sequence[Task] | None = None) -> MultitaskCNN:
    """The config's multitask CNN (one head per task of ``tasks``, default the paper's three);
    ``pretrained=False`` skips the backbone weights (to be overwritten).

    The random initial weights come from ``config.seed`` alone, not from whatever used the global generator
    before, so a stage gives the same model whether it runs alone or after others in one process.
    """
    tasks = abaw_tasks() if tasks is None else tasks
    with seeded(config.seed):
        return MultitaskCNN(
            backbone=config.model.backbone,
            weights=config.model.weights if pretrained else None,
            num_outputs={task.name: task.num_outputs for task in tasks},
            hidden=config.model.hidden,
            dropout=config.model.dropout,
        )


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block on torch's CPU generator seeded with ``seed``, restoring the generator's state after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def load_weights(model: torch.nn.Module, path: Path, stage: str) -> torch.nn.Module:
    """Load the weights that stage ``stage`` saved at ``path`` (``model.pt``, ``initial.pt``) into ``model``.

    Raises
    ------
    StageError
        In one line naming the file and the command that writes it again (``run.py STAGE --force``), when it
        is missing, unreadable (truncated, damaged) or holds the weights of another model.
    """
    model.load_state_dict(_weights(_read(path, stage), model, path, stage))
    return model


def load_model(config: Config, path: Path, stage: str) -> MultitaskCNN:
    """The config's multitask CNN with the weights that stage ``stage`` saved at ``path``; see
    :func:`load_weights`."""
    return load_weights(build_model(config, pretrained=False), path, stage)


def load_ensemble(path: Path, config: Config, stage: str) -> Ensemble:
    """The ``mtl_distill.Ensemble`` that stage ``stage`` saved at ``path``, its members the config's model,
    in eval mode.

    Raises
    ------
    StageError
        In one line naming the file and ``run.py STAGE --force``, when it is missing, unreadable, not an
        ensemble file or holds the weights of another model.
    """
    state = _read(path, stage)
    members = state.get("members")
    if not isinstance(members, list) or not members:
        raise StageError(f"{path} holds no ensemble: run `run.py {stage} --force` to write it again")
    template = build_model(config, pretrained=False)
    for weights in members:
        _weights(weights, template, path, stage)
    try:
        ensemble = Ensemble.from_saved(state, lambda: build_model(config, pretrained=False), source=path)
    except (ValueError, TypeError, KeyError) as error:  # another format or version, a key or task missing
        reason = str(error).splitlines()[0].replace(str(path), "the file")
        raise StageError(
            f"{path} is not an ensemble file of this version ({reason}): run `run.py {stage} --force` to "
            "write it again"
        ) from None
    return ensemble.eval()


def check_resumable(folder: Path, model: torch.nn.Module, stage: str) -> None:
    """Check what a trainer resumes from in ``folder`` before it starts: its ``checkpoint.pt``, its students'
    ``student_<k>/checkpoint.pt`` (all made for ``model``'s architecture) and ``soft_labels.pt``.

    mtl_distill would stop on such a file with a traceback, after the datasets were built; this names it.

    Raises
    ------
    StageError
        In one line naming the file and ``run.py STAGE --force`` (which starts the stage afresh), when a file
        is unreadable, is not a training checkpoint, or was made for another model.
    """
    for path in (folder / "checkpoint.pt", *sorted(folder.glob("student_*/checkpoint.pt"))):
        if path.is_file():
            _weights(_read(path, stage).get("model"), model, path, stage)
    if (folder / "soft_labels.pt").is_file():
        _read(folder / "soft_labels.pt", stage)


def _read(path: Path, stage: str) -> dict[str, Any]:
    try:
        return load_checkpoint(path)
    except FileNotFoundError:
        raise StageError(f"{path} is missing: run `run.py {stage} --force` to write it again") from None
    except ValueError:  # torch's reason runs over several lines: the file and the remedy are what matter
        raise StageError(
            f"{path} cannot be read (truncated or damaged): run `run.py {stage} --force` to write it again"
        ) from None


def _weights(state: Any, model: torch.nn.Module, path: Path, stage: str) -> Mapping[str, Any]:
    """``state`` when it is a state dict that fits ``model``, else a StageError saying what does not fit."""
    if not isinstance(state, Mapping):
        raise StageError(f"{path} holds no model weights: run `run.py {stage} --force` to write it again")
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    reshaped = [
        key
        for key, value in expected.items()
        if key in state and getattr(state[key], "shape", None) != value.shape
    ]
    problems = [
        f"{len(keys)} {what}, first {keys[0]!r}"
        for what, keys in (("missing", missing), ("unexpected", unexpected), ("of another shape", reshaped))
        if keys
    ]
    if problems:
        raise StageError(
            f"{path} holds the weights of another model (weights {'; '.join(problems)}): run "
            f"`run.py {stage} --force` to write it again with this config's model"
        )
    return state


def resolve_device(name: str) -> torch.device:
    """``"auto"`` is mtl_distill's choice (CUDA when available, else the CPU); anything else is passed to
    ``torch.device``."""
    return default_device() if name == "auto" else torch.device(name)


def frame_dataset(
    table: pd.DataFrame, config: Config, train: bool, task_names: Sequence[str] = ("AU", "EXPR", "VA")
) -> torch.utils.data.Dataset:
    """affect_data's FrameDataset over ``table`` at the config's image size (random crops when training),
    reading the crop cache that ``prepare`` built when the config asks for one."""
    from affect_data.datasets import FrameDataset

    return FrameDataset(
        table,
        task_names=task_names,
        train=train,
        size=config.data.image_size,
        normalize=IMAGENET_NORMALIZE,
        cache=open_frame_cache(config),
    )


def frame_cache_folder(config: Config) -> Path:
    """Where ``prepare`` writes the crop cache."""
    return config.stage_dir("prepare") / "crops"


def open_frame_cache(config: Config):
    """The crop cache of the run (affect_data's ``FrameCache``), or None when ``data.frame_cache`` is off."""
    if not config.data.frame_cache:
        return None
    from affect_data.cache import FrameCache
    from affect_data.transforms import resized_size

    return FrameCache(frame_cache_folder(config), size=resized_size(config.data.image_size))


def truth_arrays(table: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per-task ground truth of a frame table as float arrays with NaN where missing (the metrics' input)."""
    return {
        "AU": table[list(AU_NAMES)].to_numpy(dtype=np.float64, na_value=np.nan),
        "EXPR": table["expr"].to_numpy(dtype=np.float64, na_value=np.nan),
        "VA": table[list(VA_NAMES)].to_numpy(dtype=np.float64, na_value=np.nan),
    }


def write_table(table: pd.DataFrame, path: Path) -> None:
    """Save a frame table as CSV (atomically); :func:`read_table` restores its dtypes."""
    write_atomically(path, table.to_csv(index=False))


def read_table(path: Path) -> pd.DataFrame:
    """Read a frame table written by :func:`write_table`."""
    # Names stay strings: AFEW-VA's clip "001" must not come back as the number 1.
    text = {column: "string" for column in ("dataset", "video", "path", "subject", "split")}
    return as_frame_table(pd.read_csv(path, dtype=text))
