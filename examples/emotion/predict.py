"""``run.py predict``'s options and its summary line; the prediction itself is :mod:`affect_data.prediction`.

``run.py predict`` decodes your own video (or folder of images), finds, follows and aligns every face, runs
the run's ensemble or an exported model file on the crops (:mod:`emotion.inference`: which model, its input
size and normalisation) and writes one row per face per frame with
:func:`affect_data.prediction.predict_video`: ``predictions.csv``, ``predictions.png``, ``predictions.json``
and, if asked, ``crops/`` and the video with the faces drawn. The table's columns, the detection thresholds
(and the measurement behind them) and the CNN-GRU's sliding windows are described in
:mod:`affect_data.prediction` and the affect_data README ("Faces from a video"). A model file of the CNN-GRU
(``run.py export --sequence-length L``, see :mod:`emotion.export`) holds
:class:`~affect_data.models.SlidingCNNRNN` s: :class:`affect_data.prediction.SlidingWindowModel` s on one CNN.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pandas as pd

from affect_data.prediction import MIN_FACE_SCORE, MIN_FACE_SIZE, REDETECT_EVERY, counts

__all__ = ["add_predict_options", "predict_options", "summary"]


def add_predict_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """Add the prediction options of ``run.py predict`` (all but ``--source`` and ``--out``) to ``parser``."""
    sampling = parser.add_mutually_exclusive_group()
    sampling.add_argument("--every", type=int, default=1, help="predict every n-th frame (default 1: all)")
    sampling.add_argument("--fps", type=float, help="predict at most this many frames per second")
    parser.add_argument("--image-fps", type=float, default=30.0, help="frame rate of a folder of images (30)")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=32,
        help="frames per detector call, crops (CNN-GRU: windows) per pass",
    )
    parser.add_argument("--device", help="auto, cpu, cuda, cuda:1, ... (default: the config's)")
    parser.add_argument("--save-crops", action="store_true", help="also write the aligned face crops")
    parser.add_argument(
        "--video-out", type=Path, help="also write the video with boxes, face ids and expressions drawn"
    )
    parser.add_argument("--crop-size", type=int, default=112, help="side of the aligned face crop (112)")
    parser.add_argument(
        "--margin", type=float, default=0.25, help="margin around the face, a fraction of its side (0.25)"
    )
    parser.add_argument(
        "--min-score",
        type=float,
        default=MIN_FACE_SCORE,
        help=f"least detection score of a face ({MIN_FACE_SCORE})",
    )
    parser.add_argument(
        "--min-face-size",
        type=float,
        default=MIN_FACE_SIZE,
        help=f"least shorter side of a face's box, pixels ({MIN_FACE_SIZE})",
    )
    parser.add_argument(
        "--max-side", type=int, default=640, help="detect on frames shrunk to this longer side (0: never)"
    )
    parser.add_argument(
        "--redetect-every",
        type=int,
        default=REDETECT_EVERY,
        help=f"video: detect faces fully on one frame in N, follow them between ({REDETECT_EVERY}; 1: all)",
    )
    parser.add_argument(
        "--track-gap", type=float, default=1.0, help="seconds a face may be out of view and keep its id (1)"
    )


def predict_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of :func:`affect_data.prediction.predict_video` from options parsed by
    :func:`add_predict_options`."""
    options = {
        "every": args.every,
        "fps": args.fps,
        "image_fps": args.image_fps,
        "batch_size": args.batch_size,
        "save_crops": args.save_crops,
        "video_out": args.video_out,
        "crop_size": args.crop_size,
        "margin": args.margin,
        "min_score": args.min_score,
        "min_face_size": args.min_face_size,
        "max_side": args.max_side or None,
        "track_gap_s": args.track_gap,
        "redetect_every": args.redetect_every,
    }
    if args.device is not None:
        options["device"] = args.device
    return options


def summary(table: pd.DataFrame) -> str:
    """What a prediction table holds, in a line or two (printed by ``run.py predict``).

    Examples
    --------
    >>> rows = pd.DataFrame({"frame": [0, 0, 1], "face_id": pd.array([0, 1, None], dtype="Int64")})
    >>> summary(rows)
    '2 face(s) tracked; a face in 1 of 2 frame(s)'
    """
    numbers = counts(table)
    line = (
        f"{numbers['faces']} face(s) tracked; a face in {numbers['frames_with_face']} of {numbers['frames']} "
        "frame(s)"
    )
    if numbers["unreadable"]:
        line += f"\n{numbers['unreadable']} unreadable image(s), flagged in the 'unreadable' column"
    return line
