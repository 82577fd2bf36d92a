"""Predict action units, expression, valence and arousal for every face of a video or a folder of images.

:func:`predict_table` decodes the source and finds every face of each frame (:mod:`affect_data.video`),
follows each face from frame to frame (:class:`affect_data.tracking.IoUTracker`), aligns and crops it as the
training crops are (:mod:`affect_data.faces`), runs an ensemble of multitask models on the crops
(``mtl_distill.Ensemble``, :func:`as_ensemble`) and returns one row per face per frame;
:func:`predict_video` also writes the table, its plot (:func:`plot_predictions`) and, if asked, the video
with each face drawn (:func:`affect_data.video.write_overlay_video`). A video and the default detector
(MTCNN) need the ``video`` extra, the plot matplotlib (``pip install "affect-data[video,plot]"``).

The table
---------
One row per face per frame - ``frame, time_s, face_id, face_found, box_left, box_top, box_right,
box_bottom, face_score``, the 0/1 decision of each AU (``AU1 ... AU25``, per-AU thresholds), its probability
(``AU1_prob ...``), the expression (``expr`` index in Aff-Wild2 order, ``expr_name``) and each class's
probability (``Neutral_prob ...``), and the expected ``valence`` and ``arousal`` in [-1, 1]
(:func:`prediction_columns`). ``face_id`` stays the same while a face stays in view (a face out of view for
longer than ``track_gap_s`` seconds comes back with a new id). A frame without any face keeps one row with
``face_found = False``, no ``face_id`` and empty (NaN) predictions: nothing is filled in. From a folder of
images, ``frame`` is the image's index in natural order, ``file`` its name, and ``unreadable`` is True on the
one row of an image that could not be read (its predictions empty; the other images are predicted).
:func:`predict_video` writes it as ``predictions.csv``, with ``predictions.png`` (valence and arousal over
time, the expression as a colour band, an AU raster, for the face longest in view), ``predictions.json``
(what predicted: the model's name and provenance; the options; the :func:`counts`) and optionally
``crops/<frame>_<face_id>.jpg``.

Which detections count as faces, and how often the full detector runs
---------------------------------------------------------------------
A face needs a detection score of at least ``min_score`` (default :data:`MIN_FACE_SCORE`) and a box whose
shorter side is at least ``min_face_size`` pixels of the frame (default :data:`MIN_FACE_SIZE`); what these
defaults keep and drop was measured, and the figures are in the package README (section "Which detections
count as faces" of ``packages/affect_data/README.md``). On a video the default detector runs MTCNN's image
pyramid, most of the time of prediction, on one frame in ``redetect_every`` (default :data:`REDETECT_EVERY`)
and only re-checks the faces it follows on the frames between (``MTCNNDetector(redetect_every=...)``): a face
that comes into view is found at most ``redetect_every - 1`` frames late. A folder of images always gets the
full detector.

The models
----------
Any ``torch.nn.Module`` s that map images ``[B, 3, S, S]`` to ``{"AU": [B, 8], "EXPR": [B, 7], "VA": [B,
40]}`` logits (:func:`abaw_tasks`: 40 = 2 x 20 bins over [-1, 1], valence first), or an
``mtl_distill.Ensemble`` of those tasks. The ensemble averages the members' probabilities (sigmoid, softmax,
expected value of the binned distribution) and decides the AUs with its per-AU thresholds.

Models that predict from time - an ensemble of :class:`SlidingWindowModel` s sharing one per-frame network,
such as a CNN-GRU - run that network once on each face crop; then each face track (``face_id``) goes through
the members in sliding windows of ``L`` of its face rows (:func:`sliding_windows`): a row's prediction comes
from the window ending at it, so it depends on that face's rows up to it and on nothing later, nor on any
other face. The first ``L - 1`` rows of a track, and every row of a track shorter than ``L``, are predicted
from the rows they have so far, padded at the end by repeating the row: every face row gets a prediction. A
track's rows are consecutive in its window even across the frames where the face was out of view (up to
``track_gap_s``) and across the frames ``every`` / ``fps`` skip, so subsampling makes a face move faster
than in consecutive training frames. The table's columns are the same.

A model that has only seen synthetic faces (its ``Ensemble.metadata["provenance"]["trained_on"]`` is
``"synthetic"``, e.g. one trained on :mod:`affect_data.synthetic`'s corpus) predicts nothing meaningful on
real faces: :func:`predict_table` then issues a :class:`SyntheticModelWarning`, and :func:`predict_video`
says so in the plot's title and in ``predictions.json``.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import nn

from affect_data.schema import AU_NAMES, EXPR_NAMES, VA_NAMES
from affect_data.tracking import IoUTracker
from affect_data.transforms import IMAGENET_MEAN, IMAGENET_STD, FrameTransform
from affect_data.video import BOX_COLUMNS, Face, FaceDetector, FrameReader, MTCNNDetector, detect_faces
from mtl_distill import BinnedRegressionTask, MultiClassTask, MultiLabelTask, Task
from mtl_distill.checkpoint import write_atomically
from mtl_distill.ensemble import Ensemble
from mtl_distill.logging_utils import progress as progress_bar

__all__ = [
    "EXPR_COLORS",
    "MIN_FACE_SCORE",
    "MIN_FACE_SIZE",
    "REDETECT_EVERY",
    "VA_BINS",
    "SlidingWindowModel",
    "SyntheticModelWarning",
    "abaw_tasks",
    "as_ensemble",
    "counts",
    "ensemble_predict",
    "is_sliding_window_model",
    "plot_predictions",
    "predict_table",
    "predict_video",
    "prediction_columns",
    "sequence_length",
    "sequence_predictions",
    "sliding_windows",
    "synthetic_warning",
]

#: Least detection score of a face (the measurement behind it: the package README, "Which detections count
#: as faces").
MIN_FACE_SCORE = 0.9
#: Least shorter side of a face's box, in pixels of the frame.
MIN_FACE_SIZE = 24
#: Frames of a video per full face detection (see the module docstring).
REDETECT_EVERY = 5
#: Valence and arousal: 20 bins each on [-1, 1] (Deng, Chen & Shi, FG 2020, Eq. 6-9).
VA_BINS = 20

#: One colour per expression (Aff-Wild2 order): Neutral grey, Anger red, Disgust olive, Fear purple,
#: Happiness yellow, Sadness blue, Surprise orange.
EXPR_COLORS = ("#9e9e9e", "#d62728", "#7f7f00", "#9467bd", "#f2c500", "#1f77b4", "#ff7f0e")

Models = nn.Module | Sequence[nn.Module] | Ensemble


class SyntheticModelWarning(UserWarning):
    """The predicting model has only seen synthetic faces: its predictions on real faces are meaningless."""


class SlidingWindowModel(Protocol):
    """A member of an ensemble that predicts from time (a CNN-GRU), e.g. ``examples/emotion``'s
    ``SlidingCNNRNN``.

    ``features(images)`` runs the per-frame network ``cnn`` on frames ``[B, 3, S, S]`` and returns their
    features ``[B, ...]``; calling the model on windows of those features ``[N, sequence_length, ...]``
    returns the logits of every frame of every window, one row per frame (``[N * sequence_length, C]`` per
    task, window-major). The members of one ensemble share ``cnn``, so its features are computed once for all.
    A member is taken for one when it has the three attributes (:func:`is_sliding_window_model`).
    """

    sequence_length: int
    cnn: nn.Module

    def features(self, images: torch.Tensor) -> torch.Tensor: ...

    def __call__(self, windows: torch.Tensor) -> dict[str, torch.Tensor]: ...


def is_sliding_window_model(model: nn.Module) -> bool:
    """Whether ``model`` has the attributes of a :class:`SlidingWindowModel`: ``sequence_length``, ``cnn``
    and ``features``.

    Asked with ``hasattr``, which sees a ``cnn`` registered as a submodule (``isinstance`` on a protocol
    looks attributes up statically from Python 3.12 on, and would miss it).

    Examples
    --------
    >>> is_sliding_window_model(nn.Linear(2, 2))
    False
    """
    return all(hasattr(model, name) for name in ("sequence_length", "cnn", "features"))


def abaw_tasks(va_bins: int = VA_BINS) -> list[Task]:
    """The three tasks of the prediction table, named as the frame table's task keys ``AU``, ``EXPR``, ``VA``.

    Examples
    --------
    >>> [(task.name, task.num_outputs) for task in abaw_tasks()]
    [('AU', 8), ('EXPR', 7), ('VA', 40)]
    """
    return [
        MultiLabelTask("AU", num_labels=len(AU_NAMES), label_names=AU_NAMES),
        MultiClassTask("EXPR", num_classes=len(EXPR_NAMES), class_names=EXPR_NAMES),
        BinnedRegressionTask("VA", num_dims=len(VA_NAMES), num_bins=va_bins, dim_names=VA_NAMES),
    ]


def synthetic_warning(provenance: Mapping[str, Any] | None) -> str | None:
    """The warning to show wherever a model trained on synthetic faces predicts (None otherwise).

    ``provenance`` is what an ensemble's ``metadata["provenance"]`` holds; ``"trained_on": "synthetic"``
    marks a model that has only seen synthetic faces.

    Examples
    --------
    >>> synthetic_warning({"trained_on": "real"}) is None
    True
    >>> synthetic_warning({"trained_on": "synthetic"}).split(";")[0]
    'this model has only seen synthetic faces'
    """
    if not provenance or provenance.get("trained_on") != "synthetic":
        return None
    return (
        "this model has only seen synthetic faces; its predictions on real faces are meaningless "
        "(train on real data sets for predictions on real faces)"
    )


def prediction_columns(folder: bool = False) -> list[str]:
    """The columns of the prediction table, in order; ``folder``: those of a folder of images.

    Examples
    --------
    >>> columns = prediction_columns()
    >>> columns[:5], columns[-2:]
    (['frame', 'time_s', 'face_id', 'face_found', 'box_left'], ['valence', 'arousal'])
    >>> prediction_columns(folder=True)[:4]
    ['frame', 'file', 'unreadable', 'time_s']
    """
    return [
        "frame",
        *(("file", "unreadable") if folder else ()),
        "time_s",
        "face_id",
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


class _CheckedOutputs(nn.Module):
    """A member of the ensemble whose outputs are checked, so that a model that does not fit is named."""

    def __init__(self, model: nn.Module, number: int, tasks: Sequence[Task]) -> None:
        super().__init__()
        self.model, self.number = model, number
        self.expected = {task.name: task.num_outputs for task in tasks}

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        outputs = self.model(images)
        if not isinstance(outputs, Mapping):
            raise ValueError(
                f"model {self.number} returned {type(outputs).__name__}; expected a dict of task -> logits"
            )
        for name, width in self.expected.items():
            logits = outputs.get(name)
            if logits is None or tuple(logits.shape) != (len(images), width):
                got = "nothing" if logits is None else f"shape {tuple(logits.shape)}"
                raise ValueError(
                    f"model {self.number}: expected {name!r} logits of shape {(len(images), width)}, "
                    f"got {got}"
                )
        return {name: outputs[name].float() for name in self.expected}


def as_ensemble(models: Models, thresholds: Sequence[float] | np.ndarray | None = None) -> Ensemble:
    """The ``mtl_distill.Ensemble`` of ``models`` (the tasks of :func:`abaw_tasks`) with per-AU
    ``thresholds``: 8 numbers in [0, 1], in ``AU_NAMES`` order (an AU is on when ``p >= t``), or None for 0.5
    each.

    An :class:`~mtl_distill.Ensemble` is returned as it is (its thresholds are its own; giving ``thresholds``
    too is an error) once its tasks are checked to be the ABAW ones (any number of VA bins). Otherwise each
    model's outputs are checked on every call, so a model that returns the wrong tasks or shapes is named by
    its position; :class:`SlidingWindowModel` s are not wrapped, as their outputs are per frame of a window.
    The ensemble is in eval mode.

    Examples
    --------
    >>> class Heads(nn.Module):
    ...     def forward(self, images):
    ...         n = len(images)
    ...         return {"AU": torch.zeros(n, 8), "EXPR": torch.zeros(n, 7), "VA": torch.zeros(n, 40)}
    >>> ensemble = as_ensemble([Heads()], [0.3] * 8)
    >>> ensemble.thresholds["AU"].tolist() == [0.3] * 8, ensemble.training
    (True, False)
    """
    if isinstance(models, Ensemble):
        if thresholds is not None:
            raise ValueError("an Ensemble brings its own AU thresholds; give thresholds=None with it")
        _check_tasks(models.tasks)
        return models
    models = [models] if isinstance(models, nn.Module) else list(models)
    if not models:
        raise ValueError("an ensemble needs at least one model")
    tasks = abaw_tasks()
    members = [
        model if is_sliding_window_model(model) else _CheckedOutputs(model, number, tasks)
        for number, model in enumerate(models)
    ]
    return Ensemble(members, tasks, None if thresholds is None else {"AU": thresholds}).eval()


def _check_tasks(tasks: Sequence[Task]) -> None:
    """An Ensemble's tasks must be those the table's columns hold (a VA task of any number of bins)."""

    def shape(task: Task) -> str:
        for kind, size in ((MultiLabelTask, "num_labels"), (MultiClassTask, "num_classes"),
                           (BinnedRegressionTask, "num_dims")):  # fmt: skip
            if isinstance(task, kind):
                return f"{kind.__name__}({getattr(task, size)})"
        return type(task).__name__

    got = {task.name: shape(task) for task in tasks}
    expected = {task.name: shape(task) for task in abaw_tasks()}
    if any(got.get(name) != value for name, value in expected.items()):
        raise ValueError(f"the ensemble's tasks must include {expected}; got {got}")


def sequence_length(ensemble: Ensemble) -> int | None:
    """The window length of an ensemble of :class:`SlidingWindowModel` s (a CNN-GRU), or None for an
    ensemble of per-frame models.

    Raises
    ------
    ValueError
        When the members mix both kinds, differ in window length or do not share one per-frame network.
    """
    members = list(ensemble.members)
    sliding = [member for member in members if is_sliding_window_model(member)]
    if not sliding:
        return None
    lengths = sorted({member.sequence_length for member in sliding})
    if len(sliding) != len(members) or len(lengths) > 1 or any(m.cnn is not sliding[0].cnn for m in sliding):
        raise ValueError(
            f"a CNN-GRU ensemble needs SlidingWindowModel members only ({len(sliding)} of {len(members)}), "
            f"of one window length (got {lengths}) on one shared CNN"
        )
    return lengths[0]


def sliding_windows(tracks: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """The window of every row for a CNN-GRU: rows ``[n, length]`` and the position of the row in it.

    ``tracks`` gives each row's track (face id, or video); a track's rows must come in time order. The
    window of a track's ``j``-th row holds its rows ``j - length + 1 ... j``, the row last. The first
    ``length - 1`` rows of a track (all rows of a shorter one) have fewer rows before them: their window
    holds the track's rows up to theirs, then repeats theirs to the end, as a clip is padded at the end of a
    video, and the row's position is where it first stands.

    Examples
    --------
    >>> rows, positions = sliding_windows(np.array([7, 7, 3, 7, 7]), length=3)
    >>> rows.tolist(), positions.tolist()
    ([[0, 0, 0], [0, 1, 1], [2, 2, 2], [0, 1, 3], [1, 3, 4]], [0, 1, 0, 2, 2])
    """
    if int(length) != length or length < 1:
        raise ValueError(f"length must be a positive integer, got {length!r}")
    tracks = np.asarray(tracks)
    # Rows grouped by track, in time order within each (a stable sort): one pass, however many tracks.
    order = np.argsort(tracks, kind="stable")
    sorted_tracks = tracks[order]
    first = np.flatnonzero(np.r_[True, sorted_tracks[1:] != sorted_tracks[:-1]])
    track_start = np.repeat(first, np.diff(np.r_[first, len(order)]))
    index = np.arange(len(order)) - track_start  # each row's place in its track
    start = np.maximum(index - length + 1, 0)
    window = track_start[:, None] + np.minimum(start[:, None] + np.arange(length), index[:, None])
    rows = np.empty((len(tracks), length), dtype=np.int64)
    positions = np.empty(len(tracks), dtype=np.int64)
    rows[order] = order[window]
    positions[order] = index - start
    return rows, positions


def sequence_predictions(
    ensemble: Ensemble,
    features: torch.Tensor,
    tracks: np.ndarray,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
) -> dict[str, np.ndarray]:
    """A CNN-GRU ensemble's predictions of every row from its window (:func:`sliding_windows`).

    ``features`` ``[n, ...]`` are the rows' features (``SlidingWindowModel.features``, any float type),
    ``tracks`` their tracks; the ensemble averages its members' predictions of each frame
    (``mtl_distill.Ensemble.predict``, as :func:`ensemble_predict`). Returns ``"AU"`` ``[n, 8]``, ``"EXPR"``
    ``[n, 7]`` probabilities and ``"VA"`` ``[n, 2]``, as :func:`ensemble_predict`.
    """
    if len(features) != len(tracks):
        raise ValueError(f"{len(features)} rows of features for {len(tracks)} tracks: one each")
    rows, positions = sliding_windows(tracks, sequence_length(ensemble))
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        windows = features[torch.from_numpy(batch)].float().to(device)
        for name, values in ensemble_predict(ensemble, windows).items():
            per_window = values.reshape(len(batch), -1, *values.shape[1:])  # one row per frame of a window
            parts.setdefault(name, []).append(
                per_window[np.arange(len(batch)), positions[start : start + batch_size]]
            )
    return {name: np.concatenate(values) for name, values in parts.items()}


def ensemble_predict(models: Models, images: torch.Tensor) -> dict[str, np.ndarray]:
    """The ensemble's averaged predictions for a batch of images (``mtl_distill.Ensemble.predict``).

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
    ensemble = as_ensemble(models)
    with torch.inference_mode():
        predicted = ensemble.predict(images)
    return {name: values.double().cpu().numpy() for name, values in predicted.items()}


