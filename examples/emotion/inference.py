"""``run.py predict``: a trained ensemble on your own video or folder of face images.

The ensemble comes from a finished run (:func:`predict_run`, ``--config``: the ensemble that ``evaluate``
saved - the run's students, their mean probabilities, or its teacher when it has none - with the AU thresholds
tuned for it) or from a model file that ``run.py export`` wrote (:func:`predict_model_file`, ``--model``: the
same ensemble, needing neither the config nor the run folder). Frames are decoded, faces detected and aligned,
and per-face, per-frame predictions written by :func:`affect_data.prediction.predict_video`
(``predictions.csv``, ``predictions.png``) into ``<run>/predict/<source name>/`` (``--config``) or
``predict/<source name>/`` (``--model``) unless another folder is given.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from affect_data.prediction import predict_video
from emotion.config import Config, device_problem
from emotion.evaluate import load_run_ensemble
from emotion.factory import IMAGENET_NORMALIZE, resolve_device
from emotion.pipeline import StageError, read_marker
from mtl_distill.ensemble import Ensemble

__all__ = ["predict_model_file", "predict_run", "run_ensemble"]


def run_ensemble(config: Config) -> Ensemble:
    """The run's ensemble as ``evaluate`` saved it (:func:`emotion.evaluate.load_run_ensemble`: its tuned AU
    thresholds included), with ``metadata["provenance"]`` (:func:`emotion.export.provenance`).

    Hand it to :func:`affect_data.prediction.predict_table` for a table without files written;
    :func:`emotion.export.export_model` writes it as the run's model file.

    Raises
    ------
    StageError
        In one line, when the run has no finished ``evaluate`` stage or its ``ensemble.pt`` does not load.
    """
    from emotion.export import provenance

    if read_marker(config.stage_dir("evaluate")) is None:
        raise StageError(
            f"the run's ensemble needs a finished run: {config.run_dir} has no evaluate stage "
            "(run `run.py all`)"
        )
    ensemble = load_run_ensemble(config)
    # What the exported model file records, so that predictions say what the models learned from.
    ensemble.metadata["provenance"] = provenance(config, ensemble.metadata["members"])
    return ensemble


def predict_run(
    config: Config,
    source: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    **options: Any,
) -> pd.DataFrame:
    """Predict every face of every frame of ``source`` with the run's ensemble and write the table and plot.

    ``options`` go to :func:`affect_data.prediction.predict_video` (``every``, ``fps``, ``detector``,
    ``save_crops``, ``min_score``, ``device``, ...); the device defaults to the config's ``training.device``.
    Returns the table.
    """
    source = Path(source)
    out_dir = Path(out_dir) if out_dir is not None else config.run_dir / "predict" / source.stem
    options["device"] = resolve_device(options.get("device") or config.training.device)
    return predict_video(
        source,
        run_ensemble(config),
        None,
        out_dir,
        model_name=f"run {config.run_dir}",
        image_size=config.data.image_size,
        normalize=IMAGENET_NORMALIZE,
        **options,
    )


def predict_model_file(
    model: str | os.PathLike,
    source: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    **options: Any,
) -> pd.DataFrame:
    """Predict every face of every frame of ``source`` with a model file and write the table and plot.

    ``model`` is a file written by ``run.py export`` (read by :func:`affect_data.model_file.load_model_file`),
    or by ``run.py export --sequence-length L``: Table II's CNN-GRU, each face predicted from sliding windows
    of its track (see :mod:`affect_data.prediction`). It brings the architecture, the input size, the
    normalisation and the AU thresholds, so no config is needed.
    ``out_dir`` defaults to ``predict/<source name>`` in the current folder; ``options`` go to
    :func:`affect_data.prediction.predict_video`, the device defaulting to ``auto`` (CUDA when available).
    Returns the table.

    Raises
    ------
    affect_data.model_file.ModelFileError
        In one line naming ``model`` when it is missing, damaged or from another version.
    """
    from affect_data.model_file import load_model_file

    ensemble = load_model_file(model)
    architecture = ensemble.metadata["architecture"]
    source = Path(source)
    out_dir = Path(out_dir) if out_dir is not None else Path("predict") / source.stem
    options["device"] = _available(resolve_device(options.get("device") or "auto"))
    mean, std = architecture["normalize"]
    return predict_video(
        source,
        ensemble,
        None,
        out_dir,
        model_name=str(model),
        image_size=architecture["image_size"],
        normalize=(mean, std),
        **options,
    )


def _available(device: torch.device) -> torch.device:
    """``device``, unless this machine lacks it: then a ValueError naming it (not a CUDA traceback later)."""
    problem = device_problem(str(device))
    if problem is not None:
        raise ValueError(f"--device {device}: {problem}")
    return device
