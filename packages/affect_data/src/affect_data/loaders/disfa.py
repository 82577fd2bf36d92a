"""DISFA: per-subject, per-AU intensity files, and face images aligned by the user (OpenFace layout default).

Layout::

    root/ActionUnit_Labels/SN001/SN001_au1.txt     lines "frame,intensity", frames 1-based, intensity 0..5
    root/LeftVideoSN001_comp/LeftVideoSN001_comp_aligned/frame_det_00_000001.bmp   (image_pattern default)

DISFA ships raw videos only, so the face images are whatever the user's aligner wrote; ``image_pattern``
describes where. The 12 annotated AUs are all read and checked; the 8 shared with Aff-Wild2 are kept.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from affect_data.loaders._io import (
    AnnotationError,
    check_values,
    inside,
    list_folder,
    parse_numeric,
    read_annotation,
    resolved_root,
    warn_empty,
)
from affect_data.loaders.report import MISSING_IMAGE, OUTSIDE_ROOT, LoadReport, finish_table
from affect_data.schema import AU_NAMES

DATASET = "disfa"

#: The AUs DISFA annotates, in file-name numbering (``SN001_au<n>.txt``).
DISFA_AUS: tuple[int, ...] = (1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26)

#: OpenFace's aligned frames of the left camera video; ``{subject}`` is e.g. "SN001", ``{frame}`` 1-based.
OPENFACE_PATTERN = "LeftVideo{subject}_comp/LeftVideo{subject}_comp_aligned/frame_det_00_{frame:06d}.bmp"


def load_disfa(
    root: str | os.PathLike,
    *,
    threshold: int = 2,
    image_pattern: str = OPENFACE_PATTERN,
    image_root: str | os.PathLike | None = None,
    check_images: bool = True,
) -> pd.DataFrame:
    """Load DISFA's AU labels into a frame table: the 8 shared AUs, present when intensity >= ``threshold``.

    Every subject folder under ``ActionUnit_Labels`` is read (the frame count comes from the files, never a
    constant); its 12 AU files must hold the same frames 1..n in order. ``video`` and ``subject`` are the
    subject id (``SN001``), ``frame`` is 0-based, ``split`` is "train". Frames whose image is missing, and
    subjects whose image folder resolves (symlinks followed) outside ``image_root``, are dropped and counted
    in ``table.attrs["report"]`` (``missing_image``, ``outside_root``).

    Parameters
    ----------
    root : path
        The DISFA folder holding ``ActionUnit_Labels/``.
    threshold : int
        Smallest intensity (1..5) that counts as the AU being present.
    image_pattern : str
        Image path relative to ``image_root``, a :meth:`str.format` pattern with ``{subject}`` and the
        1-based ``{frame}``, that stays below ``image_root`` (no absolute path, no leading ``..``). The
        default is OpenFace's aligned-frame layout for the left camera.
    image_root : path, optional
        Where ``image_pattern`` starts; default ``root``.
    check_images : bool
        List each image folder once and drop frames without an image.

    Returns
    -------
    pandas.DataFrame
        The frame table, ``dataset == "disfa"``, with AU labels only.

    Raises
    ------
    AnnotationError
        A label file with a wrong column count, a non-numeric or out-of-range value, frame numbers out of
        sequence, or a frame count different from the subject's other AU files (file and line named).
    FileNotFoundError
        A missing ``ActionUnit_Labels`` folder, AU file, or image folder.

    Examples
    --------
    >>> from affect_data import load_disfa
    >>> table = load_disfa("corpus/disfa", threshold=3)  # doctest: +SKIP
    """
    if not (isinstance(threshold, int | np.integer) and 1 <= threshold <= 5):
        raise ValueError(f"threshold must be an integer intensity in 1..5, got {threshold!r}")
    try:
        example = image_pattern.format(subject="SN001", frame=1)
    except (KeyError, IndexError, ValueError) as err:
        raise ValueError(
            f"image_pattern {image_pattern!r} must be a str.format pattern using only {{subject}} and "
            f"{{frame}}: {type(err).__name__} {err}"
        ) from None
    if os.path.isabs(example) or os.path.normpath(example).split(os.sep)[0] == "..":
        raise ValueError(
            f"image_pattern {image_pattern!r} leaves image_root ({example!r}); pass image_root= the folder "
            "that holds the images and a pattern relative to it"
        )
    root = Path(root)
    labels_dir = root / "ActionUnit_Labels"
    if not labels_dir.is_dir():
        raise FileNotFoundError(f"DISFA label folder {labels_dir} does not exist")
    image_root = (Path(image_root) if image_root is not None else root).absolute()
    subjects = sorted(entry.name for entry in labels_dir.iterdir() if entry.is_dir())
    if not subjects:
        raise FileNotFoundError(f"DISFA label folder {labels_dir} holds no subject folder")

    report = LoadReport(DATASET)
    root_resolved = resolved_root(image_root)
    parts = []
    for subject in subjects:
        present = _read_subject(labels_dir / subject, subject, threshold)
        report.read(len(present))
        paths = np.array(
            [
                str(image_root / image_pattern.format(subject=subject, frame=k + 1))
                for k in range(len(present))
            ],
            dtype=object,
        )
        # Subject names come from folder names and the pattern is checked above; a symlinked image folder
        # can still lead elsewhere: check each folder once, not each frame.
        confined = _confined(paths, root_resolved)
        outside = np.flatnonzero(~confined)
        report.skip(
            OUTSIDE_ROOT, outside.size, example=f"{subject}: {paths[outside[0]]}" if outside.size else None
        )
        keep = confined.copy()
        if check_images:
            keep[confined] = _existing(paths[confined], subject)
        missing = np.flatnonzero(confined & ~keep)
        report.skip(
            MISSING_IMAGE, missing.size, example=f"{subject} frame {missing[0] + 1}" if missing.size else None
        )
        columns = {"frame": np.flatnonzero(keep), "path": paths[keep], "subject": subject}
        columns.update({name: present[keep, i] for i, name in enumerate(AU_NAMES)})
        parts.append(pd.DataFrame(columns))
    table = pd.concat(parts, ignore_index=True)
    return finish_table(table.assign(video=table["subject"]), report, split="train")


def _read_subject(folder: Path, subject: str, threshold: int) -> np.ndarray:
    """The (frames, 8) 0/1 presence array of one subject, after checking all 12 AU files."""
    wanted = {int(name[2:]): i for i, name in enumerate(AU_NAMES)}
    present = None
    first_path = None
    for au in DISFA_AUS:
        path = folder / f"{subject}_au{au}.txt"
        if not path.is_file():
            raise FileNotFoundError(f"DISFA AU file {path} does not exist (each subject has AUs {DISFA_AUS})")
        values = parse_numeric(path, read_annotation(path), 2, first_line=1)
        if present is None:
            present = np.zeros((len(values), len(AU_NAMES)), dtype=np.int8)
            first_path = path
        elif len(values) != len(present):
            raise AnnotationError(
                path, f"holds {len(values)} frames but {first_path.name} holds {len(present)}"
            )
        expected = np.arange(1, len(values) + 1)
        check_values(
            path,
            values,
            np.column_stack([values[:, 0] == expected, _is_intensity(values[:, 1])]),
            ["frame", "intensity"],
            first_line=1,
            allowed="frames numbered 1, 2, ... in order, intensities 0..5",
        )
        if au in wanted:
            present[:, wanted[au]] = values[:, 1] >= threshold
    if not len(present):
        warn_empty(folder, "frame in its AU files")
    return present


def _is_intensity(values: np.ndarray) -> np.ndarray:
    return (values >= 0) & (values <= 5) & (values == np.round(values))


def _confined(paths: np.ndarray, root: str) -> np.ndarray:
    """Whether each path's folder resolves to ``root`` or below it; one ``realpath`` per folder."""
    verdicts: dict[str, bool] = {}
    confined = np.zeros(len(paths), dtype=bool)
    for i, path in enumerate(paths):
        folder = os.path.dirname(path)
        verdict = verdicts.get(folder)
        if verdict is None:
            resolved = os.path.realpath(folder)
            verdict = verdicts[folder] = resolved == root or inside(resolved, root)
        confined[i] = verdict
    return confined


def _existing(paths: np.ndarray, subject: str) -> np.ndarray:
    """Whether each path exists, listing each parent folder once instead of a stat per frame."""
    folders: dict[str, set[str]] = {}
    exists = np.zeros(len(paths), dtype=bool)
    for i, path in enumerate(paths):
        folder, _, name = path.rpartition(os.sep)
        names = folders.get(folder)
        if names is None:
            if not os.path.isdir(folder):
                raise FileNotFoundError(
                    f"DISFA image folder {folder} for {subject} does not exist "
                    "(check image_pattern and image_root)"
                )
            names = folders[folder] = set(list_folder(Path(folder)))
        exists[i] = name in names
    return exists
