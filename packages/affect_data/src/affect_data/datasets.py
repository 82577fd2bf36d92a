"""Torch datasets over frame tables: single frames for the CNN, clips of consecutive frames for the CNN-GRU.

An item is ``(image, targets, masks)`` (``return_index=True`` appends the frame-table row label):

- ``image``: float32 ``[3, size, size]`` (clips ``[L, 3, size, size]``), see :mod:`affect_data.transforms`;
- ``targets``: ``{"AU": float32 [8] of 0/1, "EXPR": int64 scalar, "VA": float32 [2]}``, 0 where missing;
- ``masks``: ``{"AU": bool, "EXPR": bool, "VA": bool}`` scalar tensors, True where the label exists
  (clips: ``[L]`` masks and ``[L, ...]`` targets).

Only the tasks in ``task_names`` appear in both dicts. AU is one task: its mask is True only when all eight
AUs are present (as in every source the recipes merge); VA likewise needs both values. torch's default
collate turns items into batched dicts, which is the contract of ``mtl_distill``. A frame item's targets and
masks are views of tensors the dataset builds once (much cheaper than new tensors per item): treat them as
read-only; collated batches are copies.

Pixels come from the image files (decoded and resized per item) or, much faster, from a
:class:`~affect_data.cache.FrameCache` built at the resized size (``transforms.resized_size(size)``).

An epoch never dies on one bad file. Drop unreadable images before training (the crop cache leaves them out;
:func:`affect_data.cache.unreadable_images` finds them for training from the files); an image that still
fails to decode mid-epoch (deleted or damaged since) is served, with ``unreadable="mask"`` (the default), as a
blank image whose masks are all False, so that it adds nothing to any loss or metric. It is warned about
once per file and counted in ``dataset.unreadable_images`` (per process: a DataLoader worker counts its own).
``unreadable="raise"`` raises the ``OSError`` naming the file instead.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from affect_data.cache import FrameCache
from affect_data.schema import TASK_COLUMNS
from affect_data.splits import video_runs
from affect_data.transforms import IMAGENET_MEAN, IMAGENET_STD, FrameTransform, load_image

Normalize = tuple[Sequence[float], Sequence[float]] | None


class _FrameTableDataset(Dataset):
    """What both datasets share: the table, the view transform, label tensors and the pixel source."""

    def __init__(
        self,
        table: pd.DataFrame,
        task_names: Sequence[str],
        train: bool,
        size: int,
        normalize: Normalize,
        cache: FrameCache | None,
        return_index: bool,
        unreadable: Literal["mask", "raise"],
    ) -> None:
        if unreadable not in ("mask", "raise"):
            raise ValueError(f"unreadable must be 'mask' or 'raise', got {unreadable!r}")
        self.table = table
        self.task_names = _check_tasks(task_names, table)
        self.transform = FrameTransform(size=size, train=train, normalize=normalize)
        self.return_index = return_index
        self.cache = cache
        self.unreadable = unreadable
        #: Image path -> error, for the images this process failed to decode (served masked).
        self.unreadable_images: dict[str, str] = {}
        self._paths = _image_paths(table) if cache is None else None
        self._cache_rows = _cache_rows(cache, table, self.transform.input_size)
        self._labels = {task: task_label_tensors(table, task) for task in self.task_names}
        self._row_ids = _row_ids(table) if return_index else None

    def _decode(self, position: int) -> np.ndarray | None:
        """The resized pixels of table row ``position`` from its file; None when it cannot be read."""
        path = self._paths[position]
        try:
            return load_image(path, self.transform.input_size)
        except OSError as err:
            if self.unreadable == "raise":
                raise
            if path not in self.unreadable_images:
                self.unreadable_images[path] = str(err)
                warnings.warn(
                    f"{err}; served as a blank image with every mask False (dataset.unreadable_images); "
                    "drop such rows before training (affect_data.cache.unreadable_images)",
                    stacklevel=3,
                )
            return None

    def _blank(self) -> np.ndarray:
        side = self.transform.input_size
        return np.zeros((side, side, 3), dtype=np.uint8)


class FrameDataset(_FrameTableDataset):
    """One face crop per item, with the labels of the requested tasks and their masks.

    Parameters
    ----------
    table : pandas.DataFrame
        A frame table (``path`` and the label columns of ``task_names``). It is kept as ``dataset.table``,
        not copied or modified; item ``i`` is its ``i``-th row.
    task_names : sequence of {"AU", "EXPR", "VA"}
        Tasks whose targets and masks each item carries.
    train : bool, default True
        Random crop and flip per sample and call (training) or the center crop (evaluation).
    size : int, default 112
        Side of the output crop; images are first resized to ``round(1.2 * size)``.
    normalize : (mean, std) or None, default ImageNet statistics
        Per-channel normalisation on the [0, 1] scale; None keeps [0, 1].
    cache : FrameCache, optional
        Serve pixels from this cache (its size must be ``round(1.2 * size)``; every image of the table must
        be in it).
    return_index : bool, default False
        Append the row's label in ``table.index`` (int64 tensor) to each item, so that a trainer can look up
        per-sample data such as cached teacher outputs.
    unreadable : {"mask", "raise"}, default "mask"
        An image file that fails to decode: served blank with every mask False, warned about and counted in
        ``unreadable_images`` (see the module docstring), or the ``OSError`` naming the file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "0.png"
    >>> Image.new("RGB", (134, 134)).save(path)
    >>> table = pd.DataFrame({"path": [str(path)], "expr": pd.array([4], dtype="Int8")})
    >>> image, targets, masks = FrameDataset(table, task_names=["EXPR"])[0]
    >>> tuple(image.shape), targets["EXPR"].item(), masks["EXPR"].item()
    ((3, 112, 112), 4, True)
    """

    def __init__(
        self,
        table: pd.DataFrame,
        task_names: Sequence[str] = ("AU", "EXPR", "VA"),
        train: bool = True,
        size: int = 112,
        normalize: Normalize = (IMAGENET_MEAN, IMAGENET_STD),
        cache: FrameCache | None = None,
        return_index: bool = False,
        unreadable: Literal["mask", "raise"] = "mask",
    ) -> None:
        super().__init__(table, task_names, train, size, normalize, cache, return_index, unreadable)

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, i: int):
        readable = True
        if self.cache is not None:
            pixels = self.cache[self._cache_rows[i]]
        else:
            pixels = self._decode(i)
            if pixels is None:
                pixels, readable = self._blank(), False
        image = self.transform(pixels)
        # Indexing tensors made once is several times cheaper than building new ones per item; the items are
        # views of the dataset's label tensors, so treat them as read-only (collated batches are copies).
        targets = {task: values[i] for task, (values, _) in self._labels.items()}
        if readable:
            masks = {task: mask[i] for task, (_, mask) in self._labels.items()}
        else:
            masks = {task: torch.zeros((), dtype=torch.bool) for task in self._labels}
        if self.return_index:
            return image, targets, masks, self._row_ids[i]
        return image, targets, masks


class SequenceDataset(_FrameTableDataset):
    """Clips of ``length`` consecutive frames of one video per item, for temporal models.

    Rows are grouped by ``(dataset, video)`` and ordered by ``frame``; "consecutive" means consecutive rows
    (Aff-Wild2 has no image for frames without a detected face, and those are skipped, not padded). Windows
    start at frame positions ``0, stride, 2 * stride, ...`` of each video until one reaches its last frame
    (with ``stride > length``, until the next start would lie past it: no clip is padding alone). A
    window that runs past the end (and every window of a video shorter than ``length``) is padded by repeating
    the last frame; padded frames have all masks False, so they never count in a loss or metric, and their
    index entry repeats the last frame's row (the image they show). The whole clip shares one random crop and
    flip: a clip is one view of the scene.

    Parameters
    ----------
    table : pandas.DataFrame
        A frame table with ``dataset, video, frame, path`` and the label columns of ``task_names``.
    length : int, default 16
        Frames per clip (the paper's CNN-GRU used 8, 16 and 32).
    stride : int, optional
        Step between window starts; defaults to ``length`` (non-overlapping); ``stride > length`` skips
        frames.
    task_names, train, size, normalize, cache, return_index, unreadable
        As for :class:`FrameDataset`; items carry ``[L]`` masks, ``[L, ...]`` targets and ``[L]`` row labels.
        An unreadable frame is blank with its masks False; the clip's other frames are served as usual.

    Attributes
    ----------
    positions : numpy.ndarray of shape (n_clips, length)
        Table positions (``iloc``) of each clip's frames, padding included.
    valid : numpy.ndarray of shape (n_clips, length)
        False on padded frames.

    Examples
    --------
    >>> table = pd.DataFrame({"dataset": "d", "video": ["a"] * 5, "frame": range(5), "path": "unused.jpg"})
    >>> clips = SequenceDataset(table, length=4, task_names=[])
    >>> clips.positions.tolist(), clips.valid.sum(axis=1).tolist()
    ([[0, 1, 2, 3], [4, 4, 4, 4]], [4, 1])
    """

    def __init__(
        self,
        table: pd.DataFrame,
        length: int = 16,
        stride: int | None = None,
        task_names: Sequence[str] = ("AU", "EXPR", "VA"),
        train: bool = True,
        size: int = 112,
        normalize: Normalize = (IMAGENET_MEAN, IMAGENET_STD),
        cache: FrameCache | None = None,
        return_index: bool = False,
        unreadable: Literal["mask", "raise"] = "mask",
    ) -> None:
        stride = length if stride is None else stride
        if length < 1 or stride < 1:
            raise ValueError(f"length and stride must be positive, got length={length}, stride={stride}")
        missing = [c for c in ("dataset", "video", "frame") if c not in table.columns]
        if missing:
            raise ValueError(f"SequenceDataset: table lacks column(s) {missing}")
        super().__init__(table, task_names, train, size, normalize, cache, return_index, unreadable)
        self.length, self.stride = length, stride
        self.positions, self.valid = _windows(table, length, stride)

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int):
        positions, valid = self.positions[i], self.valid[i]
        if self.cache is not None:
            pixels = self.cache[self._cache_rows[positions]]
        else:
            # Padding repeats the last frame: decode each distinct frame once.
            unique, inverse = np.unique(positions, return_inverse=True)
            decoded = [self._decode(p) for p in unique]
            readable = np.array([frame is not None for frame in decoded])
            blank = self._blank()
            pixels = np.stack([blank if frame is None else frame for frame in decoded])[inverse]
            valid = valid & readable[inverse]
        valid = torch.from_numpy(valid)
        images = self.transform(pixels)
        index = torch.from_numpy(positions)
        targets = {task: values[index] for task, (values, _) in self._labels.items()}
        masks = {task: mask[index] & valid for task, (_, mask) in self._labels.items()}
        if self.return_index:
            return images, targets, masks, self._row_ids[index]
        return images, targets, masks


def _windows(table: pd.DataFrame, length: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Clip windows as table positions ``[n_clips, length]`` (edge-padded) and their validity."""
    order, starts, counts = video_runs(table)
    if len(order) == 0:
        return np.zeros((0, length), dtype=np.int64), np.zeros((0, length), dtype=bool)
    # Windows start at 0, stride, 2 * stride, ... until one reaches the last frame:
    # ceil((n - length) / stride) + 1 of them, but with stride > length none may start past the last frame,
    # so at most ceil(n / stride).
    n_windows = np.minimum(np.maximum(-(-(counts - length) // stride), 0) + 1, -(-counts // stride))
    video = np.repeat(np.arange(len(starts)), n_windows)
    window_in_video = np.arange(n_windows.sum()) - np.repeat(np.cumsum(n_windows) - n_windows, n_windows)
    offset = window_in_video[:, None] * stride + np.arange(length)[None, :]
    valid = offset < counts[video][:, None]
    sorted_position = starts[video][:, None] + np.minimum(offset, counts[video][:, None] - 1)
    return order[sorted_position].astype(np.int64), valid


def _check_tasks(task_names: Sequence[str], table: pd.DataFrame) -> tuple[str, ...]:
    names = tuple(task_names)
    for task in names:
        if task not in TASK_COLUMNS:
            raise ValueError(f"unknown task {task!r}; expected names from {sorted(TASK_COLUMNS)}")
        absent = [c for c in TASK_COLUMNS[task] if c not in table.columns]
        if absent:
            raise ValueError(f"task {task!r} needs column(s) {absent}, which the table lacks")
    if "path" not in table.columns:
        raise ValueError("the table has no 'path' column")
    return names


def task_label_tensors(table: pd.DataFrame, task: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One task's targets for every row of a frame table, as the datasets serve them.

    Returns the targets with 0 where missing (AU: float32 [n, 8]; EXPR: int64 [n]; VA: float32 [n, 2]) and
    the bool mask [n] of rows that hold the task's complete label.

    Examples
    --------
    >>> table = pd.DataFrame({"expr": pd.array([4, None], dtype="Int8")})
    >>> targets, mask = task_label_tensors(table, "EXPR")
    >>> targets.tolist(), mask.tolist()
    ([4, 0], [True, False])
    """
    values = table[list(TASK_COLUMNS[task])].to_numpy(dtype=np.float64, na_value=np.nan)
    mask = torch.from_numpy(~np.isnan(values).any(axis=1))
    values = np.nan_to_num(values, nan=0.0)
    if task == "EXPR":
        return torch.from_numpy(values[:, 0].astype(np.int64)), mask
    return torch.from_numpy(values.astype(np.float32)), mask


def _image_paths(table: pd.DataFrame) -> np.ndarray:
    return table["path"].astype(str).to_numpy()


def _row_ids(table: pd.DataFrame) -> torch.Tensor:
    if not pd.api.types.is_integer_dtype(table.index):
        raise ValueError(f"return_index needs an integer table index, got dtype {table.index.dtype}")
    return torch.from_numpy(table.index.to_numpy(dtype=np.int64).copy())


def _cache_rows(cache: FrameCache | None, table: pd.DataFrame, input_size: int) -> np.ndarray | None:
    if cache is None:
        return None
    if cache.size != input_size:
        raise ValueError(
            f"the crop cache {cache.folder} holds {cache.size} px images, but {input_size} px crops are "
            f"resized before cropping; build it with size={input_size}"
        )
    return cache.rows_for(table)
