"""Face crops: a box crop (ExpW), a 68-landmark alignment that levels the eyes (AFEW-VA), and the crop cache.

The same functions serve users who crop and align faces of their own images or videos: give
:func:`align_face` any image and its 68 landmarks (iBUG 300-W order, as dlib, face_alignment or OpenFace
produce them), or :func:`align_crop` the 5 points of a face detector such as MTCNN (or 68): the same crop
convention, so a detected face is cropped as the training crops were.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from affect_data._atomic import atomic_file

#: 0-based indices of the eye contours in the 68-point (iBUG 300-W) scheme: the eye on the image's left
#: (the subject's right eye) is points 37-42 in 1-based numbering, the other 43-48.
LEFT_EYE = slice(36, 42)
RIGHT_EYE = slice(42, 48)

#: Smallest share of a crop's area that must lie on its source image. Below it the crop is mostly black
#: (alignment) or a sliver (box), and the loaders skip the face (``off_image``). A constant rather than a
#: parameter: cached crops are reused without opening their source, so the rule must not change between loads.
MIN_VISIBLE = 0.5

#: Proportions of the face box that stands in for the 68 landmarks' bounding box when only 5 landmarks are
#: known (see :func:`face_transform`): its side in units of ``max(d, h / MOUTH_TO_EYES)``, and how far below
#: the eyes its centre lies, as a fraction of ``h``.
FACE_SIDE = 2.4
MOUTH_TO_EYES = 1.1
CENTRE_DROP = 0.6

#: Errors Pillow raises for a missing file or one that does not decode (truncated, not an image, bomb-sized;
#: SyntaxError comes from a few older plugins).
IMAGE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    Image.DecompressionBombError,
)


def crop_box(image: Image.Image, box: Sequence[float]) -> Image.Image | None:
    """Crop ``box`` = (left, top, right, bottom) (PIL order, right/bottom exclusive), clipped to the image.

    Returns None when nothing of the box lies inside the image.

    Examples
    --------
    >>> from PIL import Image
    >>> crop_box(Image.new("RGB", (100, 80)), (10, 20, 50, 90)).size
    (40, 60)
    >>> crop_box(Image.new("RGB", (100, 80)), (120, 0, 150, 10)) is None
    True
    """
    left, top, right, bottom = (round(float(v)) for v in box)
    left, top = max(left, 0), max(top, 0)
    right, bottom = min(right, image.width), min(bottom, image.height)
    if right <= left or bottom <= top:
        return None
    return image.crop((left, top, right, bottom))


def box_visible_fraction(image_size: tuple[int, int], box: Sequence[float]) -> float:
    """Share of the area of ``box`` = (left, top, right, bottom) that lies on an image of ``image_size``.

    Examples
    --------
    >>> box_visible_fraction((100, 80), (-10, 0, 10, 10))
    0.5
    >>> box_visible_fraction((100, 80), (120, 0, 150, 10))
    0.0
    """
    left, top, right, bottom = (float(v) for v in box)
    area = (right - left) * (bottom - top)
    if not area > 0:
        return 0.0
    width, height = image_size
    overlap_x = max(0.0, min(right, width) - max(left, 0.0))
    overlap_y = max(0.0, min(bottom, height) - max(top, 0.0))
    return overlap_x * overlap_y / area


def alignment_visible_fraction(
    image_size: tuple[int, int], landmarks: np.ndarray, size: int = 112, margin: float = 0.25, grid: int = 32
) -> float:
    """Share of :func:`align_face`'s output that samples the source image (the rest would be black).

    Estimated on a ``grid`` x ``grid`` lattice of output pixel centres mapped into the source image.

    Raises
    ------
    ValueError
        As :func:`alignment_transform`: landmarks that are not 68 finite points, or that span no area.

    Examples
    --------
    >>> import numpy as np
    >>> points = np.random.default_rng(0).uniform(80, 120, (68, 2))
    >>> alignment_visible_fraction((200, 200), points)
    1.0
    >>> alignment_visible_fraction((200, 200), points + 1000)
    0.0
    """
    matrix = alignment_transform(landmarks, size, margin)
    centres = (np.arange(grid) + 0.5) * (size / grid)
    x, y = np.meshgrid(centres, centres)
    source = matrix[:, :2] @ np.stack([x.ravel(), y.ravel()]) + matrix[:, 2:]
    width, height = image_size
    on_image = (source[0] >= 0) & (source[0] < width) & (source[1] >= 0) & (source[1] < height)
    return float(on_image.mean())


def eye_centers(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres of the two eye contours of 68 landmarks, the one on the image's left first.

    Examples
    --------
    >>> import numpy as np
    >>> points = np.zeros((68, 2)); points[36:42] = (30, 40); points[42:48] = (70, 40)
    >>> [c.tolist() for c in eye_centers(points)]
    [[30.0, 40.0], [70.0, 40.0]]
    """
    points = _checked_landmarks(landmarks)
    return points[LEFT_EYE].mean(axis=0), points[RIGHT_EYE].mean(axis=0)


