"""Aff-Wild2 as distributed for the ABAW challenges: per-video label files and cropped-aligned face images.

Layout (ABAW 2020, the default)::

    root/annotations/AU_Set/Training_Set/<video>.txt      header AU1,AU2,AU4,AU6,AU12,AU15,AU20,AU25
    root/annotations/EXPR_Set/Validation_Set/<video>.txt  header Neutral,Anger,...,Surprise
    root/annotations/VA_Set/...                           header valence,arousal
    root/cropped_aligned/<video>/00001.jpg                label line k after the header -> image k (1-based)

Later ABAW releases (``layout="abaw2022"``) name the task folders ``AU_Detection_Challenge``,
``EXPR_Classification_Challenge``, ``VA_Estimation_Challenge`` and the split folders ``Train_Set`` /
``Validation_Set``, annotate 12 AUs (1, 2, 4, 6, 7, 10, 12, 15, 23, 24, 25, 26: seven of the eight shared
AUs, so ``AU20`` is missing in their rows) and add an 8th expression ``Other``.
The header of each file decides how it is read, so either header works under either layout.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from affect_data.loaders._io import (
    AnnotationError,
    check_values,
    excerpt,
    inside,
    list_folder,
    parse_numeric,
    read_annotation,
    resolved_root,
    split_header,
    warn_empty,
)
from affect_data.loaders.report import (
    MISSING_IMAGE,
    NOT_ANNOTATED,
    OTHER_CLASS,
    OUTSIDE_ROOT,
    LoadReport,
    finish_table,
)
from affect_data.schema import AU_NAMES, DTYPES, EXPR_NAMES, TASK_COLUMNS, VA_NAMES

DATASET = "aff_wild2"

#: The AUs of the ABAW 2021+ releases; the 8 of :data:`~affect_data.schema.AU_NAMES` are a subset.
AU_NAMES_12: tuple[str, ...] = tuple(f"AU{n}" for n in (1, 2, 4, 6, 7, 10, 12, 15, 23, 24, 25, 26))
#: The expression header of the ABAW 2022+ releases: the 7 shared classes, then ``Other`` (class 7).
EXPR_NAMES_8: tuple[str, ...] = (*EXPR_NAMES, "Other")

#: Accepted headers per task (any layout), and the sentinel that marks a row as not annotated.
HEADERS: dict[str, tuple[tuple[str, ...], ...]] = {
    "AU": (AU_NAMES, AU_NAMES_12),
    "EXPR": (EXPR_NAMES, EXPR_NAMES_8),
    "VA": (VA_NAMES,),
}
SENTINEL: dict[str, float] = {"AU": -1.0, "EXPR": -1.0, "VA": -5.0}

#: The frame number recorded for a crop whose file name is a number too large for int64.
_PAST_ANY_LINE = 2**62


@dataclass(frozen=True)
class Layout:
    """Folder names of one ABAW release: a task folder per task, a split folder per frame-table split."""

    tasks: dict[str, str]
    splits: dict[str, str]


LAYOUTS: dict[str, Layout] = {
    "abaw2020": Layout(
        tasks={"AU": "AU_Set", "EXPR": "EXPR_Set", "VA": "VA_Set"},
        splits={"train": "Training_Set", "validation": "Validation_Set"},
    ),
    "abaw2022": Layout(
        tasks={
            "AU": "AU_Detection_Challenge",
            "EXPR": "EXPR_Classification_Challenge",
            "VA": "VA_Estimation_Challenge",
        },
        splits={"train": "Train_Set", "validation": "Validation_Set"},
    ),
}


def load_aff_wild2(
    root: str | os.PathLike,
    *,
    tasks: Iterable[str] = ("AU", "EXPR", "VA"),
    splits: Iterable[str] = ("train", "validation"),
    layout: Literal["abaw2020", "abaw2022"] = "abaw2020",
    annotations_dir: str | os.PathLike | None = None,
    images_dir: str | os.PathLike | None = None,
    check_images: bool = True,
    merge_tasks: bool = False,
    extra_images: Literal["error", "ignore"] = "error",
) -> pd.DataFrame:
    """Load Aff-Wild2's task sets into a frame table, one row per (task set, video, frame) by default.

    Each task set is its own group of rows, as in the paper: a row of the AU set carries the 8 AU labels and
    leaves ``expr``, ``valence``, ``arousal`` missing, and so on. A frame annotated for two tasks therefore
    appears twice (once per task set) unless ``merge_tasks=True``.

    ``frame`` is the 0-based index of the label line after the header; its image is
    ``<images_dir>/<video>/<frame + 1:05d>.jpg``. Rows are dropped, and counted in the report attached as
    ``table.attrs["report"]``, when the file marks them as not annotated (any kept AU ``-1``, expression
    ``-1``, valence or arousal ``-5``), when the expression is ``Other`` (ABAW 2022+), or when their image
    does not exist (no face was detected in that frame). ``subject`` is the video name (``_left`` /
    ``_right`` name two people in one video and stay in the name). Rows come from the label files only: a
    crop folder with no label file (a video of the ABAW test set, whose labels are withheld) is never read.

    Parameters
    ----------
    root : path
        The Aff-Wild2 folder holding ``annotations/`` and ``cropped_aligned/``.
    tasks : iterable of {"AU", "EXPR", "VA"}
        Task sets to read.
    splits : iterable of {"train", "validation"}
        Splits to read (``Training_Set``/``Train_Set`` is "train").
    layout : {"abaw2020", "abaw2022"}
        Folder naming of the release.
    annotations_dir, images_dir : path, optional
        Where the task folders and the per-video crop folders are; default ``root/annotations`` and
        ``root/cropped_aligned``.
    check_images : bool
        List each crop folder once and drop rows without an image. ``False`` skips the check (and needs no
        images at all), e.g. to study the annotations alone.
    merge_tasks : bool
        Merge the rows of one (video, frame, split) across task sets into a single row carrying every label
        it has.
    extra_images : {"error", "ignore"}
        What to do when a crop folder holds images numbered beyond the last label line (a label file
        shorter than its image list, so lines and images may not correspond): raise, or ignore the
        unlabelled images (counted in ``report.ignored``).

    Returns
    -------
    pandas.DataFrame
        The frame table (see :mod:`affect_data.schema`), ``dataset == "aff_wild2"``.

    Raises
    ------
    AnnotationError
        A label file with a wrong header, column count, non-numeric or out-of-range value (file and line
        named), or shorter than its image list when ``extra_images="error"``.
    FileNotFoundError
        A missing task, split or crop folder.

    Examples
    --------
    >>> from affect_data import load_aff_wild2
    >>> table = load_aff_wild2("corpus/aff_wild2", tasks=["EXPR"])  # doctest: +SKIP
    >>> table.attrs["report"].count("missing_image")  # doctest: +SKIP
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {sorted(LAYOUTS)}, got {layout!r}")
    if extra_images not in ("error", "ignore"):
        raise ValueError(f"extra_images must be 'error' or 'ignore', got {extra_images!r}")
    tasks = _checked(tasks, tuple(TASK_COLUMNS), "tasks")
    splits = _checked(splits, tuple(LAYOUTS[layout].splits), "splits")
    root = Path(root)
    annotations = Path(annotations_dir) if annotations_dir is not None else root / "annotations"
    images = Path(images_dir) if images_dir is not None else root / "cropped_aligned"
    if check_images and not images.is_dir():
        raise FileNotFoundError(f"Aff-Wild2 crop folder {images} does not exist (pass images_dir=...)")

    report = LoadReport(DATASET)
    reader = _Reader(images, check_images, extra_images, report)
    blocks = []
    for task in tasks:
        for split in splits:
            folder = annotations / LAYOUTS[layout].tasks[task] / LAYOUTS[layout].splits[split]
            if not folder.is_dir():
                raise FileNotFoundError(
                    f"Aff-Wild2 annotation folder {folder} does not exist{_hint(annotations, layout)}"
                )
            blocks.extend((split, reader.read(path, task)) for path in sorted(folder.glob("*.txt")))
    table = _assemble(blocks, images)
    if merge_tasks:
        table = _merge_task_rows(table)
    return finish_table(table, report)


