"""Writers of the four data sets' on-disk formats (docs/design.md section 6.2), one function per file kind.

Each writer takes plain arrays and writes exactly what the real release holds, sentinels included; nothing
here draws random numbers, so what ends up on disk is decided entirely by the corpus plan.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from ..schema import AU_NAMES, EXPR_NAMES
from .labels import ALL_AU_NAMES

#: ABAW 2020 annotation folder of each task, and the header line of its files.
AFF_WILD2_SETS: dict[str, str] = {"AU": "AU_Set", "EXPR": "EXPR_Set", "VA": "VA_Set"}
AFF_WILD2_HEADERS: dict[str, str] = {
    "AU": ",".join(AU_NAMES),
    "EXPR": ",".join(EXPR_NAMES),
    "VA": "valence,arousal",
}
AFF_WILD2_SPLITS: dict[str, str] = {"train": "Training_Set", "validation": "Validation_Set"}

#: ExpW's class order: 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral.
#: ``TO_EXPW[aff_wild2_index]`` is the ExpW label; loaders map back with ``[1, 2, 3, 4, 5, 6, 0]``.
TO_EXPW: np.ndarray = np.array([6, 0, 1, 2, 3, 4, 5])

#: DISFA's AU numbers, in the order of ``ALL_AU_NAMES``.
DISFA_AUS: tuple[int, ...] = tuple(int(name[2:]) for name in ALL_AU_NAMES)

JPEG_QUALITY = 90


def aff_wild2_label_lines(task: str, values: np.ndarray, unannotated: np.ndarray) -> list[str]:
    """The lines of one Aff-Wild2 ABAW 2020 annotation file, header first.

    Parameters
    ----------
    task : {"AU", "EXPR", "VA"}
    values : array
        AU: (T, 8) 0/1; EXPR: (T,) class index; VA: (T, 2) floats in [-1, 1].
    unannotated : bool array
        AU: (T, 8), True where an AU is not annotated (-1); EXPR: (T,) (-1); VA: (T,) (both -5).
    """
    if task not in AFF_WILD2_HEADERS:
        raise ValueError(f"unknown Aff-Wild2 task {task!r}; expected one of {sorted(AFF_WILD2_HEADERS)}")
    if task == "AU":
        cells = np.where(unannotated, -1, values).astype(int)
        body = [",".join(map(str, row)) for row in cells.tolist()]
    elif task == "EXPR":
        body = [str(v) for v in np.where(unannotated, -1, values).astype(int).tolist()]
    else:  # VA
        body = [
            "-5,-5" if missing else f"{v:.3f},{a:.3f}"
            for (v, a), missing in zip(values.tolist(), unannotated.tolist(), strict=True)
        ]
    return [AFF_WILD2_HEADERS[task], *body]


def write_lines(path: Path, lines: list[str]) -> None:
    """Write text lines with Unix line ends, creating the parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def aff_wild2_image_path(root: Path, video: str, frame: int) -> Path:
    """``cropped_aligned/<video>/<frame + 1, 5 digits>.jpg``: images are numbered from 1."""
    return root / "cropped_aligned" / video / f"{frame + 1:05d}.jpg"


def disfa_label_files(root: Path, subject: str, levels: np.ndarray) -> None:
    """``ActionUnit_Labels/<SN>/<SN>_au<k>.txt`` for the 12 AUs: lines ``frame,intensity``, frames from 1."""
    folder = root / "ActionUnit_Labels" / subject
    frames = np.arange(1, len(levels) + 1)
    for column, au in enumerate(DISFA_AUS):
        lines = [f"{f},{v}" for f, v in zip(frames.tolist(), levels[:, column].tolist(), strict=True)]
        write_lines(folder / f"{subject}_au{au}.txt", lines)


def disfa_image_path(root: Path, subject: str, frame: int) -> Path:
    """OpenFace's aligned-frame layout for the left camera; ``frame`` is 0-based, the file name 1-based."""
    video = f"LeftVideo{subject}_comp"
    return root / video / f"{video}_aligned" / f"frame_det_00_{frame + 1:06d}.bmp"


def expw_label_line(
    image: str, face_id: int, box: tuple[int, int, int, int], confidence: float, expr: int
) -> str:
    """One ``label.lst`` line: ``image_name face_id top left right bottom confidence label`` (ExpW order).

    ``box`` is in PIL order (left, top, right, bottom); ``expr`` in Aff-Wild2 order.
    """
    left, top, right, bottom = box
    return f"{image} {face_id} {top} {left} {right} {bottom} {confidence:.4f} {int(TO_EXPW[expr])}"


def afew_va_json(clip: str, va: np.ndarray, landmarks: np.ndarray) -> str:
    """The ``NNN.json`` of an AFEW-VA clip: per frame, integer valence and arousal (-10..10), 68 landmarks."""
    scores = np.clip(np.rint(np.asarray(va) * 10.0), -10, 10).astype(int).tolist()
    points = np.round(np.asarray(landmarks, dtype=float), 3).tolist()
    frames = {
        f"{k:05d}": {"valence": v, "arousal": a, "landmarks": marks}
        for k, ((v, a), marks) in enumerate(zip(scores, points, strict=True))
    }
    return json.dumps({"frames": frames, "video_id": clip})


def save_image(path: Path, pixels: np.ndarray) -> None:
    """Save an RGB uint8 array; the format follows the suffix (jpg at ``JPEG_QUALITY``, png, bmp)."""
    image = Image.fromarray(pixels)
    if path.suffix == ".jpg":
        image.save(path, quality=JPEG_QUALITY)
    else:
        image.save(path)