def alignment_transform(landmarks: np.ndarray, size: int = 112, margin: float = 0.25) -> np.ndarray:
    """The 2 x 3 affine matrix that maps output pixel coordinates to source image coordinates.

    The face is rotated about the midpoint of the eyes until they are level, then cropped to the square
    around the rotated landmarks' bounding box, widened by ``margin`` times its side on every side, and
    scaled to ``size`` x ``size``.
    """
    points = _checked_landmarks(landmarks)
    if size < 1 or margin < 0:
        raise ValueError(f"size must be >= 1 and margin >= 0, got size={size}, margin={margin}")
    left, right = eye_centers(points)
    dx, dy = right - left
    if dx == 0 and dy == 0:
        raise ValueError("the two eye centres coincide; cannot level the eyes")
    angle = np.arctan2(dy, dx)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    pivot = (left + right) / 2
    levelled = (points - pivot) @ rotation  # rows times R == R^T applied to each point: rotate by -angle
    low, high = levelled.min(axis=0), levelled.max(axis=0)
    side = float((high - low).max()) * (1 + 2 * margin)
    if side <= 0:
        raise ValueError("the landmarks span no area; cannot crop")
    scale = side / size
    centre = (low + high) / 2
    # source = pivot + R @ (centre + scale * (q - size / 2)) for output point q
    linear = rotation * scale
    offset = pivot + rotation @ (centre - scale * size / 2)
    return np.column_stack([linear, offset])


def align_landmarks(landmarks: np.ndarray, size: int = 112, margin: float = 0.25) -> np.ndarray:
    """Where :func:`align_face` puts each of the 68 landmarks in its output image.

    Examples
    --------
    >>> import numpy as np
    >>> points = np.random.default_rng(0).uniform(20, 80, (68, 2))
    >>> eyes = align_landmarks(points)
    >>> left, right = eye_centers(eyes)
    >>> bool(abs(left[1] - right[1]) < 1e-9)
    True
    """
    matrix = alignment_transform(landmarks, size, margin)
    linear, offset = matrix[:, :2], matrix[:, 2]
    return (_checked_landmarks(landmarks) - offset) @ np.linalg.inv(linear).T


def align_face(
    image: Image.Image, landmarks: np.ndarray, size: int = 112, margin: float = 0.25
) -> Image.Image:
    """Rotate ``image`` so the eyes of its 68 ``landmarks`` are level and crop a ``size`` x ``size`` face.

    Parts of the crop that fall outside the source image are black.

    Parameters
    ----------
    image : PIL.Image.Image
        The source image (converted to RGB).
    landmarks : array of shape (68, 2)
        (x, y) pixel coordinates in the iBUG 300-W order.
    size : int
        Side of the output square.
    margin : float
        Extra space around the landmarks' bounding box, as a fraction of its side, on every side.

    Examples
    --------
    >>> import numpy as np
    >>> from PIL import Image
    >>> points = np.random.default_rng(0).uniform(40, 160, (68, 2))
    >>> align_face(Image.new("RGB", (200, 200)), points, size=64).size
    (64, 64)
    """
    matrix = alignment_transform(landmarks, size, margin)
    return image.convert("RGB").transform(
        (size, size), Image.Transform.AFFINE, tuple(matrix.ravel()), resample=Image.Resampling.BILINEAR
    )