def _checked(values: Iterable[str], allowed: tuple[str, ...], name: str) -> tuple[str, ...]:
    values = tuple(values)
    unknown = [v for v in values if v not in allowed]
    if unknown or not values:
        raise ValueError(f"{name} must be a non-empty subset of {list(allowed)}, got {list(values)}")
    return tuple(dict.fromkeys(values))


def _hint(annotations: Path, requested: str) -> str:
    """Suggest another layout when its folders are the ones present."""
    for name, layout in LAYOUTS.items():
        if name != requested and any((annotations / folder).is_dir() for folder in layout.tasks.values()):
            return f"; {annotations} looks like layout={name!r}"
    return ""


@dataclass
class _Block:
    """The kept rows of one label file: frame indices and their label columns."""

    video: str
    task: str
    frames: np.ndarray
    labels: np.ndarray


class _Reader:
    """Reads label files one by one, sharing the image listing of each video across task sets."""

    def __init__(self, images: Path, check_images: bool, extra_images: str, report: LoadReport) -> None:
        self.images = images
        self.check_images = check_images
        self.extra_images = extra_images
        self.report = report
        self._listings: dict[str, np.ndarray] = {}
        self._unlabelled_counted: set[str] = set()
        self._root = resolved_root(images)

    def read(self, path: Path, task: str) -> _Block:
        header, body = split_header(read_annotation(path))
        if tuple(header) not in HEADERS[task]:
            expected = " or ".join(",".join(h) for h in HEADERS[task])
            found = excerpt(",".join(header))
            raise AnnotationError(path, f"header {found} is not the {task} header {expected}", 1)
        # An EXPR line holds one class index; the header names the classes, not the columns.
        n_columns = 1 if task == "EXPR" else len(header)
        values = parse_numeric(path, body, n_columns, first_line=2)
        if not len(values):
            warn_empty(path, "label line after its header")
        _check_range(path, task, header, values)
        labels = values if task == "EXPR" else _table_columns(values, header, TASK_COLUMNS[task])
        video = path.stem
        self.report.read(len(values))
        if not inside(self.images / video, self._root):
            # A label file called "...txt" names video "..": its frames would be read from above the crops.
            self.report.skip(OUTSIDE_ROOT, len(values), scope=task, example=f"{path.name}: video {video!r}")
            return _Block(video, task, np.empty(0, dtype=np.int64), labels[:0])

        keep = ~(labels == SENTINEL[task]).any(axis=1)  # NaN (an AU the file lacks) is not a sentinel
        self.report.skip(NOT_ANNOTATED, int((~keep).sum()), scope=task, example=_where(path, keep))
        if task == "EXPR":
            other = keep & (labels[:, 0] == EXPR_NAMES_8.index("Other"))
            self.report.skip(OTHER_CLASS, int(other.sum()), scope=task, example=_where(path, ~other))
            keep &= ~other
        if self.check_images:
            has_image = self._has_image(path, video, len(values))
            missing = keep & ~has_image
            self.report.skip(MISSING_IMAGE, int(missing.sum()), scope=task, example=_where(path, ~missing))
            keep &= has_image
        frames = np.flatnonzero(keep)
        return _Block(video, task, frames, labels[frames])

    def _has_image(self, path: Path, video: str, n_lines: int) -> np.ndarray:
        """Whether label line k (0-based) has its image ``<k + 1:05d>.jpg``; one folder scan per video."""
        numbers = self._listings.get(video)
        if numbers is None:
            folder = self.images / video
            if not folder.is_dir():
                raise FileNotFoundError(f"crop folder {folder} for label file {path} does not exist")
            # A number too large for int64 is past any label file: it is stored as the largest one.
            numbers = np.array(
                [min(number, _PAST_ANY_LINE) for number in _frame_numbers(list_folder(folder)).values()],
                dtype=np.int64,
            )
            self._listings[video] = numbers
        beyond = numbers[numbers > n_lines]
        if beyond.size:
            if self.extra_images == "error":
                # The file's own name (not the int64 stored for it): list the folder again, on this path only.
                found = _frame_numbers(list_folder(self.images / video))
                first = min((name for name, k in found.items() if k > n_lines), key=found.__getitem__)
                raise AnnotationError(
                    path,
                    f"label file has {n_lines} label lines but {self.images / video} holds {beyond.size} "
                    f"image(s) beyond them, the first {first}; lines and images may not correspond (pass "
                    "extra_images='ignore' to load it anyway)",
                )
            if video not in self._unlabelled_counted:  # once per video, not once per task set
                self._unlabelled_counted.add(video)
                self.report.ignore("images beyond the end of their label file", beyond.size)
        has = np.zeros(n_lines + 1, dtype=bool)
        has[numbers[(numbers >= 1) & (numbers <= n_lines)]] = True
        return has[1:]


