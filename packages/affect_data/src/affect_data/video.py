"""Faces from any video: decode frames, detect every face, align it, crop it as the training crops are.

Three steps, each usable alone:

1. :class:`FrameReader` decodes a video file with PyAV (anything FFmpeg reads: mp4, avi, mkv, webm, ...) or
   reads a folder of images in natural order (``frame_2`` before ``frame_10``; an unreadable image can be
   flagged rather than stop the folder), optionally subsampled
   (``every`` N-th frame, or at most ``fps`` frames per second), and yields :class:`Frame` s: the 0-based
   index of the frame in the source, its time in seconds and its RGB uint8 pixels, turned upright when the
   file says it was filmed rotated.
2. A :class:`FaceDetector` finds faces: boxes, scores and landmarks (5 points, or 68 in the iBUG 300-W
   order). :class:`MTCNNDetector` wraps the MTCNN of ``facenet-pytorch==2.5.3``, whose weights ship inside
   its wheel, so nothing is downloaded; any other detector plugs in by implementing ``detect``.
3. ``affect_data.faces.align_crop`` rotates the image so the eyes are level and crops a square face, with the
   margin convention of the training crops (``affect_data.faces.face_transform``); :func:`detect_faces` runs
   steps 2 and 3 over
   the frames and keeps every face that passes a minimum score and size.

Video decoding needs PyAV and the detector facenet-pytorch: ``pip install "affect-data[video]"``.
:mod:`affect_data.tracking` gives each face an id that lasts while it stays in view;
:mod:`affect_data.prediction` runs a multitask model on the crops, and :func:`write_overlay_video` draws its
predictions back onto the video.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont, ImageOps

from affect_data._atomic import atomic_file
from affect_data.faces import align_crop

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "BOX_COLUMNS",
    "FACE_COLORS",
    "IMAGE_SUFFIXES",
    "DetectedFrame",
    "Face",
    "FaceDetector",
    "Frame",
    "FrameReader",
    "MTCNNDetector",
    "detect_faces",
    "write_overlay_video",
]

#: Column names of a face box, PIL order.
BOX_COLUMNS = ("box_left", "box_top", "box_right", "box_bottom")

#: Files of a folder of images that are read as frames (case-insensitive); other files are ignored.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class Frame:
    """One decoded frame.

    Attributes
    ----------
    index : int
        0-based position of the frame in the source (before subsampling), so it can be found again.
    time : float
        Presentation time in seconds (images of a folder: ``index / image_fps``).
    image : numpy.ndarray or None
        RGB pixels, uint8, shape ``(height, width, 3)``; None for an unreadable image (see ``error``).
    file : str or None
        The image's file name in its folder; None for a video frame.
    error : str or None
        Why the image could not be read (``FrameReader(..., unreadable="flag")``); None when it was read.
    """

    index: int
    time: float
    image: np.ndarray | None
    file: str | None = None
    error: str | None = None


class FrameReader:
    """The frames of a video file or of a folder of images, optionally subsampled.

    The source is opened and checked when the reader is made, so a missing, empty or undecodable source is
    an error at once; iterating (any number of times) decodes the frames one by one.

    Parameters
    ----------
    source : path
        A video file, or a folder of images (files ending in :data:`IMAGE_SUFFIXES`, natural order).
    every : int, default 1
        Keep every ``every``-th frame (frames 0, every, 2 * every, ...).
    fps : float, optional
        Instead of ``every``: keep at most ``fps`` frames per second of video time, the first frame of each
        ``1 / fps`` interval (frames stay where they are in time; a variable frame rate is fine).
    image_fps : float, default 30.0
        The frame rate a folder of images is taken to have (it sets ``Frame.time``); ignored for videos.
    unreadable : {"raise", "flag"}, default "raise"
        An image of a folder that cannot be read: a ValueError naming it, or a :class:`Frame` without pixels
        whose ``error`` says why (so one corrupt image does not stop a folder).

    Raises
    ------
    FileNotFoundError
        If ``source`` does not exist.
    ValueError
        Naming the file, when it is not a video FFmpeg can decode, has no video stream, or is a folder with
        no images; or when the options are out of range.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> for i in (1, 2, 10):
    ...     Image.new("RGB", (32, 24)).save(folder / f"frame_{i}.png")
    >>> reader = FrameReader(folder, image_fps=10)
    >>> [(f.index, f.time, f.image.shape) for f in reader]
    [(0, 0.0, (24, 32, 3)), (1, 0.1, (24, 32, 3)), (2, 0.2, (24, 32, 3))]
    >>> [p.name for p in reader.images]
    ['frame_1.png', 'frame_2.png', 'frame_10.png']
    """

    def __init__(
        self,
        source: str | os.PathLike,
        every: int = 1,
        fps: float | None = None,
        image_fps: float = 30.0,
        unreadable: Literal["raise", "flag"] = "raise",
    ) -> None:
        self.source = Path(source)
        if unreadable not in ("raise", "flag"):
            raise ValueError(f"unreadable must be 'raise' or 'flag', got {unreadable!r}")
        self.unreadable = unreadable
        if int(every) != every or every < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}")
        if fps is not None and not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be a positive number, got {fps!r}")
        if fps is not None and every != 1:
            raise ValueError(f"give either every ({every}) or fps ({fps}), not both")
        if not (math.isfinite(image_fps) and image_fps > 0):
            raise ValueError(f"image_fps must be a positive number, got {image_fps!r}")
        self.every, self.fps, self.image_fps = int(every), fps, float(image_fps)
        if not self.source.exists():
            raise FileNotFoundError(f"video or image folder {str(self.source)!r} does not exist")
        self.images: list[Path] = []
        self.frame_rate: float | None = None
        #: Frames in the source as its header says (None when unknown); before subsampling.
        self.num_frames: int | None = None
        if self.source.is_dir():
            self.images = sorted(
                (p for p in self.source.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                key=_natural_key,
            )
            if not self.images:
                raise ValueError(
                    f"folder {str(self.source)!r} holds no images (looked for {', '.join(IMAGE_SUFFIXES)})"
                )
            self.frame_rate, self.num_frames = self.image_fps, len(self.images)
        else:
            self.frame_rate, self.num_frames = _probe_video(self.source)

    def __len__(self) -> int:
        """How many frames iterating yields, estimated from the header for videos (0 when unknown)."""
        if self.num_frames is None:
            return 0
        if self.fps is not None and self.frame_rate:
            return math.ceil(self.num_frames * min(1.0, self.fps / self.frame_rate))
        return math.ceil(self.num_frames / self.every)

    def __iter__(self) -> Iterator[Frame]:
        # The readers drop all but every `every`-th frame themselves (before the costly conversions);
        # `fps` (which comes with every == 1) is applied here, on the frames' times.
        frames = self._read_images() if self.images else self._read_video()
        if self.fps is None:
            yield from frames
            return
        next_slot = -math.inf
        for frame in frames:
            slot = math.floor(frame.time * self.fps + 1e-6)  # the 1 / fps interval the frame falls in
            if slot >= next_slot:
                next_slot = slot + 1
                yield frame

    def _read_images(self) -> Iterator[Frame]:
        for index, path in enumerate(self.images):
            if index % self.every == 0:
                try:
                    image = _read_image(path)
                except ValueError as error:
                    if self.unreadable == "raise":
                        raise
                    yield Frame(index, index / self.image_fps, None, path.name, str(error))
                    continue
                yield Frame(index, index / self.image_fps, image, path.name)

    def _read_video(self) -> Iterator[Frame]:
        av = _import_av()

        index = 0
        try:
            with av.open(str(self.source)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                for decoded in container.decode(stream):
                    time = decoded.time
                    if time is None:  # no timestamps in the file: count frames at the nominal rate
                        time = index / (self.frame_rate or self.image_fps)
                    if index % self.every == 0:
                        pixels = _upright(decoded.to_ndarray(format="rgb24"), decoded)
                        yield Frame(index, float(time), pixels)
                    index += 1
        except av.error.FFmpegError as error:
            raise ValueError(
                f"cannot decode video {str(self.source)!r} after {index} frame(s): {error}"
            ) from error


def _import_av() -> ModuleType:
    try:
        import av
    except ImportError as error:
        raise ImportError(
            f'reading videos needs PyAV: pip install "affect-data[video]"  ({error})'
        ) from error
    return av


def _natural_key(path: Path) -> list:
    """Sort key that orders embedded numbers by value: ``img2`` before ``img10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def _read_image(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            # Phone photos store their orientation in EXIF; turn them upright as a viewer would.
            return np.asarray(ImageOps.exif_transpose(image).convert("RGB"), dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ValueError(f"cannot read image {str(path)!r}: {error}") from error


def _probe_video(path: Path) -> tuple[float | None, int | None]:
    """Open ``path`` once to check it holds a decodable video stream; return (frame rate, frame count)."""
    av = _import_av()

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"{str(path)!r} has no video stream")
            stream = container.streams.video[0]
            if stream.codec_context is None or stream.codec_context.name is None:
                raise ValueError(f"{str(path)!r}: no decoder for its video stream")
            rate = stream.average_rate or stream.guessed_rate
            count = stream.frames or None
            if count is None and stream.duration and stream.time_base and rate:
                count = round(float(stream.duration * stream.time_base * rate))
            return (float(rate) if rate else None), count
    except av.error.FFmpegError as error:
        raise ValueError(f"cannot open {str(path)!r} as a video: {error}") from error


def _upright(pixels: np.ndarray, decoded) -> np.ndarray:
    """Apply the display rotation that phones record instead of rotating the pixels."""
    rotation = getattr(decoded, "rotation", 0) or 0  # degrees counter-clockwise (PyAV >= 14)
    quarter_turns = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(pixels, quarter_turns)) if quarter_turns else pixels


