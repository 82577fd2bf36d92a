"""ExpW (Expression in-the-Wild): one label line per face, several faces per image, crops cached once.

Layout::

    root/label/label.lst        "image_name face_id top left right bottom confidence label", space separated
    root/image/origin/<image_name>

ExpW labels are 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral; they are remapped to
Aff-Wild2's order (0 Neutral, 1 Anger, ..., 6 Surprise).
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from PIL import Image

from affect_data.faces import (
    IMAGE_ERRORS,
    MIN_VISIBLE,
    CropCache,
    box_visible_fraction,
    crop_box,
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
    CONFLICTING,
    CORRUPT_IMAGE,
    DUPLICATE,
    EMPTY_BOX,
    LOW_CONFIDENCE,
    MISSING_IMAGE,
    OFF_IMAGE,
    OUTSIDE_ROOT,
    LoadReport,
    finish_table,
)

DATASET = "expw"

#: ExpW label -> Aff-Wild2 expression index.
EXPW_TO_AFF_WILD2: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 0)

#: Extra columns of the ExpW frame table, after the standard ones.
EXTRA_COLUMNS: tuple[str, ...] = (
    "face_id",
    "confidence",
    "source",
    "box_left",
    "box_top",
    "box_right",
    "box_bottom",
)


@dataclass(frozen=True)
class _Face:
    line: int
    image: str
    face_id: int
    box: tuple[int, int, int, int]  # PIL order: left, top, right, bottom
    confidence: float
    label: int


def load_expw(
    root: str | os.PathLike,
    *,
    cache_dir: str | os.PathLike | None = None,
    min_confidence: float | None = None,
) -> pd.DataFrame:
    """Load ExpW into a frame table, cropping every face once into ``cache_dir`` and reusing it afterwards.

    Each face is keyed by (image name, face id): ``video`` is ``"<image_name>#<face_id>"``, ``frame`` 0,
    ``subject`` the same key (ExpW has no identities), ``split`` "train", ``path`` the cached crop. Extra
    columns: ``face_id``, ``confidence``, ``source`` (the full image) and the box ``box_left, box_top,
    box_right, box_bottom``. Skipped and counted in ``table.attrs["report"]``: duplicate lines, later lines
    that contradict an earlier one for the same face (the first is kept), faces below ``min_confidence``,
    image names that resolve (symlinks followed) outside ``image/origin`` (never opened), missing or
    undecodable source images, boxes with no pixel inside their image, and boxes with less than
    :data:`~affect_data.faces.MIN_VISIBLE` of their area on it. Boxes that overhang the image less than that
    are clipped to it. A ``label.lst`` without a face line gives an :class:`EmptyAnnotationWarning`.

    Parameters
    ----------
    root : path
        The ExpW folder holding ``label/label.lst`` and ``image/origin/``.
    cache_dir : path, optional
        Folder of the face crops; default ``<root>_crops`` next to ``root`` (the data set itself may be
        read-only). A crop already there is reused without opening its source image.
    min_confidence : float, optional
        Drop faces whose detector confidence is below this.

    Returns
    -------
    pandas.DataFrame
        The frame table, ``dataset == "expw"``, with ``expr`` labels only.

    Raises
    ------
    AnnotationError
        A line of ``label.lst`` with a wrong field count, a non-numeric value, a label outside 0..6, or a
        box whose right/bottom edge is not beyond its left/top edge; a file that is not UTF-8 text (file
        and line named).
    FileNotFoundError
        A missing ``label.lst`` or image folder.

    Examples
    --------
    >>> from affect_data import load_expw
    >>> table = load_expw("corpus/expw", cache_dir="corpus/expw_crops")  # doctest: +SKIP
    """
    root = Path(root)
    label_file = root / "label" / "label.lst"
    image_dir = root / "image" / "origin"
    if not label_file.is_file():
        raise FileNotFoundError(f"ExpW label file {label_file} does not exist")
    if not image_dir.is_dir():
        raise FileNotFoundError(f"ExpW image folder {image_dir} does not exist")
    cache = CropCache(Path(cache_dir) if cache_dir is not None else default_cache_dir(root))

    report = LoadReport(DATASET)
    faces = _read_label_file(label_file, report)
    if min_confidence is not None:
        low = [f for f in faces if f.confidence < min_confidence]
        report.skip(LOW_CONFIDENCE, len(low), example=f"label.lst line {low[0].line}" if low else None)
        faces = [f for f in faces if f.confidence >= min_confidence]

    by_image: dict[str, list[_Face]] = defaultdict(list)
    for face in faces:
        by_image[face.image].append(face)
    rows = []
    image_root = resolved_root(image_dir)
    for image_name, image_faces in by_image.items():
        source = (image_dir / image_name).absolute()
        if not inside(source, image_root):  # "../../x", "/etc/x" or a symlink out: never opened
            report.skip(
                OUTSIDE_ROOT,
                len(image_faces),
                example=f"label.lst line {image_faces[0].line}: {excerpt(image_name)}",
            )
            continue
        names = {
            f: cache.name(f"{Path(image_name).stem}_{f.face_id}", image_name, f.box) for f in image_faces
        }
        todo = [f for f in image_faces if not cache.has(names[f])]
        failed = _crop_faces(source, todo, names, cache, report) if todo else set()
        rows.extend(_row(f, cache.path(names[f]), source) for f in image_faces if f not in failed)

    table = pd.DataFrame(rows, columns=["video", "frame", "path", "subject", "expr", *EXTRA_COLUMNS])
    return finish_table(table, report, split="train")


def _read_label_file(path: Path, report: LoadReport) -> list[_Face]:
    """Parse ``label.lst``; drop (and count) duplicates and contradicting repeats of a face."""
    faces: dict[tuple[str, int], _Face] = {}
    # Split on "\n" only: str.splitlines also breaks at form feeds and other separators, which would make
    # the line numbers of errors disagree with the file.
    for number, raw in enumerate(read_annotation(path).decode("utf-8").split("\n"), start=1):
        fields = raw.split()
        if not fields:
            continue
        report.read(1)
        face = _parse_line(path, number, fields)
        key = (face.image, face.face_id)
        first = faces.get(key)
        if first is None:
            faces[key] = face
        elif (first.box, first.confidence, first.label) == (face.box, face.confidence, face.label):
            report.skip(DUPLICATE, example=f"label.lst line {number} repeats line {first.line}")
        else:
            report.skip(CONFLICTING, example=f"label.lst line {number} contradicts line {first.line}")
    if not report.rows_read:
        warn_empty(path, "face line")
    return list(faces.values())


#: The largest face box coordinate taken: no image is wider, and cropping with a larger one overflows the
#: C integers of the image library (OverflowError).
_MAX_COORDINATE = 2**31 - 1


def _parse_line(path: Path, number: int, fields: list[str]) -> _Face:
    if len(fields) != 8:
        raise AnnotationError(
            path,
            f"expected 8 fields (image face_id top left right bottom confidence label), found {len(fields)}",
            number,
        )
    image, *numbers = fields
    try:
        face_id, top, left, right, bottom = (int(v) for v in numbers[:5])
        label = int(numbers[6])
    except ValueError:
        raise AnnotationError(
            path, f"face id, box and label must be integers: {excerpt(' '.join(numbers))}", number
        ) from None
    if any(abs(value) > _MAX_COORDINATE for value in (top, left, right, bottom)):
        raise AnnotationError(
            path, f"face box coordinate beyond +-{_MAX_COORDINATE}: {excerpt(' '.join(numbers[1:5]))}", number
        )
    try:
        confidence = float(numbers[5])
    except ValueError:
        confidence = math.nan
    if not math.isfinite(confidence):
        raise AnnotationError(path, f"confidence {excerpt(numbers[5])} is not a finite number", number)
    if not 0 <= label < len(EXPW_TO_AFF_WILD2):
        raise AnnotationError(path, f"label {label} is outside 0..{len(EXPW_TO_AFF_WILD2) - 1}", number)
    if face_id < 0:
        raise AnnotationError(path, f"face id {face_id} is negative", number)
    if right <= left or bottom <= top:
        raise AnnotationError(
            path, f"empty face box: top {top} left {left} right {right} bottom {bottom}", number
        )
    return _Face(number, image, face_id, (left, top, right, bottom), confidence, label)


def _crop_faces(
    source: Path, faces: list[_Face], names: dict[_Face, str], cache: CropCache, report: LoadReport
) -> set[_Face]:
    """Crop ``faces`` out of ``source`` (opened once) into the cache; return the faces that failed."""
    try:
        exists = source.is_file()
    except OSError:  # a name the file system refuses (too long, say) names no image
        exists = False
    if not exists:
        report.skip(MISSING_IMAGE, len(faces), example=str(source))
        return set(faces)
    try:
        with Image.open(source) as image:
            image.load()
            image = image.convert("RGB")
    except IMAGE_ERRORS as err:
        report.skip(CORRUPT_IMAGE, len(faces), example=f"{source}: {err}")
        return set(faces)
    failed = set()
    for face in faces:
        crop = crop_box(image, face.box)
        example = f"label.lst line {face.line}: box {face.box} vs image {image.size}"
        if crop is None:
            report.skip(EMPTY_BOX, example=example)
            failed.add(face)
        elif box_visible_fraction(image.size, face.box) < MIN_VISIBLE:
            report.skip(OFF_IMAGE, example=example)
            failed.add(face)
        else:
            cache.save(crop, names[face])
    return failed


def _row(face: _Face, crop: Path, source: Path) -> tuple:
    key = f"{face.image}#{face.face_id}"
    return (
        key,
        0,
        str(crop),
        key,
        EXPW_TO_AFF_WILD2[face.label],
        face.face_id,
        face.confidence,
        str(source),
        *face.box,
    )
