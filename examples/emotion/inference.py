"""``run.py predict``: a finished run's student ensemble on your own video or folder of face images.

The ensemble is the run's students (their mean probabilities, as in ``evaluate``; the teacher when the run has
no students) with the AU thresholds that ``evaluate`` tuned for it; frames are decoded, faces detected and
aligned, and per-frame predictions written by :func:`emotion.predict.predict_video` (``predictions.csv``,
``predictions.png``) into ``<run>/predict/<source name>/`` unless another folder is given.
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

__all__ = ["load_ensemble", "predict_run"]


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


def predict_run(
    config: Config,
    source: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    **options: Any,
) -> pd.DataFrame:
    """Predict every frame of ``source`` with the run's ensemble; ``options`` go to ``predict_video``
    (``every``, ``fps``, ``detector``, ``save_crops``, ...). Returns the per-frame table."""
    from emotion.predict import predict_video, read_thresholds

    source = Path(source)
    models, key = load_ensemble(config)
    thresholds = read_thresholds(config.stage_dir("evaluate") / "thresholds.json", key=key)
    out_dir = Path(out_dir) if out_dir is not None else config.run_dir / "predict" / source.stem
    return predict_video(
        source,
        models,
        thresholds,
        out_dir,
        image_size=config.data.image_size,
        device=resolve_device(config.training.device),
        normalize=IMAGENET_NORMALIZE,
        **options,
    )
