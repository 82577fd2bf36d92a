"""``run.py predict --video-out FILE``: the input video with each face's box, id and top expression drawn.

:func:`write_overlay_video` decodes the source again (upright, as :class:`affect_data.video.FrameReader` turns
it), draws the rows of a prediction table onto their frames and encodes the result with PyAV (MPEG-4 Part 2,
which every FFmpeg build has) at the source's frame rate. Every frame of the source is written; a frame that
was not predicted (``--every``, ``--fps``) shows the boxes of the last predicted frame before it, so that the
boxes do not flicker.
"""

from __future__ import annotations

import os
import secrets
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from affect_data.video import BOX_COLUMNS, FrameReader

__all__ = ["write_overlay_video"]

#: Box colours, one per face id in turn (face id modulo their number).
FACE_COLORS = ((255, 64, 64), (64, 160, 255), (64, 220, 96), (255, 200, 0), (200, 96, 255), (0, 220, 220))


def write_overlay_video(
    source: str | os.PathLike, table: pd.DataFrame, path: str | os.PathLike, bit_rate: int = 4_000_000
) -> Path:
    """Write ``source`` with the faces of ``table`` drawn on it to the video file ``path`` (atomically).

    Parameters
    ----------
    source : path
        The video the table was predicted from.
    table : DataFrame
        A prediction table of ``source`` (:func:`emotion.predict.predict_table`): its ``frame``, ``face_id``,
        box, ``expr_name`` and expression probability columns are drawn.
    path : path
        The video to write; its suffix picks the container (``.mp4``, ``.mkv``, ``.avi``, ...).
    bit_rate : int
        Target bits per second of the encoder.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ValueError
        If ``source`` is a folder of images, or cannot be decoded or encoded.
    """
    import av

    reader = FrameReader(source)
    if reader.images:
        raise ValueError(f"--video-out needs a video source; {str(reader.source)!r} is a folder of images")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    faces = _faces_by_frame(table)
    rate = Fraction(reader.frame_rate or 30.0).limit_denominator(1001)
    # A new name with mode 0o666 (the umask applies); the suffix stays, as it tells FFmpeg the container.
    temporary = path.parent / f".{path.stem}.{secrets.token_hex(8)}{path.suffix}"
    try:
        with av.open(str(temporary), "w") as container:
            stream = None
            shown: list[tuple[np.ndarray, int, str]] = []
            for frame in reader:
                image = frame.image
                if stream is None:
                    stream = container.add_stream("mpeg4", rate=rate)
                    # yuv420p halves the chroma resolution: both sides must be even.
                    stream.width, stream.height = image.shape[1] // 2 * 2, image.shape[0] // 2 * 2
                    stream.pix_fmt = "yuv420p"
                    stream.bit_rate = bit_rate
                shown = faces.get(frame.index, shown)
                pixels = _draw(image[: stream.height, : stream.width], shown)
                container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
            if stream is None:
                raise ValueError(f"{str(reader.source)!r} yielded no frames")
            container.mux(stream.encode())
        os.replace(temporary, path)
    except av.error.FFmpegError as error:
        temporary.unlink(missing_ok=True)
        raise ValueError(f"cannot write the video {str(path)!r}: {error}") from error
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def _faces_by_frame(table: pd.DataFrame) -> dict[int, list[tuple[np.ndarray, int, str]]]:
    """Frame index -> (box, face id, label) of each face; a predicted frame without a face maps to []."""
    faces: dict[int, list[tuple[np.ndarray, int, str]]] = {}
    for frame, rows in table.groupby("frame", sort=True):
        drawn = []
        for _, row in rows[rows["face_id"].notna()].iterrows():
            label = str(int(row["face_id"]))
            expression = row["expr_name"]
            if pd.notna(expression):
                label += f" {expression} {row[expression + '_prob']:.0%}"
            drawn.append((row[list(BOX_COLUMNS)].to_numpy(dtype=np.float64), int(row["face_id"]), label))
        faces[int(frame)] = drawn
    return faces


def _draw(image: np.ndarray, faces: list[tuple[np.ndarray, int, str]]) -> np.ndarray:
    if not faces:
        return np.ascontiguousarray(image)
    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()  # bundled with Pillow: nothing to download
    width = max(2, round(min(image.shape[:2]) / 200))
    for box, face_id, label in faces:
        color = FACE_COLORS[face_id % len(FACE_COLORS)]
        draw.rectangle([float(v) for v in box], outline=color, width=width)
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        x, y = float(box[0]), max(0.0, float(box[1]) - (bottom - top) - 4)
        draw.rectangle([x, y, x + right - left + 4, y + bottom - top + 4], fill=color)
        draw.text((x + 2 - left, y + 2 - top), label, fill=(0, 0, 0), font=font)
    return np.asarray(canvas)
