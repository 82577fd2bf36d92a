"""``run.py predict``: a finished run's student ensemble on your own video or folder of face images.

The ensemble is the run's students (their mean probabilities, as in ``evaluate``; the teacher when the run has
no students) with the AU thresholds that ``evaluate`` tuned for it; frames are decoded, faces detected and
aligned, and per-face, per-frame predictions written by :func:`emotion.predict.predict_video`
(``predictions.csv``, ``predictions.png``) into ``<run>/predict/<source name>/`` unless another folder is
given.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from emotion.config import Config
from emotion.evaluate import model_paths
from emotion.factory import IMAGENET_NORMALIZE, build_model, resolve_device
from emotion.pipeline import StageError, read_marker
from mtl_distill.ensemble import Ensemble

__all__ = ["load_ensemble", "predict_run", "run_ensemble"]


def load_ensemble(config: Config) -> tuple[list[Any], str]:
    """The run's students (its teacher when it has none) and the ``thresholds.json`` entry that fits them."""
    run_dir = config.run_dir
    if read_marker(config.stage_dir("evaluate")) is None:
        raise StageError(f"predict needs a finished run: {run_dir} has no evaluate stage (run `run.py all`)")
    from emotion.predict import load_models

    paths = model_paths(config)
    students = [path for name, path in paths.items() if name.startswith("student_")]
    chosen, key = (students, "ensemble") if students else ([paths["teacher"]], "teacher")
    # load_models names the checkpoint that does not fit the config's model (edited config, other run).
    return load_models(chosen, lambda: build_model(config, pretrained=False)), key


def run_ensemble(config: Config) -> Ensemble:
    """The run's ensemble (:func:`load_ensemble`) as an ``mtl_distill.Ensemble`` with its tuned AU thresholds.

    Hand it to :func:`emotion.predict.predict_table` for a table without files written.
    """
    from emotion.predict import as_ensemble, read_thresholds

    models, key = load_ensemble(config)
    return as_ensemble(models, read_thresholds(config.stage_dir("evaluate") / "thresholds.json", key=key))


def predict_run(
    config: Config,
    source: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    **options: Any,
) -> pd.DataFrame:
    """Predict every face of every frame of ``source`` with the run's ensemble and write the table and plot.

    ``options`` go to :func:`emotion.predict.predict_video` (``every``, ``fps``, ``detector``, ``save_crops``,
    ``min_score``, ``device``, ...); the device defaults to the config's ``training.device``. Returns the
    table.
    """
    from emotion.predict import predict_video

    source = Path(source)
    out_dir = Path(out_dir) if out_dir is not None else config.run_dir / "predict" / source.stem
    options["device"] = resolve_device(options.get("device") or config.training.device)
    return predict_video(
        source,
        run_ensemble(config),
        None,
        out_dir,
        image_size=config.data.image_size,
        normalize=IMAGENET_NORMALIZE,
        **options,
    )