def face_transform(landmarks: np.ndarray, size: int = 112, margin: float = 0.25) -> np.ndarray:
    """The 2 x 3 affine matrix (output pixel -> source pixel) of an eye-levelled square face crop.

    The margin convention is the one of the training crops that :func:`align_face` cuts from
    68 landmarks (AFEW-VA): rotate about the midpoint of the eyes until they are level, take the face's
    square box, widen it by ``margin`` times its side on every side, scale to ``size``.

    - 68 landmarks: exactly :func:`alignment_transform` (the box is the landmarks' bounding
      box, made square).
    - 5 landmarks (eyes, nose, mouth corners): the 68-point box is estimated from the eye distance ``d`` and
      the eye-to-mouth distance ``h`` (eye midpoint to mouth-corner midpoint, measured square to the eyes):
      side ``FACE_SIDE * max(d, h / MOUTH_TO_EYES)`` = 2.4 d on a frontal face, centred ``CENTRE_DROP * h``
      below the eyes and midway between eyes and mouth across. A 68-point box is about 2.2 (human faces)
      to 2.5 (the synthetic corpus's faces) eye distances wide; the ``max`` keeps the size steady when the
      head turns (which shortens ``d``) or nods (which shortens ``h``). With the default margin the eyes
      are 0.28 of the crop apart (0.27 in the synthetic AFEW-VA crops); on rendered faces the crop's size
      and centre are within 15% and 8% of its side of the 68-landmark crop's (tested).

    Parameters
    ----------
    landmarks : array of shape (5, 2) or (68, 2)
        (x, y) pixel coordinates: the eye on the image's left, the other eye, the nose tip, the mouth
        corner on the image's left, the other (MTCNN's order); or 68 in the iBUG 300-W order.
    size : int
        Side of the output square.
    margin : float
        Extra space around the face box, as a fraction of its side, on every side.

    Examples
    --------
    >>> points = np.array([[40, 50], [70, 50], [55, 65], [43, 83], [67, 83]], dtype=float)
    >>> matrix = face_transform(points, size=112)
    >>> left_eye_in_crop = np.linalg.solve(matrix[:, :2], points[0] - matrix[:, 2])
    >>> np.round(left_eye_in_crop, 1).tolist()
    [40.4, 35.5]
    """
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape == (68, 2):
        return alignment_transform(points, size, margin)
    if points.shape != (5, 2) or not np.isfinite(points).all():
        raise ValueError(f"expected 5 or 68 finite (x, y) landmarks, got an array of shape {points.shape}")
    if size < 1 or margin < 0:
        raise ValueError(f"size must be >= 1 and margin >= 0, got size={size}, margin={margin}")
    left, right = points[0], points[1]
    dx, dy = right - left
    eye_distance = math.hypot(dx, dy)
    if eye_distance == 0:
        raise ValueError("the two eye landmarks coincide; cannot level the eyes")
    angle = math.atan2(dy, dx)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    pivot = (left + right) / 2
    mouth = ((points[3] + points[4]) / 2 - pivot) @ rotation  # in the levelled frame, eyes at the origin
    drop = max(float(mouth[1]), 0.0)
    side = FACE_SIDE * max(eye_distance, drop / MOUTH_TO_EYES) * (1 + 2 * margin)
    centre = np.array([mouth[0] / 2, CENTRE_DROP * drop])
    scale = side / size
    # As alignment_transform: source = pivot + R (centre + scale (q - size / 2)).
    return np.column_stack([rotation * scale, pivot + rotation @ (centre - scale * size / 2)])