def _frame_numbers(names: Iterable[str]) -> dict[str, int]:
    """Crop file name -> frame number, for the names ``<number>.jpg``. ASCII digits only: ``str.isdigit`` also
    accepts "²", which ``int`` refuses."""
    return {
        name: int(name[:-4])
        for name in names
        if name.endswith(".jpg") and name[:-4].isascii() and name[:-4].isdigit()
    }


def _table_columns(values: np.ndarray, header: list[str], names: tuple[str, ...]) -> np.ndarray:
    """The columns ``names`` of ``values``, in order; NaN for a name the header lacks (AU20, 12-AU files)."""
    out = np.full((len(values), len(names)), np.nan)
    for i, name in enumerate(names):
        if name in header:
            out[:, i] = values[:, header.index(name)]
    return out


def _check_range(path: Path, task: str, header: list[str], values: np.ndarray) -> None:
    sentinel = values == SENTINEL[task]
    if task == "VA":
        ok = sentinel | ((values >= -1.0) & (values <= 1.0))
        allowed = "a number in [-1, 1], or -5 (not annotated)"
    else:
        top = 1 if task == "AU" else len(header) - 1
        ok = sentinel | ((values >= 0) & (values <= top) & (values == np.round(values)))
        allowed = f"an integer 0..{top}, or -1 (not annotated)"
    if task == "EXPR":
        header = ["expression"]
    check_values(path, values, ok, header, first_line=2, allowed=allowed)


