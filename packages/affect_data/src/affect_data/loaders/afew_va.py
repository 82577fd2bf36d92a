"""AFEW-VA: per-clip JSON with valence, arousal (integers in [-10, 10]) and 68 landmarks per frame.

Layout::

    root/001/001.json     {"frames": {"00000": {"valence": 3, "arousal": -2, "landmarks": [[x, y], ... x 68]},
    root/001/00000.png                ...}, "video_id": "001", "actor": ...}

Faces are aligned on their landmarks (eyes level, see :func:`affect_data.faces.align_face`) into a crop
cache once and reused.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from affect_data.faces import IMAGE_ERRORS, CropCache, align_face, alignment_transform, default_cache_dir
from affect_data.loaders._io import AnnotationError
from affect_data.loaders.report import CORRUPT_IMAGE, MISSING_IMAGE, LoadReport, finish_table

DATASET = "afew_va"

#: AFEW-VA values are integers in [-VA_SCALE, VA_SCALE]; the frame table holds them divided by it.
VA_SCALE = 10.0


def load_afew_va(
    root: str | os.PathLike,
    *,
    cache_dir: str | os.PathLike | None = None,
    size: int = 112,
    margin: float = 0.25,
) -> pd.DataFrame:
    """Load AFEW-VA into a frame table, aligning every face once into ``cache_dir`` and reusing it afterwards.

    Clip folders are the numbered folders of ``root`` (``001`` .. ``600``); ``video`` is the clip name,
    ``frame`` the integer of the frame key (``"00012"`` -> 12), ``subject`` the JSON's ``actor`` when given
    (else the clip), ``split`` "train", ``valence`` / ``arousal`` the file's values divided by 10, ``path``
    the aligned crop. Extra column: ``source`` (the full frame). Frames whose image is missing or cannot be
    decoded are skipped and counted in ``table.attrs["report"]``.

    Parameters
    ----------
    root : path
        The AFEW-VA folder holding the clip folders.
    cache_dir : path, optional
        Folder of the aligned crops; default ``<root>_crops`` next to ``root``.
    size : int
        Side of the square crops.
    margin : float
        Space around the landmarks' box, as a fraction of its side
        (see :func:`~affect_data.faces.align_face`).

    Returns
    -------
    pandas.DataFrame
        The frame table, ``dataset == "afew_va"``, with ``valence`` and ``arousal`` labels only.

    Raises
    ------
    AnnotationError
        A JSON file that does not parse, lacks ``frames`` or a frame's ``valence`` / ``arousal`` /
        ``landmarks``, or holds values outside [-10, 10] or landmarks that are not 68 (x, y) pairs (file,
        and line or frame key, named).
    FileNotFoundError
        A missing root, or a clip folder without its ``<clip>.json``.

    Examples
    --------
    >>> from affect_data import load_afew_va
    >>> table = load_afew_va("corpus/afew_va", cache_dir="corpus/afew_va_crops", size=112)  # doctest: +SKIP
    """
    if size < 1 or margin < 0:
        raise ValueError(f"size must be >= 1 and margin >= 0, got size={size}, margin={margin}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"AFEW-VA folder {root} does not exist")
    cache = CropCache(Path(cache_dir) if cache_dir is not None else default_cache_dir(root))
    clips = sorted(entry.name for entry in root.iterdir() if entry.is_dir() and entry.name.isdigit())
    if not clips:
        raise FileNotFoundError(f"AFEW-VA folder {root} holds no numbered clip folder (001, 002, ...)")

    report = LoadReport(DATASET)
    rows = []
    for clip in clips:
        annotation = root / clip / f"{clip}.json"
        if not annotation.is_file():
            raise FileNotFoundError(f"AFEW-VA clip folder {root / clip} has no {annotation.name}")
        subject, frames = _read_clip(annotation, clip)
        report.read(len(frames))
        for key, valence, arousal, landmarks in frames:
            source = (root / clip / f"{key}.png").absolute()
            name = cache.name(f"{clip}/{key}", size, margin, landmarks.tobytes())
            if not cache.has(name) and not _align_into(cache, name, source, landmarks, size, margin, report):
                continue
            rows.append((clip, int(key), str(cache.path(name)), subject, valence, arousal, str(source)))

    table = pd.DataFrame(rows, columns=["video", "frame", "path", "subject", "valence", "arousal", "source"])
    return finish_table(table, report, split="train")


def _read_clip(path: Path, clip: str) -> tuple[str, list[tuple[str, float, float, np.ndarray]]]:
    """The subject and the (key, valence, arousal, landmarks) of every frame of one clip's JSON."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise AnnotationError(path, f"not valid JSON: {err.msg}", line=err.lineno) from None
    frames = document.get("frames") if isinstance(document, dict) else None
    if not isinstance(frames, dict):
        raise AnnotationError(path, "expected an object with a 'frames' mapping")
    subject = str(document.get("actor") or clip)
    out = []
    for key in sorted(frames):
        if not key.isdigit():
            raise AnnotationError(path, f"frame key {key!r} is not a frame number like '00000'")
        frame = frames[key]
        values = []
        for name in ("valence", "arousal"):
            value = frame.get(name) if isinstance(frame, dict) else None
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise AnnotationError(path, f"frame {key}: {name} is {value!r}, expected a number")
            if abs(value) > VA_SCALE:
                raise AnnotationError(path, f"frame {key}: {name} {value} is outside [-10, 10]")
            values.append(value / VA_SCALE)
        try:
            landmarks = np.asarray(frame.get("landmarks"), dtype=np.float64)
        except (TypeError, ValueError):
            landmarks = np.empty(0)
        if landmarks.shape != (68, 2) or not np.isfinite(landmarks).all():
            raise AnnotationError(
                path, f"frame {key}: landmarks must be 68 [x, y] pairs, got shape {landmarks.shape}"
            )
        try:
            alignment_transform(landmarks)
        except ValueError as err:  # degenerate landmarks: no face to align
            raise AnnotationError(path, f"frame {key}: {err}") from None
        out.append((key, values[0], values[1], landmarks))
    return subject, out


def _align_into(
    cache: CropCache,
    name: str,
    source: Path,
    landmarks: np.ndarray,
    size: int,
    margin: float,
    report: LoadReport,
) -> bool:
    """Align one frame into the cache; count and return False when its image is missing or corrupt."""
    try:
        with Image.open(source) as image:
            crop = align_face(image, landmarks, size=size, margin=margin)
    except FileNotFoundError:
        report.skip(MISSING_IMAGE, example=str(source))
        return False
    except IMAGE_ERRORS as err:
        report.skip(CORRUPT_IMAGE, example=f"{source}: {err}")
        return False
    cache.save(crop, name)
    return True