@dataclass(frozen=True)
class _Row:
    """One row of the table before predictions: a face of a frame, or a frame without one."""

    frame: int
    time: float
    file: str | None
    unreadable: bool
    face_id: int | None
    face: Face | None


def predict_table(
    source: str | os.PathLike,
    models: Models,
    thresholds: Sequence[float] | np.ndarray | None = None,
    *,
    image_size: int = 112,
    crop_size: int = 112,
    margin: float = 0.25,
    every: int = 1,
    fps: float | None = None,
    image_fps: float = 30.0,
    min_score: float = MIN_FACE_SCORE,
    min_face_size: float = MIN_FACE_SIZE,
    track_gap_s: float = 1.0,
    max_side: int | None = 640,
    redetect_every: int = REDETECT_EVERY,
    detector: FaceDetector | None = None,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    normalize: tuple[Sequence[float], Sequence[float]] | None = (IMAGENET_MEAN, IMAGENET_STD),
    progress: bool = True,
    crops_dir: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Predictions for every face of every frame of a video or folder of images; writes no file but the
    crops asked for (``crops_dir``).

    Each face crop goes through the evaluation view of the training pipeline: the ``crop_size`` aligned crop
    (as the training crops on disk) is resized to ``round(1.2 * image_size)`` and center-cropped to
    ``image_size`` (:class:`affect_data.transforms.FrameTransform`), then normalised with ``normalize``.

    Parameters
    ----------
    source : path
        A video file (anything FFmpeg decodes) or a folder of images (natural order).
    models : nn.Module, sequence of nn.Module, or mtl_distill.Ensemble
        The ensemble (one model is an ensemble of one), see :func:`as_ensemble`; each model maps
        ``[B, 3, image_size, image_size]`` to ``{"AU": [B, 8], "EXPR": [B, 7], "VA": [B, 40]}`` logits, or
        all are :class:`SlidingWindowModel` s on one CNN (a CNN-GRU, see the module docstring). They are
        moved to ``device`` and run in eval mode; each model's train/eval mode is restored afterwards.
    thresholds : 8 numbers or None
        Per-AU decision thresholds, see :func:`as_ensemble` (None: 0.5, or the Ensemble's own).
    image_size : int
        The input size the models were trained at.
    crop_size, margin : int, float
        The aligned face crop, see :func:`affect_data.faces.face_transform`.
    every, fps, image_fps : int, float, float
        Frame subsampling and the frame rate of an image folder, see :class:`affect_data.video.FrameReader`.
    min_score, min_face_size : float
        Detections scored lower, or whose box's shorter side is smaller (pixels), are not faces.
    track_gap_s : float
        Seconds a face may go unseen and keep its ``face_id`` (:class:`affect_data.tracking.IoUTracker`).
    max_side : int or None
        The default detector (:class:`affect_data.video.MTCNNDetector`) shrinks larger frames to this longer
        side.
    redetect_every : int
        On a video, the default detector's full detection runs on one frame in this many and follows the
        faces in between (see the module docstring); 1: full detection on every frame.
    detector : FaceDetector, optional
        Default: :class:`affect_data.video.MTCNNDetector` on ``device``. A detector with a ``reset()`` method
        (one that follows faces from frame to frame) is reset first.
    batch_size : int
        Frames per detector call, crops per model forward pass and windows per CNN-GRU pass.
    device : str or torch.device
        ``"cpu"``, ``"cuda"``, ...
    normalize : (mean, std) or None
        The input normalisation used in training (default: ImageNet statistics).
    progress : bool
        Show a progress bar (tqdm, when installed: ``mtl-distill[progress]``).
    crops_dir : path, optional
        An existing folder to save the aligned crops the models saw in (``<frame>_<face_id>.jpg``).

    Returns
    -------
    pandas.DataFrame
        Columns :func:`prediction_columns` (``folder=True`` for a folder of images); ``attrs["source"]``,
        ``attrs["unreadable"]`` (the number of unreadable images), ``attrs["faces"]`` (face ids given),
        ``attrs["provenance"]`` (the Ensemble's ``metadata["provenance"]``, None when it has none) and
        ``attrs["warning"]`` (:func:`synthetic_warning`, or None).

    Warns
    -----
    SyntheticModelWarning
        When the ensemble's provenance says it was trained on synthetic faces only.

    Raises
    ------
    FileNotFoundError
        If ``source`` does not exist.
    ValueError
        If the source cannot be decoded or holds no frames, an option or a threshold is out of range, or a
        model returns outputs of the wrong shape.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> for i in range(3):
    ...     Image.new("RGB", (96, 96), (90, 120, 150)).save(folder / f"{i}.png")
    >>> class FaceInFirstFrame:  # any detector with this method plugs in
    ...     def detect(self, images):
    ...         points = np.array([[35, 40], [60, 40], [48, 52], [38, 66], [58, 66]], float)
    ...         face = Face(np.array([25.0, 25, 70, 80]), 0.99, points)
    ...         return [[face] if i == 0 else [] for i in range(len(images))]
    >>> class Heads(nn.Module):  # stands in for a trained multitask model
    ...     def forward(self, images):
    ...         n = len(images)
    ...         return {"AU": torch.zeros(n, 8), "EXPR": torch.zeros(n, 7), "VA": torch.zeros(n, 40)}
    >>> table = predict_table(folder, Heads(), image_size=32, detector=FaceInFirstFrame(), progress=False)
    >>> table[["frame", "file", "face_id", "face_found"]].values.tolist()
    [[0, '0.png', 0, True], [1, '1.png', <NA>, False], [2, '2.png', <NA>, False]]
    """
    ensemble = as_ensemble(models, thresholds)
    if min(batch_size, image_size, crop_size, redetect_every) < 1:
        raise ValueError(
            "batch_size, image_size, crop_size and redetect_every must be >= 1, got "
            f"{batch_size}, {image_size}, {crop_size}, {redetect_every}"
        )
    device = torch.device(device)
    crops_dir = Path(crops_dir) if crops_dir is not None else None
    reader = FrameReader(source, every=every, fps=fps, image_fps=image_fps, unreadable="flag")
    tracker = IoUTracker(max_gap_s=track_gap_s)
    if detector is None:
        # The pyramid searches down to the least size kept, no further: searching 20 px faces to keep 24 px
        # ones cost time and found fewer faces (benchmarks/README.md).
        detector = MTCNNDetector(
            device=device,
            min_face_size=max(1, round(min_face_size)),
            max_side=max_side,
            redetect_every=1 if reader.images else redetect_every,  # a folder's images are not a sequence
        )
    elif hasattr(detector, "reset"):
        detector.reset()
    transform = FrameTransform(size=image_size, train=False, normalize=normalize)
    length = sequence_length(ensemble)
    modes = [module.training for module in ensemble.modules()]
    ensemble.to(device).eval()
    rows: list[_Row] = []
    predictions: dict[str, list[np.ndarray]] = {"AU": [], "EXPR": [], "VA": []}
    features: list[torch.Tensor] = []  # a CNN-GRU's: each face's CNN features, for the windows at the end
    pending: list[np.ndarray] = []

    def flush() -> None:
        if pending:
            # One transform call for the batch: the evaluation view is the same center crop for every face.
            images = transform(np.stack([_model_view(crop, transform.input_size) for crop in pending]))
            if length is None:
                for name, values in ensemble_predict(ensemble, images.to(device)).items():
                    predictions[name].append(values)
            else:  # the shared CNN once per face; its members' GRUs need the face's track first
                with torch.inference_mode():
                    features.append(ensemble.members[0].features(images.to(device)).cpu())
            pending.clear()

    frames = detect_faces(reader, detector, crop_size, margin, min_score, min_face_size, batch_size)
    frames = progress_bar(
        frames, total=len(reader) or None, desc=f"predict {reader.source.name}", enabled=progress
    )
    try:
        for detected in frames:
            unreadable = detected.error is not None
            ids = [] if unreadable else tracker.update(detected.time, _boxes(detected.faces))
            if not ids:
                rows.append(_Row(detected.index, detected.time, detected.file, unreadable, None, None))
            for face_id, face, crop in sorted(zip(ids, detected.faces, detected.crops, strict=True),
                                              key=lambda item: item[0]):  # fmt: skip
                rows.append(_Row(detected.index, detected.time, detected.file, False, face_id, face))
                pending.append(crop)
                if crops_dir is not None:
                    _save_jpeg(crop, crops_dir / f"{detected.index:06d}_{face_id}.jpg")
                if len(pending) == batch_size:
                    flush()
        flush()
        if features:
            tracks = np.array([row.face_id for row in rows if row.face is not None])
            windowed = sequence_predictions(ensemble, torch.cat(features), tracks, batch_size, device)
            for name, values in windowed.items():
                predictions[name].append(values)
    finally:
        for module, mode in zip(ensemble.modules(), modes, strict=True):
            module.training = mode
    if not rows:
        raise ValueError(f"{str(reader.source)!r} yielded no frames")
    found = {name: np.concatenate(values) if values else None for name, values in predictions.items()}
    table = _prediction_table(rows, found, ensemble, folder=bool(reader.images))
    table.attrs["source"] = str(reader.source)
    table.attrs["unreadable"] = sum(row.unreadable for row in rows)
    table.attrs["faces"] = int(table["face_id"].nunique())
    table.attrs["provenance"] = ensemble.metadata.get("provenance")
    table.attrs["warning"] = synthetic_warning(table.attrs["provenance"])
    if table.attrs["warning"] is not None:
        warnings.warn(table.attrs["warning"], SyntheticModelWarning, stacklevel=2)
    return table


def predict_video(
    source: str | os.PathLike,
    models: Models,
    thresholds: Sequence[float] | np.ndarray | None,
    out_dir: str | os.PathLike,
    *,
    save_crops: bool = False,
    plot: bool = True,
    model_name: str | None = None,
    video_out: str | os.PathLike | None = None,
    **options: Any,
) -> pd.DataFrame:
    """:func:`predict_table`, written to ``out_dir``: ``predictions.csv``, ``.png``, ``.json``, ``crops/``.

    ``options`` are those of :func:`predict_table`. ``save_crops`` writes the aligned crops the models saw
    (``crops/<frame>_<face_id>.jpg``); ``plot`` the plot of the face longest in view
    (:func:`plot_predictions`, needs matplotlib), whose title says when the model has only seen synthetic
    faces. ``predictions.json`` records ``model_name`` (e.g. the model file), the model's provenance, the
    synthetic-model ``warning`` (or null), the options and the :func:`counts`. ``video_out``: also write the
    source video with each face's box, id and top expression drawn
    (:func:`affect_data.video.write_overlay_video`). The table's ``attrs`` add the paths written (``"csv"``,
    ``"json"``, ``"plot"``, ``"video"``).

    Raises
    ------
    ValueError
        As :func:`predict_table`; or when ``video_out`` is given for a folder of images (before predicting).
    """
    if video_out is not None and Path(source).is_dir():  # before the predicting, not after it
        raise ValueError(f"video_out needs a video source; {str(source)!r} is a folder of images")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    crops_dir = out_dir / "crops" if save_crops else None
    if crops_dir is not None:
        crops_dir.mkdir(exist_ok=True)
    table = predict_table(source, models, thresholds, crops_dir=crops_dir, **options)
    csv_path = out_dir / "predictions.csv"
    write_atomically(csv_path, table.to_csv(index=False, float_format="%.6g"))
    table.attrs["csv"] = str(csv_path)
    if plot:
        plot_path = out_dir / "predictions.png"
        title = Path(source).name
        if table.attrs["warning"] is not None:
            title += " - model trained on synthetic faces only: meaningless on real faces"
        plot_predictions(table, plot_path, title=title)
        table.attrs["plot"] = str(plot_path)
    if video_out is not None:
        from affect_data.video import write_overlay_video

        table.attrs["video"] = str(write_overlay_video(source, table, video_out))
    json_path = out_dir / "predictions.json"
    record = {
        "source": table.attrs["source"],
        "model": model_name,
        "provenance": table.attrs["provenance"],
        "warning": table.attrs["warning"],
        "options": {"save_crops": save_crops, **{key: _plain(value) for key, value in options.items()}},
        "counts": counts(table),
        "files": {key: table.attrs[key] for key in ("csv", "plot", "video") if key in table.attrs},
    }
    write_atomically(json_path, json.dumps(record, indent=2) + "\n")
    table.attrs["json"] = str(json_path)
    return table


def counts(table: pd.DataFrame) -> dict[str, int]:
    """Frames, frames with a face, face rows, distinct faces and unreadable images of a prediction table.

    Examples
    --------
    >>> rows = pd.DataFrame({"frame": [0, 0, 1], "face_id": pd.array([0, 1, None], dtype="Int64")})
    >>> counts(rows)
    {'frames': 2, 'frames_with_face': 1, 'face_rows': 2, 'faces': 2, 'unreadable': 0}
    """
    has_face = table["face_id"].notna()
    return {
        "frames": int(table["frame"].nunique()),
        "frames_with_face": int(table.loc[has_face, "frame"].nunique()),
        "face_rows": int(has_face.sum()),
        "faces": int(table["face_id"].nunique()),
        "unreadable": int(table["unreadable"].sum()) if "unreadable" in table else 0,
    }


def _plain(value: Any) -> Any:
    """An option as JSON can hold it: numbers, strings and lists as they are, anything else by its name."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, torch.device | os.PathLike):
        return str(value)
    return type(value).__name__  # a detector object: its class says which


def _boxes(faces: Sequence[Face]) -> np.ndarray:
    return np.array([face.box for face in faces], dtype=np.float64).reshape(-1, 4)


def _model_view(crop: np.ndarray, side: int) -> np.ndarray:
    """The crop resized as affect_data's ``load_image`` resizes training crops (bilinear)."""
    if crop.shape[:2] == (side, side):
        return crop
    return np.asarray(Image.fromarray(crop).resize((side, side), Image.Resampling.BILINEAR))


def _save_jpeg(pixels: np.ndarray, path: Path) -> None:
    # Written in place, not atomically: one file per face of every frame, where a temporary file and an
    # fsync each would cost more than the crop; a re-run rewrites them all.
    Image.fromarray(pixels).save(path, format="JPEG", quality=95, subsampling=0)


def _prediction_table(
    rows: Sequence[_Row], found: Mapping[str, np.ndarray | None], ensemble: Ensemble, folder: bool
) -> pd.DataFrame:
    """The rows with their predictions; rows without a face keep NaN / <NA> predictions."""
    n = len(rows)
    has_face = np.array([row.face is not None for row in rows])
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
    boxes = np.array([row.face.box if row.face is not None else np.full(4, np.nan) for row in rows])
    columns: dict[str, Any] = {
        "frame": np.array([row.frame for row in rows], dtype=np.int64),
        "time_s": np.array([row.time for row in rows], dtype=np.float64),
        "face_id": pd.array([row.face_id for row in rows], dtype="Int64"),
        "face_found": has_face,
        **{name: boxes[:, i] for i, name in enumerate(BOX_COLUMNS)},
        "face_score": np.array([row.face.score if row.face is not None else np.nan for row in rows]),
    }
    if folder:
        columns["file"] = pd.array([row.file for row in rows], dtype="string")
        columns["unreadable"] = np.array([row.unreadable for row in rows])
    # The ensemble's own decisions (tuned AU thresholds); NaN rows are masked just below.
    decided = ensemble.decide(
        {"AU": torch.from_numpy(au_prob), "EXPR": torch.from_numpy(np.nan_to_num(expr_prob)),
         "VA": torch.from_numpy(va)}
    )  # fmt: skip
    decisions = pd.DataFrame(decided["AU"].numpy(), columns=list(AU_NAMES)).astype("Int8")
    decisions.loc[~has_face] = pd.NA
    columns.update({name: decisions[name] for name in AU_NAMES})
    columns.update({f"{name}_prob": au_prob[:, i] for i, name in enumerate(AU_NAMES)})
    expr = decided["EXPR"].numpy()
    columns["expr"] = pd.array(expr, dtype="Int64")
    columns["expr_name"] = pd.array(np.asarray(EXPR_NAMES, dtype=object)[expr], dtype="string")
    for name in ("expr", "expr_name"):
        columns[name][~has_face] = pd.NA
    columns.update({f"{name}_prob": expr_prob[:, i] for i, name in enumerate(EXPR_NAMES)})
    columns.update({name: va[:, i] for i, name in enumerate(VA_NAMES)})
    return pd.DataFrame(columns)[prediction_columns(folder)]


def plot_predictions(
    table: pd.DataFrame, path: str | os.PathLike, title: str | None = None, face_id: int | None = None
) -> Path:
    """Plot one face of a prediction table over time: valence/arousal, expression band, AU raster; save a PNG.

    ``face_id`` picks the face (default: the one in the most frames, the lowest id on a tie); frames where it
    is not in view are left blank (hatched grey in the bands), never interpolated over. A table without a
    ``face_id`` column is taken as one face. Needs matplotlib (``pip install "affect-data[plot]"``).

    Raises
    ------
    ValueError
        When ``face_id`` is not a face of the table.
    ImportError
        Naming the extra, when matplotlib is not installed.

    Examples
    --------
    >>> import tempfile
    >>> rows = {"frame": [0, 1], "time_s": [0.0, 0.04], "face_found": [True, False], "expr": [4, None],
    ...         "valence": [0.5, None], "arousal": [0.1, None], **{au: [1, None] for au in AU_NAMES}}
    >>> plot_predictions(pd.DataFrame(rows), tempfile.mkdtemp() + "/p.png").suffix
    '.png'
    """
    try:
        from matplotlib.colors import ListedColormap
        from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend
        from matplotlib.patches import Patch
    except ImportError as error:
        raise ImportError(
            f'plotting predictions needs matplotlib: pip install "affect-data[plot]"  ({error})'
        ) from error

    subject = ""
    if "face_id" in table:
        table, face_id = _one_face(table, face_id)
        subject = "no face" if face_id is None else f"face {face_id}"
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
    figure.suptitle(
        f"{title + ': ' if title else ''}{subject + ' ' if subject else ''}"
        f"in view in {found} of {len(no_face)} frames"
    )
    path = Path(path)
    write_atomically(path, lambda file: figure.savefig(file, dpi=110, format="png"))
    return path


def _one_face(table: pd.DataFrame, face_id: int | None) -> tuple[pd.DataFrame, int | None]:
    """One row per frame: face ``face_id``'s (default the most seen), or an empty one where it is absent."""
    ids = table["face_id"].dropna()
    if face_id is None and len(ids):
        seen = ids.value_counts()
        face_id = int(min(seen.index[seen == seen.max()]))
    elif face_id is not None and face_id not in set(ids.tolist()):
        raise ValueError(f"no face {face_id} in the table; its faces are {sorted(set(ids.tolist()))}")
    frames = table.drop_duplicates("frame")[["frame", "time_s"]]
    face = table[table["face_id"] == face_id].drop(columns="time_s")
    one = frames.merge(face, on="frame", how="left")
    one["face_found"] = one["face_id"].notna()
    return one, face_id


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