def _where(path: Path, keep: np.ndarray) -> str | None:
    """'file line N' for the first row that ``keep`` rejects, for report examples."""
    rejected = np.flatnonzero(~keep)
    return f"{path.name} line {int(rejected[0]) + 2}" if rejected.size else None


def _assemble(blocks: Sequence[tuple[str, _Block]], images: Path) -> pd.DataFrame:
    """Concatenate the blocks into the frame table's columns, building each once in its final dtype."""
    frames = np.concatenate([b.frames for _, b in blocks]) if blocks else np.empty(0, dtype=np.int64)
    lengths = [len(b.frames) for _, b in blocks]
    videos = np.repeat(np.array([b.video for _, b in blocks], dtype=object), lengths)
    splits = np.repeat(np.array([s for s, _ in blocks], dtype=object), lengths)
    # Formatting the number once per frame index, not once per row, halves the cost of the path column.
    file_names = [f"{k + 1:05d}.jpg" for k in range(int(frames.max(initial=-1)) + 1)]
    paths = []
    for _, block in blocks:
        prefix = f"{images.absolute() / block.video}{os.sep}"
        paths.extend([prefix + file_names[k] for k in block.frames.tolist()])
    columns: dict[str, object] = {
        "dataset": pd.array(np.full(len(frames), DATASET, dtype=object), dtype=DTYPES["dataset"]),
        "video": pd.array(videos, dtype=DTYPES["video"]),
        "frame": frames.astype(np.int64),
        "path": pd.array(np.array(paths, dtype=object), dtype=DTYPES["path"]),
        "subject": pd.array(videos, dtype=DTYPES["subject"]),
        "split": pd.array(splits, dtype=DTYPES["split"]),
    }
    for task, names in TASK_COLUMNS.items():
        parts = [
            b.labels if b.task == task else np.full((len(b.frames), len(names)), np.nan) for _, b in blocks
        ]
        stacked = np.concatenate(parts) if parts else np.empty((0, len(names)))
        for i, name in enumerate(names):
            column = stacked[:, i]
            if DTYPES[name] == "Int8":
                missing = np.isnan(column)
                columns[name] = pd.arrays.IntegerArray(np.where(missing, 0, column).astype(np.int8), missing)
            else:
                columns[name] = column.astype(DTYPES[name])
    return pd.DataFrame(columns, copy=False)


def _merge_task_rows(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (video, frame, split): the labels of every task set that annotates that frame."""
    keys = ["video", "frame", "split"]
    merged = table.groupby(keys, sort=False, as_index=False).first()
    return merged.sort_values(["split", "video", "frame"], kind="stable", ignore_index=True)