def align_crop(
    image: np.ndarray | Image.Image, landmarks: np.ndarray, size: int = 112, margin: float = 0.25
) -> np.ndarray:
    """Cut the eye-levelled ``size`` x ``size`` face crop of :func:`face_transform` out of ``image``.

    Bilinear sampling; when the face is more than twice the crop's size the source region is first shrunk
    with a box filter, so large faces are smoothed rather than aliased. Parts of the crop outside the image
    are black. The input is not modified.

    Examples
    --------
    >>> points = np.array([[40, 50], [70, 50], [55, 65], [43, 83], [67, 83]], dtype=float)
    >>> align_crop(np.zeros((120, 110, 3), dtype=np.uint8), points, size=64).shape
    (64, 64, 3)
    """
    matrix = face_transform(landmarks, size, margin)
    picture = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
    if picture.mode != "RGB":  # convert() copies even when the mode is already RGB: a whole frame per call
        picture = picture.convert("RGB")
    step = math.sqrt(abs(np.linalg.det(matrix[:, :2])))  # source pixels per output pixel
    factor = int(step) if step >= 2 else 1
    if factor > 1:
        # Shrink only the part of the image the crop covers, then sample it: a box filter over
        # factor x factor blocks, so a reduced pixel i spans source [factor * i, factor * (i + 1)).
        corners = matrix[:, :2] @ np.array([[0, size, 0, size], [0, 0, size, size]]) + matrix[:, 2:]
        left, top = (max(math.floor(v) - factor, 0) for v in corners.min(axis=1))
        right, bottom = (math.ceil(v) + factor for v in corners.max(axis=1))
        right, bottom = min(right, picture.width), min(bottom, picture.height)
        if right > left and bottom > top:
            # Blocks on a grid fixed to the image: a face that moves a little is filtered alike.
            left -= left % factor
            top -= top % factor
            picture = picture.reduce(factor, box=(left, top, right, bottom))
            matrix = np.column_stack([matrix[:, :2], matrix[:, 2] - (left, top)]) / factor
    crop = picture.transform(
        (size, size), Image.Transform.AFFINE, tuple(matrix.ravel()), resample=Image.Resampling.BILINEAR
    )
    return np.array(crop, dtype=np.uint8)  # a writable copy


def _checked_landmarks(landmarks: np.ndarray) -> np.ndarray:
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (68, 2):
        raise ValueError(f"expected 68 (x, y) landmarks, got an array of shape {points.shape}")
    bad = np.flatnonzero(~np.isfinite(points).all(axis=1))
    if bad.size:
        raise ValueError(
            f"landmarks hold non-finite values: {bad.size} point(s), the first point {bad[0]} "
            f"= {points[bad[0]].tolist()}"
        )
    return points


class CropCache:
    """A folder of computed face crops, written once (atomically) and reused by later loads.

    A crop's file name carries a digest of everything it was computed from (source, box or landmarks,
    output size), so a changed annotation or parameter yields a new file instead of a stale hit. Files are
    written to a temporary name and renamed into place, so a crop on disk is always complete: an existing
    non-empty file is a valid crop.

    Parameters
    ----------
    folder : path
        Created (with parents) on first use.

    Examples
    --------
    >>> import tempfile
    >>> from PIL import Image
    >>> cache = CropCache(tempfile.mkdtemp())
    >>> name = cache.name("face", "image.jpg", (1, 2, 3, 4))
    >>> cache.has(name)
    False
    >>> cache.save(Image.new("RGB", (8, 8)), name).exists(), cache.has(name)
    (True, True)
    """

    #: Bump when the crop computation changes, so old crops are not reused. 2: faces with less than
    #: MIN_VISIBLE of their crop on the image are no longer cropped (version 1 kept mostly black crops).
    VERSION = 2
    #: Longest stem a crop's file name keeps.
    MAX_STEM = 100

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)

    def name(self, stem: str, *parts: object) -> str:
        """A file name ``<stem>_<digest>.jpg`` whose digest covers ``parts`` and the cache version.

        ``stem`` is cut to :attr:`MAX_STEM` characters: it only helps a reader find a crop (the digest makes
        the name unique), and an image name from an annotation file could exceed the file system's limit.
        """
        digest = hashlib.sha1(repr((self.VERSION, *parts)).encode()).hexdigest()[:10]
        return f"{stem[: self.MAX_STEM]}_{digest}.jpg"

    def path(self, name: str) -> Path:
        """Absolute path of the crop called ``name``."""
        return (self.folder / name).absolute()

    def has(self, name: str) -> bool:
        """Whether the crop ``name`` is already on disk."""
        try:
            return self.path(name).stat().st_size > 0
        except FileNotFoundError:
            return False

    def save(self, image: Image.Image, name: str) -> Path:
        """Write ``image`` as JPEG (quality 95, 4:4:4) under ``name`` atomically; return its path.

        The file gets the permissions of any new file of the user (``0o666`` less the umask).
        """
        target = self.path(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(target) as temporary:
            # Full-resolution chroma (4:4:4): small crops lose visible colour detail to 4:2:0 subsampling.
            image.convert("RGB").save(temporary, format="JPEG", quality=95, subsampling=0)
        return target


def default_cache_dir(root: Path) -> Path:
    """``<root's parent>/<root's name>_crops``: next to the data set, since the data set may be read-only."""
    root = Path(root).absolute()
    return root.parent / f"{root.name}_crops"