@dataclass(frozen=True)
class Face:
    """One detected face.

    Attributes
    ----------
    box : numpy.ndarray
        ``(left, top, right, bottom)`` in pixels, float.
    score : float
        The detector's confidence.
    landmarks : numpy.ndarray
        ``(5, 2)`` (x, y) points - the eye on the image's left, the other eye, the nose tip, the mouth
        corner on the image's left, the other mouth corner (MTCNN's order) - or ``(68, 2)`` in the iBUG
        300-W order.
    """

    box: np.ndarray
    score: float
    landmarks: np.ndarray

    @property
    def area(self) -> float:
        left, top, right, bottom = self.box
        return float(max(right - left, 0.0) * max(bottom - top, 0.0))


class FaceDetector(Protocol):
    """Anything that finds faces: ``detect(images)`` -> one list of :class:`Face` per image (maybe empty).

    ``images`` are RGB uint8 arrays ``(H, W, 3)``; their sizes may differ. To use another detector
    (RetinaFace, dlib, face_alignment, ...), write a class with this one method and pass it as ``detector``.
    """

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Face]]: ...


class MTCNNDetector:
    """The MTCNN face detector of ``facenet-pytorch==2.5.3`` (weights inside its wheel: no download).

    Parameters
    ----------
    device : str or torch.device, default "cpu"
        Where the three networks run.
    min_face_size : int, default 20
        Smallest face side searched for, in pixels of the (possibly shrunk) image.
    thresholds : three floats, default (0.6, 0.7, 0.7)
        Score thresholds of MTCNN's three stages; raise them to drop doubtful faces.
    max_side : int or None, default 640
        Images whose longer side exceeds this are shrunk to it for detection (boxes and landmarks are mapped
        back to full resolution, and crops are cut from the full image): a large speed-up on HD video. Faces
        smaller than ``min_face_size * longer side / max_side`` pixels are then missed; pass None to detect at
        full resolution.
    batch : bool, default True
        Detect the images of one ``detect`` call as one batch per image size (MTCNN batches only equal sizes)
        rather than one by one: the same faces, faster on a GPU; on CPUs it depends on the machine
        (``benchmarks/bench_predict.py`` compares the two).
    redetect_every : int, default 1
        1: every image gets the full detector (an image pyramid through MTCNN's three networks). n > 1, for
        the consecutive frames of one video: the full detector runs on one frame in n, and each frame between
        sends only the previous frame's faces through MTCNN's last network (ONet), which re-scores each face,
        refines its box and finds its landmarks again at a small part of the cost. A frame where a followed
        face is no longer confirmed (ONet's score below the third threshold), or whose previous frame had no
        face, gets the full detector; a face that comes into view is found at most n - 1 frames late. Images
        are then processed one by one, in the order given; call :meth:`reset` before another video.
        ``full_detections`` and ``followed_frames`` count the frames of each kind.

    Raises
    ------
    ImportError
        With the install command, when facenet-pytorch is not installed.

    Examples
    --------
    >>> detector = MTCNNDetector()
    >>> detector.detect([np.zeros((60, 80, 3), dtype=np.uint8)])
    [[]]
    """

    def __init__(
        self,
        device: str | torch.device = "cpu",
        min_face_size: int = 20,
        thresholds: Sequence[float] = (0.6, 0.7, 0.7),
        max_side: int | None = 640,
        batch: bool = True,
        redetect_every: int = 1,
    ) -> None:
        try:
            from facenet_pytorch import MTCNN
        except ImportError as error:
            raise ImportError(
                "the MTCNN face detector needs facenet-pytorch 2.5.3 (its weights ship inside the wheel): "
                f'pip install "affect-data[video]"  ({error})'
            ) from error
        if len(thresholds) != 3 or not all(0 < t < 1 for t in thresholds):
            raise ValueError(f"thresholds must be three numbers in (0, 1), got {thresholds!r}")
        if min_face_size < 1 or (max_side is not None and max_side < 2 * min_face_size):
            raise ValueError(
                f"need min_face_size >= 1 and max_side >= 2 * min_face_size, got {min_face_size}, {max_side}"
            )
        if redetect_every < 1:
            raise ValueError(f"redetect_every must be >= 1, got {redetect_every}")
        self.device = torch.device(device)
        self.max_side = max_side
        self.batch = batch
        self.redetect_every = redetect_every
        self.full_detections = 0
        self.followed_frames = 0
        self.reset()
        self._mtcnn = MTCNN(
            min_face_size=min_face_size,
            thresholds=list(thresholds),
            select_largest=False,
            device=self.device,
        ).eval()

    def reset(self) -> None:
        """Forget the faces followed from frame to frame (``redetect_every`` > 1): the next image is a new
        video's first frame."""
        self._previous: np.ndarray | None = None  # the last frame's boxes, in the shrunk image's pixels
        self._since_full = 0

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        shrunk = [self._shrink(image) for image in images]
        if self.redetect_every > 1:
            found = [self._detect_or_follow(small) for small, _ in shrunk]
        else:
            found = self._detect_full([small for small, _ in shrunk])
            self.full_detections += len(shrunk)
        return [
            [
                Face(box=box * scale, score=float(score), landmarks=marks * scale)
                for box, score, marks in zip(boxes, scores, points, strict=True)
            ]
            for (_, scale), (boxes, scores, points) in zip(shrunk, found, strict=True)
        ]

    def _detect_full(self, images: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """MTCNN's three stages: per image, boxes ``(k, 4)``, scores ``(k,)`` and landmarks ``(k, 5, 2)``."""
        results = [(np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2))) for _ in images]
        if not self.batch:
            groups = [[i] for i in range(len(images))]
        else:
            by_size: dict[tuple[int, ...], list[int]] = {}
            for i, small in enumerate(images):
                by_size.setdefault(small.shape, []).append(i)
            groups = list(by_size.values())
        for group in groups:
            boxes, scores, points = self._mtcnn.detect(np.stack([images[i] for i in group]), landmarks=True)
            for i, b, s, p in zip(group, boxes, scores, points, strict=True):
                if b is not None:
                    b, s, p = (np.asarray(v, dtype=np.float64) for v in (b, s, p))
                    results[i] = (b.reshape(-1, 4), s.reshape(-1), p.reshape(-1, 5, 2))
        return results

    def _detect_or_follow(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        found = None
        if self._previous is not None and self._since_full < self.redetect_every:
            found = self._follow(image, self._previous)
        if found is None:
            (found,) = self._detect_full([image])
            self.full_detections += 1
            self._since_full = 0
        else:
            self.followed_frames += 1
        self._since_full += 1
        self._previous = found[0] if len(found[0]) else None
        return found

    def _follow(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, ...] | None:
        """The faces at ``boxes`` re-scored, re-boxed and re-landmarked by ONet (MTCNN's third stage, with
        its own pre- and post-processing); None when one of them is no longer a face."""
        from facenet_pytorch.models.utils.detect_face import batched_nms_numpy, bbreg, imresample, pad, rerec

        height, width = image.shape[:2]
        pixels = torch.as_tensor(image, device=self.device).permute(2, 0, 1).unsqueeze(0)  # uint8: crops only
        candidates = torch.as_tensor(
            np.c_[boxes, np.ones(len(boxes))], dtype=torch.float32, device=self.device
        )
        candidates = rerec(candidates)
        top, bottom, left, right = pad(candidates, width, height)
        if np.any(bottom <= top - 1) or np.any(right <= left - 1):
            return None  # a face has left the image
        crops = torch.cat(
            [
                imresample(pixels[:, :, t - 1 : b, l - 1 : r].float(), (48, 48))
                for t, b, l, r in zip(top, bottom, left, right, strict=True)
            ]
        )
        with torch.inference_mode():
            offsets, points, probabilities = self._mtcnn.onet((crops - 127.5) * 0.0078125)
        scores = probabilities[:, 1]
        if bool((scores <= self._mtcnn.thresholds[2]).any()):
            return None
        sides = (candidates[:, 2:4] - candidates[:, 0:2] + 1).unsqueeze(1)  # (k, 1, 2): width, height
        landmarks = torch.stack((points[:, :5], points[:, 5:]), dim=2) * sides + candidates[:, None, :2] - 1
        refined = bbreg(torch.cat((candidates[:, :4], scores[:, None]), dim=1), offsets)
        # Two faces followed onto one (they crossed): keep the better scored, as MTCNN's last NMS would.
        keep = batched_nms_numpy(refined[:, :4], scores, torch.zeros_like(scores), 0.7, "Min")
        return tuple(
            np.asarray(values[keep].cpu(), dtype=np.float64) for values in (refined[:, :4], scores, landmarks)
        )

    def _shrink(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """The image to detect on and the factor that maps its coordinates back to the original's."""
        _check_image(image)
        longer = max(image.shape[:2])
        if self.max_side is None or longer <= self.max_side:
            return image, 1.0
        factor = longer / self.max_side
        height, width = (round(side / factor) for side in image.shape[:2])
        small = Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR, reducing_gap=2.0)
        # Map exactly: the shrunk image spans the same area, so x_original = x_small * (width ratio).
        return np.asarray(small), image.shape[1] / width


def _check_image(image: np.ndarray) -> None:
    if not (
        isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    ):
        shape = getattr(image, "shape", None)
        raise ValueError(
            f"expected an RGB uint8 array (H, W, 3), got {type(image).__name__} of shape {shape}"
        )


@dataclass(frozen=True)
class DetectedFrame:
    """A frame, the faces kept in it (maybe none) and their aligned crops, in the same order.

    ``file`` and ``error`` are the frame's (:class:`Frame`): an unreadable image has no faces, and an error.
    """

    index: int
    time: float
    faces: tuple[Face, ...]
    crops: tuple[np.ndarray, ...]
    file: str | None = None
    error: str | None = None


def detect_faces(
    frames: Iterable[Frame],
    detector: FaceDetector,
    size: int = 112,
    margin: float = 0.25,
    min_score: float = 0.0,
    min_size: float = 0.0,
    batch_size: int = 16,
) -> Iterator[DetectedFrame]:
    """Detect every face of every frame, drop doubtful ones, align and crop the rest.

    Parameters
    ----------
    frames : iterable of Frame
        E.g. a :class:`FrameReader`; frames without pixels (unreadable images) pass through without faces.
    detector : FaceDetector
        E.g. :class:`MTCNNDetector`.
    size, margin : int, float
        The crop, see ``affect_data.faces.face_transform``.
    min_score : float
        Faces the detector scores lower are dropped.
    min_size : float
        Faces whose box's shorter side is smaller, in pixels of the frame, are dropped.
    batch_size : int
        Frames handed to the detector per call.

    Examples
    --------
    >>> class OneFace:
    ...     def detect(self, images):
    ...         eyes_nose_mouth = np.array([[40, 50], [70, 50], [55, 65], [43, 83], [67, 83]], float)
    ...         return [[Face(np.array([30, 35, 80, 95.0]), 0.99, eyes_nose_mouth)] for _ in images]
    >>> frames = [Frame(i, i / 25, np.zeros((120, 110, 3), np.uint8)) for i in range(3)]
    >>> [(d.index, d.crops[0].shape) for d in detect_faces(frames, OneFace(), size=64)]
    [(0, (64, 64, 3)), (1, (64, 64, 3)), (2, (64, 64, 3))]
    >>> [len(d.faces) for d in detect_faces(frames, OneFace(), min_score=0.995)]
    [0, 0, 0]
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not (0 <= min_score <= 1) or not min_size >= 0:
        raise ValueError(f"need 0 <= min_score <= 1 and min_size >= 0, got {min_score!r}, {min_size!r}")
    batch: list[Frame] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == batch_size:
            yield from _detect_batch(batch, detector, size, margin, min_score, min_size)
            batch = []
    if batch:
        yield from _detect_batch(batch, detector, size, margin, min_score, min_size)


def _detect_batch(
    batch: list[Frame], detector: FaceDetector, size: int, margin: float, min_score: float, min_size: float
) -> Iterator[DetectedFrame]:
    readable = [frame for frame in batch if frame.image is not None]
    found = detector.detect([frame.image for frame in readable]) if readable else []
    if len(found) != len(readable):
        raise ValueError(f"the detector returned {len(found)} result(s) for {len(readable)} image(s)")
    faces_of = {id(frame): faces for frame, faces in zip(readable, found, strict=True)}
    for frame in batch:
        faces = tuple(
            face
            for face in faces_of.get(id(frame), [])
            if face.score >= min_score and _shorter_side(face.box) >= min_size
        )
        crops = tuple(align_crop(frame.image, face.landmarks, size, margin) for face in faces)
        yield DetectedFrame(frame.index, frame.time, faces, crops, frame.file, frame.error)


def _shorter_side(box: np.ndarray) -> float:
    left, top, right, bottom = box
    return float(min(right - left, bottom - top))


#: Box colours of :func:`write_overlay_video`, one per face id in turn (face id modulo their number).
FACE_COLORS = ((255, 64, 64), (64, 160, 255), (64, 220, 96), (255, 200, 0), (200, 96, 255), (0, 220, 220))


def write_overlay_video(
    source: str | os.PathLike, table: pd.DataFrame, path: str | os.PathLike, bit_rate: int = 4_000_000
) -> Path:
    """Write ``source`` with the faces of a prediction table drawn on it to the video file ``path``
    (atomically): each face's box, id and top expression.

    The source is decoded again (upright, as :class:`FrameReader` turns it) and encoded with PyAV (MPEG-4
    Part 2, which every FFmpeg build has) at its frame rate. Every frame of the source is written; a frame
    that was not predicted (``every``, ``fps``) shows the boxes of the last predicted frame before it, so
    that the boxes do not flicker.

    Parameters
    ----------
    source : path
        The video the table was predicted from.
    table : DataFrame
        A prediction table of ``source`` (:func:`affect_data.prediction.predict_table`): its ``frame``,
        ``face_id``, box, ``expr_name`` and expression probability columns are drawn.
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
    av = _import_av()

    reader = FrameReader(source)
    if reader.images:
        raise ValueError(
            f"an overlay video needs a video source; {str(reader.source)!r} is a folder of images"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    faces = _faces_by_frame(table)
    rate = Fraction(reader.frame_rate or 30.0).limit_denominator(1001)
    try:
        with atomic_file(path) as temporary, av.open(str(temporary), "w") as container:
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
    except av.error.FFmpegError as error:
        raise ValueError(f"cannot write the video {str(path)!r}: {error}") from error
    return path


def _faces_by_frame(table: pd.DataFrame) -> dict[int, list[tuple[np.ndarray, int, str]]]:
    """Frame index -> (box, face id, label) of each face; a predicted frame without a face maps to []."""
    faces: dict[int, list[tuple[np.ndarray, int, str]]] = {}
    for frame, rows in table.groupby("frame", sort=True):
        drawn = []
        for _, row in rows[rows["face_id"].notna()].iterrows():
            label = str(int(row["face_id"]))
            expression = row["expr_name"]
            if isinstance(expression, str):  # <NA> where no expression was predicted
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
