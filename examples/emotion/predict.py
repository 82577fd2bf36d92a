"""Predict action units, expression, valence and arousal on every frame of your own video.

:func:`predict_video` decodes a video (or a folder of images), finds and aligns the face in each frame
(:mod:`emotion.video`), runs an ensemble of multitask models on the crops and writes

- ``predictions.csv``: one row per frame - ``frame, time_s, face_found, box_left, box_top, box_right,
  box_bottom, face_score``, the 0/1 decision of each AU (``AU1 ... AU25``, per-AU thresholds), its probability
  (``AU1_prob ...``), the expression (``expr`` index in Aff-Wild2 order, ``expr_name``) and each class's
  probability (``Neutral_prob ...``), and the expected ``valence`` and ``arousal`` in [-1, 1]. Frames where no
  face was found have ``face_found = False`` and empty (NaN) predictions: nothing is filled in;
- ``predictions.png``: valence and arousal over time, the expression as a colour band, and an AU raster;
- optionally ``crops/<frame>.jpg``, the aligned faces the models saw.

The models are any ``torch.nn.Module`` s that map images ``[B, 3, S, S]`` to ``{"AU": [B, 8], "EXPR": [B, 7],
"VA": [B, 40]}`` logits (40 = 2 x 20 bins over [-1, 1], valence first), e.g. the students of a run; their
probabilities are averaged (sigmoid, softmax, expected value of the binned distribution).

From the shell::

    python examples/emotion/predict.py VIDEO --models runs/demo/students/student_*/model.pt \\
        --config runs/demo/config.yaml --thresholds runs/demo/evaluate/thresholds.json --out runs/demo/video
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import nn
from tqdm.auto import tqdm

if __package__ in (None, ""):  # started as a script: make examples/ importable as the `emotion` package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from affect_data.schema import AU_NAMES, EXPR_NAMES, VA_NAMES
from affect_data.transforms import FrameTransform
from emotion.factory import IMAGENET_NORMALIZE, paper_tasks
from emotion.video import (
    BOX_COLUMNS,
    DetectedFrame,
    FaceDetector,
    FrameReader,
    MTCNNDetector,
    add_frame_options,
    detect_faces,
)
from mtl_distill.checkpoint import load_checkpoint
from mtl_distill.ensemble import average_predictions

__all__ = [
    "ensemble_predict",
    "load_models",
    "plot_predictions",
    "predict_video",
    "prediction_columns",
    "read_thresholds",
]


def prediction_columns() -> list[str]:
    """The columns of ``predictions.csv``, in order.

    Examples
    --------
    >>> columns = prediction_columns()
    >>> columns[:4], columns[-2:]
    (['frame', 'time_s', 'face_found', 'box_left'], ['valence', 'arousal'])
    """
    return [
        "frame",
        "time_s",
        "face_found",
        *BOX_COLUMNS,
        "face_score",
        *AU_NAMES,
        *(f"{au}_prob" for au in AU_NAMES),
        "expr",
        "expr_name",
        *(f"{name}_prob" for name in EXPR_NAMES),
        *VA_NAMES,
    ]


def ensemble_predict(models: Sequence[nn.Module], images: torch.Tensor) -> dict[str, np.ndarray]:
    """The ensemble's averaged predictions for a batch of images.

    Each model's logits become probabilities - sigmoid for ``AU``, softmax for ``EXPR``, and for ``VA`` the
    expected value of each dimension's 20-bin softmax over [-1, 1] (dimension-major logits: the first 20 are
    valence) - and the probabilities are averaged over the models.

    Returns
    -------
    dict
        ``"AU"``: float64 ``[B, 8]`` probabilities; ``"EXPR"``: ``[B, 7]`` probabilities; ``"VA"``: ``[B, 2]``
        valence and arousal.

    Examples
    --------
    >>> class Constant(nn.Module):
    ...     def forward(self, x):
    ...         n = len(x)
    ...         return {"AU": torch.zeros(n, 8), "EXPR": torch.zeros(n, 7), "VA": torch.zeros(n, 40)}
    >>> out = ensemble_predict([Constant(), Constant()], torch.zeros(3, 3, 16, 16))
    >>> out["AU"][0, 0], round(out["EXPR"][0].sum(), 6), out["VA"][0].round(6).tolist()
    (np.float64(0.5), np.float64(1.0), [0.0, 0.0])
    """
    if not models:
        raise ValueError("ensemble_predict needs at least one model")
    tasks = paper_tasks()
    members = []
    with torch.inference_mode():
        for number, model in enumerate(models):
            outputs = model(images)
            if not isinstance(outputs, Mapping):
                raise ValueError(
                    f"model {number} returned {type(outputs).__name__}; expected a dict of task -> logits"
                )
            predicted = {}
            for task in tasks:
                logits = outputs.get(task.name)
                expected = (len(images), task.num_outputs)
                if logits is None or tuple(logits.shape) != expected:
                    got = "nothing" if logits is None else f"shape {tuple(logits.shape)}"
                    raise ValueError(
                        f"model {number}: expected {task.name!r} logits of shape {expected}, got {got}"
                    )
                predicted[task.name] = task.predict(logits.float()).cpu().numpy()
            members.append(predicted)
    return average_predictions(members)  # the evaluate stage's ensemble rule


def read_thresholds(
    thresholds: Sequence[float] | Mapping[str, Any] | np.ndarray | str | os.PathLike | None,
    key: str = "ensemble",
) -> np.ndarray:
    """Per-AU decision thresholds as an array of 8, in ``AU_NAMES`` order (an AU is on when ``p >= t``).

    Accepts 8 numbers; a mapping ``{"AU1": t, ...}``; the evaluate stage's ``thresholds.json`` layout
    ``{model: {"AU1": t, ...}}``, from which ``key`` is taken; a path to a JSON file holding any of these;
    or None for 0.5 each.

    Examples
    --------
    >>> read_thresholds(None).tolist() == [0.5] * 8
    True
    >>> read_thresholds({"ensemble": {name: 0.3 for name in AU_NAMES}})[0]
    np.float64(0.3)
    """
    where = "thresholds"
    if thresholds is None:
        return np.full(len(AU_NAMES), 0.5)
    if isinstance(thresholds, str | os.PathLike):
        where = str(thresholds)
        try:
            thresholds = json.loads(Path(thresholds).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"thresholds file {where!r} does not exist") from None
        except json.JSONDecodeError as error:
            raise ValueError(f"{where}: not valid JSON: {error}") from None
    if isinstance(thresholds, Mapping) and not set(thresholds) & set(AU_NAMES):
        if key not in thresholds:
            raise ValueError(f"{where}: no AU names and no entry {key!r}; entries: {sorted(thresholds)}")
        thresholds = thresholds[key]
    if isinstance(thresholds, Mapping):
        missing = [name for name in AU_NAMES if name not in thresholds]
        if missing:
            raise ValueError(f"{where}: no threshold for {', '.join(missing)}")
        thresholds = [thresholds[name] for name in AU_NAMES]
    try:
        values = np.asarray(thresholds, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected {len(AU_NAMES)} numbers, got {thresholds!r}") from None
    if values.shape != (len(AU_NAMES),) or not ((values >= 0) & (values <= 1)).all():
        raise ValueError(
            f"{where}: expected {len(AU_NAMES)} thresholds in [0, 1] for {', '.join(AU_NAMES)}; "
            f"got {thresholds!r}"
        )
    return values


def predict_video(
    source: str | os.PathLike,
    models: nn.Module | Sequence[nn.Module],
    thresholds: Sequence[float] | Mapping[str, Any] | np.ndarray | str | os.PathLike | None,
    out_dir: str | os.PathLike,
    *,
    image_size: int = 112,
    crop_size: int = 112,
    margin: float = 0.25,
    every: int = 1,
    fps: float | None = None,
    image_fps: float = 30.0,
    select: Literal["largest", "confident"] = "largest",
    detector: FaceDetector | None = None,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    normalize: tuple[Sequence[float], Sequence[float]] | None = IMAGENET_NORMALIZE,
    save_crops: bool = False,
    plot: bool = True,
    progress: bool = True,
) -> pd.DataFrame:
    """Per-frame predictions of an ensemble on a video or a folder of images; writes CSV and plot.

    Each face crop goes through the evaluation view of the training pipeline: the ``crop_size`` aligned crop
    (as the training crops on disk) is resized to ``round(1.2 * image_size)`` and center-cropped to
    ``image_size`` (affect_data's ``FrameTransform``), then normalised with ``normalize``.

    Parameters
    ----------
    source : path
        A video file (anything FFmpeg decodes) or a folder of images (natural order).
    models : nn.Module or sequence of nn.Module
        The ensemble (one model is an ensemble of one); each maps ``[B, 3, image_size, image_size]`` to
        ``{"AU": [B, 8], "EXPR": [B, 7], "VA": [B, 40]}`` logits. They are put in eval mode and moved to
        ``device``; their train/eval mode is restored afterwards.
    thresholds : 8 numbers, mapping, path or None
        Per-AU decision thresholds, see :func:`read_thresholds` (None: 0.5).
    out_dir : path
        Receives ``predictions.csv``, ``predictions.png`` and (``save_crops``) ``crops/``; created if needed.
    image_size : int
        The input size the models were trained at (the config's ``data.image_size``).
    crop_size, margin : int, float
        The aligned face crop, see :func:`emotion.video.face_transform`.
    every, fps, image_fps : int, float, float
        Frame subsampling and the frame rate of an image folder, see :class:`emotion.video.FrameReader`.
    select : {"largest", "confident"}
        The face kept when a frame has several.
    detector : FaceDetector, optional
        Default: :class:`emotion.video.MTCNNDetector` on ``device``.
    batch_size : int
        Frames per detector call and crops per model forward pass.
    device : str or torch.device
        ``"cpu"``, ``"cuda"``, ...
    normalize : (mean, std) or None
        The input normalisation used in training (ImageNet statistics in this project).
    save_crops, plot, progress : bool
        Write the aligned crops; write the plot; show a progress bar.

    Returns
    -------
    pandas.DataFrame
        The table written to ``predictions.csv`` (columns :func:`prediction_columns`); ``attrs`` holds the
        paths written (``"csv"``, ``"plot"``).

    Raises
    ------
    FileNotFoundError
        If ``source`` does not exist.
    ValueError
        If the source cannot be decoded or holds no frames, or a model returns outputs of the wrong shape.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from emotion.video import Face
    >>> from emotion.models import MultitaskCNN
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> for i in range(3):
    ...     Image.new("RGB", (96, 96), (90, 120, 150)).save(folder / f"{i}.png")
    >>> class FaceInFirstFrame:  # any detector with this method plugs in
    ...     def detect(self, images):
    ...         points = np.array([[35, 40], [60, 40], [48, 52], [38, 66], [58, 66]], float)
    ...         face = Face(np.array([25.0, 25, 70, 80]), 0.99, points)
    ...         return [[face] if i == 0 else [] for i in range(len(images))]
    >>> table = predict_video(folder, MultitaskCNN("resnet_tiny"), None, folder / "out", image_size=32,
    ...                       detector=FaceInFirstFrame(), progress=False)
    >>> table["face_found"].tolist(), bool(table.loc[1, "AU1_prob"] != table.loc[1, "AU1_prob"])
    ([True, False, False], True)
    """
    models = [models] if isinstance(models, nn.Module) else list(models)
    if not models:
        raise ValueError("predict_video needs at least one model")
    if batch_size < 1 or image_size < 1 or crop_size < 1:
        raise ValueError(
            f"batch_size, image_size and crop_size must be >= 1, got {batch_size}, {image_size}, {crop_size}"
        )
    au_thresholds = read_thresholds(thresholds)
    device = torch.device(device)
    reader = FrameReader(source, every=every, fps=fps, image_fps=image_fps)
    if detector is None:
        detector = MTCNNDetector(device=device)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    crops_dir = out_dir / "crops"
    if save_crops:
        crops_dir.mkdir(exist_ok=True)

    transform = FrameTransform(size=image_size, train=False, normalize=normalize)
    modes = [model.training for model in models]
    for model in models:
        model.to(device).eval()
    records: list[DetectedFrame] = []
    predictions: dict[str, list[np.ndarray]] = {"AU": [], "EXPR": [], "VA": []}
    pending: list[np.ndarray] = []

    def flush() -> None:
        if pending:
            # One transform call for the batch: the evaluation view is the same center crop for every face.
            images = transform(np.stack([_model_view(crop, transform.input_size) for crop in pending]))
            for name, values in ensemble_predict(models, images.to(device)).items():
                predictions[name].append(values)
            pending.clear()

    bar = tqdm(
        total=len(reader) or None, desc=f"predict {reader.source.name}", unit="frame", disable=not progress
    )
    try:
        for detected in detect_faces(reader, detector, crop_size, margin, select, batch_size):
            records.append(DetectedFrame(detected.index, detected.time, detected.face, None))
            if detected.crop is not None:
                pending.append(detected.crop)
                if save_crops:
                    _save_jpeg(detected.crop, crops_dir / f"{detected.index:06d}.jpg")
                if len(pending) == batch_size:
                    flush()
            bar.update()
        flush()
    finally:
        bar.close()
        for model, mode in zip(models, modes, strict=True):
            model.train(mode)
    if not records:
        raise ValueError(f"{str(reader.source)!r} yielded no frames")

    found = {name: np.concatenate(values) if values else None for name, values in predictions.items()}
    table = _prediction_table(records, found, au_thresholds)
    csv_path = out_dir / "predictions.csv"
    _write_atomically(csv_path, lambda path: table.to_csv(path, index=False, float_format="%.6g"))
    table.attrs["csv"] = str(csv_path)
    if plot:
        plot_path = out_dir / "predictions.png"
        plot_predictions(table, plot_path, title=reader.source.name)
        table.attrs["plot"] = str(plot_path)
    return table


def _model_view(crop: np.ndarray, side: int) -> np.ndarray:
    """The crop resized as affect_data's ``load_image`` resizes training crops (bilinear)."""
    if crop.shape[:2] == (side, side):
        return crop
    return np.asarray(Image.fromarray(crop).resize((side, side), Image.Resampling.BILINEAR))


def _prediction_table(
    records: Sequence[DetectedFrame], found: Mapping[str, np.ndarray | None], thresholds: np.ndarray
) -> pd.DataFrame:
    """One row per frame; rows without a face keep NaN / <NA> predictions."""
    n = len(records)
    has_face = np.array([record.face is not None for record in records])
    if found["AU"] is not None and len(found["AU"]) != has_face.sum():
        raise AssertionError("predictions and detected faces are out of step")

    def spread(values: np.ndarray | None, width: int) -> np.ndarray:
        full = np.full((n, width), np.nan)
        if values is not None:
            full[has_face] = values
        return full

    au_prob = spread(found["AU"], len(AU_NAMES))
    expr_prob = spread(found["EXPR"], len(EXPR_NAMES))
    va = spread(found["VA"], len(VA_NAMES))
    boxes = np.array([r.face.box if r.face is not None else np.full(4, np.nan) for r in records])
    columns: dict[str, Any] = {
        "frame": np.array([r.index for r in records], dtype=np.int64),
        "time_s": np.array([r.time for r in records], dtype=np.float64),
        "face_found": has_face,
        **{name: boxes[:, i] for i, name in enumerate(BOX_COLUMNS)},
        "face_score": np.array([r.face.score if r.face is not None else np.nan for r in records]),
    }
    decisions = pd.DataFrame(au_prob >= thresholds, columns=list(AU_NAMES)).astype("Int8")
    decisions.loc[~has_face] = pd.NA
    columns.update({name: decisions[name] for name in AU_NAMES})
    columns.update({f"{name}_prob": au_prob[:, i] for i, name in enumerate(AU_NAMES)})
    expr = np.nan_to_num(expr_prob).argmax(axis=1)  # 0 on frames without a face, masked just below
    columns["expr"] = pd.array(expr, dtype="Int64")
    columns["expr_name"] = pd.array(np.asarray(EXPR_NAMES, dtype=object)[expr], dtype="string")
    for name in ("expr", "expr_name"):
        columns[name][~has_face] = pd.NA
    columns.update({f"{name}_prob": expr_prob[:, i] for i, name in enumerate(EXPR_NAMES)})
    columns.update({name: va[:, i] for i, name in enumerate(VA_NAMES)})
    return pd.DataFrame(columns)[prediction_columns()]


#: One colour per expression (Aff-Wild2 order): Neutral grey, Anger red, Disgust olive, Fear purple,
#: Happiness yellow, Sadness blue, Surprise orange.
EXPR_COLORS = ("#9e9e9e", "#d62728", "#7f7f00", "#9467bd", "#f2c500", "#1f77b4", "#ff7f0e")


def plot_predictions(table: pd.DataFrame, path: str | os.PathLike, title: str | None = None) -> Path:
    """Plot a prediction table over time: valence/arousal, expression band, AU raster; save a PNG.

    Frames without a face are left blank (hatched grey in the bands), never interpolated over.

    Examples
    --------
    >>> import tempfile
    >>> rows = {"frame": [0, 1], "time_s": [0.0, 0.04], "face_found": [True, False], "expr": [4, None],
    ...         "valence": [0.5, None], "arousal": [0.1, None], **{au: [1, None] for au in AU_NAMES}}
    >>> plot_predictions(pd.DataFrame(rows), tempfile.mkdtemp() + "/p.png").suffix
    '.png'
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend
    from matplotlib.patches import Patch

    time = table["time_s"].to_numpy(dtype=np.float64)
    edges = _time_edges(time)
    no_face = ~table["face_found"].to_numpy(dtype=bool)

    figure = Figure(figsize=(11, 6.5), layout="constrained")
    va_axis, expr_axis, au_axis = figure.subplots(
        3, 1, sharex=True, gridspec_kw={"height_ratios": [3, 0.6, 2.4]}
    )
    for name, color in zip(VA_NAMES, ("#1f77b4", "#d62728"), strict=True):
        values = table[name].to_numpy(dtype=np.float64, na_value=np.nan)
        va_axis.plot(
            time, values, color=color, label=name, linewidth=1.2, marker="." if len(time) < 60 else None
        )
    va_axis.axhline(0.0, color="black", linewidth=0.5)
    va_axis.set_ylim(-1.05, 1.05)
    va_axis.set_ylabel("valence / arousal")
    va_axis.legend(loc="upper right", ncol=2, fontsize="small")

    expr = table["expr"].to_numpy(dtype=np.float64, na_value=np.nan)[None, :]
    expr_axis.pcolormesh(
        edges, [0, 1], np.ma.masked_invalid(expr), cmap=ListedColormap(EXPR_COLORS), vmin=-0.5, vmax=6.5
    )
    expr_axis.set_yticks([])
    expr_axis.set_ylabel("expr", rotation=0, ha="right", va="center")
    present = sorted({int(e) for e in expr[0] if not np.isnan(e)})
    handles = [Patch(color=EXPR_COLORS[i], label=EXPR_NAMES[i]) for i in present]
    if no_face.any():
        handles.append(Patch(facecolor="#eeeeee", hatch="///", edgecolor="#999999", label="no face"))
    figure.legend(handles=handles, loc="outside right center", fontsize="small", frameon=False)

    raster = table[list(AU_NAMES)].to_numpy(dtype=np.float64, na_value=np.nan).T
    au_axis.pcolormesh(
        edges,
        np.arange(len(AU_NAMES) + 1),
        np.ma.masked_invalid(raster),
        cmap=ListedColormap(["#f4f4f4", "#2b2b2b"]),
        vmin=0,
        vmax=1,
    )
    au_axis.set_yticks(np.arange(len(AU_NAMES)) + 0.5, AU_NAMES)
    au_axis.invert_yaxis()
    au_axis.set_ylabel("action units\n(dark: on)")
    au_axis.set_xlabel("time (s)")
    for axis in (va_axis, expr_axis, au_axis):
        for start, stop in _runs(no_face):
            axis.axvspan(
                edges[start],
                edges[stop],
                facecolor="#eeeeee",
                hatch="///",
                edgecolor="#bbbbbb",
                linewidth=0,
                zorder=0,
            )
    au_axis.set_xlim(edges[0], edges[-1])
    found = int((~no_face).sum())
    figure.suptitle(f"{title + ': ' if title else ''}face found in {found} of {len(no_face)} frames")
    path = Path(path)
    _write_atomically(path, lambda target: figure.savefig(target, dpi=110, format="png"))
    return path


def _time_edges(time: np.ndarray) -> np.ndarray:
    """Cell edges around each frame's time: midpoints between neighbours, half a step beyond the ends."""
    if len(time) == 1:
        return np.array([time[0] - 0.5, time[0] + 0.5])
    middle = (time[1:] + time[:-1]) / 2
    return np.concatenate([[2 * time[0] - middle[0]], middle, [2 * time[-1] - middle[-1]]])


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` index ranges of the consecutive True values of ``mask``."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    changes = np.flatnonzero(np.diff(padded))
    return list(zip(changes[::2], changes[1::2], strict=True))


def _write_atomically(path: Path, write: Callable[[str], None]) -> None:
    # A new name with mode 0o666 (the umask applies), not mkstemp's 0o600, which would survive the rename.
    temporary = path.parent / f".{path.name}.{secrets.token_hex(8)}{path.suffix}"
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        write(str(temporary))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _save_jpeg(pixels: np.ndarray, path: Path) -> None:
    _write_atomically(
        path, lambda target: Image.fromarray(pixels).save(target, format="JPEG", quality=95, subsampling=0)
    )


def load_models(checkpoints: Sequence[str | os.PathLike], build: Callable[[], nn.Module]) -> list[nn.Module]:
    """Build one model per checkpoint with ``build()`` and load its state dict (``weights_only=True``).

    A checkpoint may hold the bare state dict or nest it under ``"model"`` or ``"state_dict"``.

    Raises
    ------
    FileNotFoundError
        Naming a missing checkpoint.
    ValueError
        Naming the checkpoint whose weights do not fit the built model (another backbone or head size).

    Examples
    --------
    >>> import tempfile
    >>> from emotion.models import MultitaskCNN
    >>> path = tempfile.mkdtemp() + "/model.pt"
    >>> torch.save(MultitaskCNN("resnet_tiny").state_dict(), path)
    >>> len(load_models([path], lambda: MultitaskCNN("resnet_tiny")))
    1
    """
    if not checkpoints:
        raise ValueError("give at least one model checkpoint")
    models = []
    for checkpoint in checkpoints:
        state = load_checkpoint(checkpoint)
        for wrapper in ("model", "state_dict"):
            if isinstance(state.get(wrapper), Mapping):
                state = state[wrapper]
        model = build()
        problem = _state_dict_mismatch(model, state)
        if problem:
            raise ValueError(
                f"checkpoint {str(checkpoint)!r} does not fit the model ({problem}); saved from another "
                "backbone or head size? Build the model from the run's config"
            )
        model.load_state_dict(state)
        models.append(model.eval())
    return models


def _state_dict_mismatch(model: nn.Module, state: Mapping[str, Any]) -> str:
    """What keeps ``state`` from loading into ``model`` in a few words, or "" when it fits."""
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    reshaped = [
        f"{key} {tuple(state[key].shape)} vs {tuple(value.shape)}"
        for key, value in expected.items()
        if key in state and getattr(state[key], "shape", None) != value.shape
    ]
    parts = [
        f"{len(keys)} {what}: {', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''}"
        for what, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shapes differ", reshaped),
        )
        if keys
    ]
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    """The command line: ``python examples/emotion/predict.py VIDEO --models CKPT... --out DIR``."""
    parser = argparse.ArgumentParser(
        prog="predict.py",
        description="Per-frame AU, expression and valence-arousal predictions on a video or image folder.",
    )
    parser.add_argument("source", type=Path, help="a video file or a folder of images")
    parser.add_argument(
        "--models", nargs="+", required=True, type=Path, help="model checkpoint(s): the ensemble"
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    model_group = parser.add_argument_group("the model (a run's config, or the architecture)")
    model_group.add_argument("--config", type=Path, help="the run's config (e.g. runs/demo/config.yaml)")
    model_group.add_argument(
        "--backbone",
        default="resnet50",
        choices=("resnet50", "resnet18", "resnet_tiny"),
        help="without --config: the backbone (default resnet50)",
    )
    model_group.add_argument("--hidden", type=int, default=128, help="without --config: head width (128)")
    model_group.add_argument(
        "--image-size", type=int, help="model input size (default: the config's, else 112)"
    )
    parser.add_argument(
        "--thresholds", type=Path, help="JSON: 8 AU thresholds, {AU: t}, or evaluate's thresholds.json"
    )
    parser.add_argument(
        "--thresholds-key", default="ensemble", help="entry of thresholds.json to use (ensemble)"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--save-crops", action="store_true", help="also write the aligned crops")
    add_frame_options(parser)
    args = parser.parse_args(argv)

    from emotion.factory import build_model, resolve_device
    from emotion.models import PAPER_OUTPUTS, MultitaskCNN

    try:
        if args.config is not None:
            from emotion.config import ConfigError, load_config

            try:
                config = load_config(args.config, check_paths=False)
            except ConfigError as error:
                raise ValueError(str(error)) from None
            image_size = args.image_size or config.data.image_size
            build = lambda: build_model(config, pretrained=False)  # noqa: E731
        else:
            image_size = args.image_size or 112
            build = lambda: MultitaskCNN(args.backbone, None, PAPER_OUTPUTS, hidden=args.hidden)  # noqa: E731
        FrameReader(args.source, every=args.every, fps=args.fps, image_fps=args.image_fps)  # fail fast
        device = resolve_device(args.device)
        thresholds = read_thresholds(args.thresholds, key=args.thresholds_key) if args.thresholds else None
        models = load_models(args.models, build)
        detector = MTCNNDetector(
            device=device, min_face_size=args.min_face_size, max_side=args.max_side or None
        )
        table = predict_video(
            args.source,
            models,
            thresholds,
            args.out,
            image_size=image_size,
            crop_size=args.crop_size,
            margin=args.margin,
            every=args.every,
            fps=args.fps,
            image_fps=args.image_fps,
            select=args.select,
            detector=detector,
            batch_size=args.batch_size,
            device=device,
            save_crops=args.save_crops,
        )
    except (FileNotFoundError, ValueError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    found = int(table["face_found"].sum())
    print(f"a face in {found} of {len(table)} frame(s)")
    print(f"predictions: {table.attrs['csv']}\nplot: {table.attrs['plot']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
