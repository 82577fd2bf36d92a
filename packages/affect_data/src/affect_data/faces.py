"""Face crops: a box crop (ExpW), a 68-landmark alignment that levels the eyes (AFEW-VA), and the crop cache.

The same functions serve users who crop and align faces of their own images or videos: give
:func:`align_face` any image and its 68 landmarks (iBUG 300-W order, as dlib, face_alignment or OpenFace
produce them).
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

#: 0-based indices of the eye contours in the 68-point (iBUG 300-W) scheme: the eye on the image's left
#: (the subject's right eye) is points 37-42 in 1-based numbering, the other 43-48.
LEFT_EYE = slice(36, 42)
RIGHT_EYE = slice(42, 48)

#: Smallest share of a crop's area that must lie on its source image. Below it the crop is mostly black
#: (alignment) or a sliver (box), and the loaders skip the face (``off_image``). A constant rather than a
#: parameter: cached crops are reused without opening their source, so the rule must not change between loads.
MIN_VISIBLE = 0.5

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
        handle, temporary = _create_temporary(target.parent, prefix=".tmp-", suffix=".jpg")
        try:
            with os.fdopen(handle, "wb") as stream:
                # Full-resolution chroma (4:4:4): small crops lose visible colour detail to 4:2:0 subsampling.
                image.convert("RGB").save(stream, format="JPEG", quality=95, subsampling=0)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return target


def _create_temporary(folder: Path, prefix: str, suffix: str) -> tuple[int, Path]:
    """Create a new file with a random name in ``folder``; return its open descriptor and its path.

    ``tempfile.mkstemp`` creates files with mode ``0o600`` whatever the umask, and an atomic write keeps that
    mode after the rename: crops shared with a group would be unreadable to it. Here the mode is ``0o666``
    less the umask, as for any file the user creates, and ``O_EXCL`` still refuses an existing name.
    """
    path = folder / f"{prefix}{secrets.token_hex(8)}{suffix}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    return os.open(path, flags, 0o666), path


def default_cache_dir(root: Path) -> Path:
    """``<root's parent>/<root's name>_crops``: next to the data set, since the data set may be read-only."""
    root = Path(root).absolute()
    return root.parent / f"{root.name}_crops"
