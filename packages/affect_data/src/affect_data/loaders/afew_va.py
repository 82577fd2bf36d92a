"""AFEW-VA: per-clip JSON with valence, arousal (integers in [-10, 10]) and 68 landmarks per frame.

Layout::

    root/001/001.json     {"frames": {"00000": {"valence": 3, "arousal": -2, "landmarks": [[x, y], ... x 68]},
    root/001/00000.png                ...}, "video_id": "001", "actor": ...}

Faces are aligned on their landmarks (eyes level, see :func:`affect_data.faces.align_face`) into a crop
cache once and reused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from affect_data.faces import (
    IMAGE_ERRORS,
    MIN_VISIBLE,
    CropCache,
    align_face,
    alignment_transform,
    alignment_visible_fraction,
    default_cache_dir,
)
from affect_data.loaders._io import (
    AnnotationError,
    excerpt,
    inside,
    read_annotation,
    resolved_root,
    warn_empty,
)
from affect_data.loaders.report import (
    BAD_LANDMARKS,
    CORRUPT_IMAGE,
    MISSING_IMAGE,
    OFF_IMAGE,
    OUTSIDE_ROOT,
    LoadReport,
    finish_table,
)

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
    the aligned crop. Extra column: ``source`` (the full frame). Skipped and counted in
    ``table.attrs["report"]``: frames whose image is missing or cannot be decoded, frames whose landmarks give
    no face (non-finite values, eyes at one point, no area: ``bad_landmarks``), frames whose aligned crop
    has less than :data:`~affect_data.faces.MIN_VISIBLE` of its area on the image (``off_image``), and the
    frames of a clip folder that resolves (symlinks followed) outside ``root`` (``outside_root``).

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
        A JSON file that does not parse (or is not UTF-8), lacks ``frames`` or a frame's ``valence`` /
        ``arousal`` / ``landmarks``, or holds values outside [-10, 10] or landmarks that are not 68 (x, y)
        pairs of numbers (file, and line or frame key, named).
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
    root_resolved = resolved_root(root)
    rows = []
    for clip in clips:
        annotation = root / clip / f"{clip}.json"
        if not annotation.is_file():
            raise FileNotFoundError(f"AFEW-VA clip folder {root / clip} has no {annotation.name}")
        subject, frames = _read_clip(annotation, clip)
        report.read(len(frames))
        if not inside(root / clip, root_resolved):  # a symlinked clip folder that leads elsewhere
            report.skip(OUTSIDE_ROOT, len(frames), example=f"clip folder {root / clip}")
            continue
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
        document = json.loads(read_annotation(path))
    except json.JSONDecodeError as err:
        raise AnnotationError(path, f"not valid JSON: {err.msg}", line=err.lineno) from None
    except RecursionError:  # nesting deeper than the parser's stack: not an AFEW-VA document either way
        raise AnnotationError(path, "not valid JSON: nested too deeply") from None
    frames = document.get("frames") if isinstance(document, dict) else None
    if not isinstance(frames, dict):
        raise AnnotationError(path, "expected an object with a 'frames' mapping")
    if not frames:
        warn_empty(path, "frame")
    subject = str(document.get("actor") or clip)
    out = []
    for key in sorted(frames):
        # ASCII digits only: str.isdigit also accepts "²", which int() refuses; 9 digits fit any frame count.
        if not (key.isascii() and key.isdigit() and len(key) <= 9):
            raise AnnotationError(path, f"frame key {excerpt(key)} is not a frame number like '00000'")
        frame = frames[key]
        values = []
        for name in ("valence", "arousal"):
            value = frame.get(name) if isinstance(frame, dict) else None
            # value != value is NaN; infinities and integers too large for a float fail the range test.
            if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
                raise AnnotationError(path, f"frame {key}: {name} is {value!r:.40}, expected a number")
            if abs(value) > VA_SCALE:
                raise AnnotationError(path, f"frame {key}: {name} {value!r:.40} is outside [-10, 10]")
            values.append(value / VA_SCALE)
        landmarks = _landmark_array(path, key, frame.get("landmarks"))
        # Non-finite or degenerate landmarks are a fault of one frame (a tracker that lost the face), not of
        # the file: _align_into skips and counts them (bad_landmarks).
        out.append((key, values[0], values[1], landmarks))
    return subject, out


def _landmark_array(path: Path, key: str, points: object) -> np.ndarray:
    """The (68, 2) float array of one frame's ``landmarks``; an error unless 68 [x, y] pairs of numbers."""

    def is_pair(point: object) -> bool:
        # Numbers only: numpy would also read strings ("12") and booleans as coordinates.
        return (
            isinstance(point, list)
            and len(point) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in point)
        )

    if not isinstance(points, list):
        problem = f"got {points!r:.40}"
    else:
        bad = next((i for i, point in enumerate(points) if not is_pair(point)), None)
        if bad is not None:
            problem = f"pair {bad} is {points[bad]!r:.40}"
        elif len(points) != 68:
            problem = f"got {len(points)} pairs"
        else:
            try:
                return np.asarray(points, dtype=np.float64)
            except OverflowError:
                problem = "a coordinate is beyond the range of a float"
    raise AnnotationError(path, f"frame {key}: landmarks must be 68 [x, y] pairs of numbers; {problem}")


def _align_into(
    cache: CropCache,
    name: str,
    source: Path,
    landmarks: np.ndarray,
    size: int,
    margin: float,
    report: LoadReport,
) -> bool:
    """Align one frame into the cache; count and return False when it gives no usable crop.

    That is: landmarks that span no face, an image that is missing or corrupt, or an aligned crop with less
    than :data:`MIN_VISIBLE` of its area on the image (landmarks far outside it would give a black crop).
    """
    where = f"{source.parent.name}/{source.name}"
    try:
        alignment_transform(landmarks, size, margin)
    except ValueError as err:  # non-finite, eyes at one point, or no area: no face to align
        report.skip(BAD_LANDMARKS, example=f"{where}: {err}")
        return False
    try:
        with Image.open(source) as image:  # opening reads the header only: the size, no pixels yet
            visible = alignment_visible_fraction(image.size, landmarks, size, margin)
            if visible < MIN_VISIBLE:
                report.skip(OFF_IMAGE, example=f"{where}: {visible:.0%} of the crop on the image")
                return False
            crop = align_face(image, landmarks, size=size, margin=margin)
    except FileNotFoundError:
        report.skip(MISSING_IMAGE, example=str(source))
        return False
    except IMAGE_ERRORS as err:
        report.skip(CORRUPT_IMAGE, example=f"{source}: {err}")
        return False
    cache.save(crop, name)
    return True
