"""The frame table: one row per face image, the common currency of every loader, recipe and dataset.

Columns, in this order: the metadata ``dataset, video, frame, path, subject, split``, then the labels
``AU1 AU2 AU4 AU6 AU12 AU15 AU20 AU25`` (0/1), ``expr`` (0..6, Aff-Wild2 order) and ``valence arousal``
(floats in [-1, 1]). A label that the source does not provide is missing (``pd.NA`` / NaN); sentinel values
such as -1 or -5 exist only in the files as distributed, never in a table. Loaders may append extra columns
(ExpW's ``confidence``, say) after these.
"""

from __future__ import annotations

import pandas as pd

AU_NAMES: tuple[str, ...] = ("AU1", "AU2", "AU4", "AU6", "AU12", "AU15", "AU20", "AU25")
EXPR_NAMES: tuple[str, ...] = ("Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise")
VA_NAMES: tuple[str, ...] = ("valence", "arousal")

META_COLUMNS: tuple[str, ...] = ("dataset", "video", "frame", "path", "subject", "split")
LABEL_COLUMNS: tuple[str, ...] = (*AU_NAMES, "expr", *VA_NAMES)
FRAME_TABLE_COLUMNS: tuple[str, ...] = (*META_COLUMNS, *LABEL_COLUMNS)

#: The label columns of each task, keyed by the task names used throughout the project.
TASK_COLUMNS: dict[str, tuple[str, ...]] = {"AU": AU_NAMES, "EXPR": ("expr",), "VA": VA_NAMES}

#: Values of the ``split`` column.
SPLITS: tuple[str, ...] = ("train", "validation", "test")

DTYPES: dict[str, str] = {
    "dataset": "string",
    "video": "string",
    "frame": "int64",
    "path": "string",
    "subject": "string",
    "split": "string",
    **dict.fromkeys(AU_NAMES, "Int8"),
    "expr": "Int8",
    "valence": "float32",
    "arousal": "float32",
}


def empty_frame_table() -> pd.DataFrame:
    """Return a frame table with no rows and the standard columns and dtypes."""
    return pd.DataFrame({name: pd.Series(dtype=DTYPES[name]) for name in FRAME_TABLE_COLUMNS})


def as_frame_table(df: pd.DataFrame) -> pd.DataFrame:
    """Return ``df`` with the standard columns first, in order, cast to the standard dtypes.

    Missing label columns are added as all-missing; extra columns are kept after the standard ones.

    Raises
    ------
    ValueError
        If a metadata column is absent, or a label value is outside its allowed set or range.
    """
    missing = [c for c in META_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"frame table lacks metadata column(s) {missing}; has {list(df.columns)}")
    out = df.copy()
    for name in LABEL_COLUMNS:
        if name not in out.columns:
            out[name] = pd.Series(None, index=out.index, dtype=DTYPES[name])
    for name in FRAME_TABLE_COLUMNS:
        try:
            out[name] = out[name].astype(DTYPES[name])
        except (TypeError, ValueError) as err:
            raise ValueError(f"frame table column {name!r} cannot be read as {DTYPES[name]}: {err}") from None
    validate_frame_table(out)
    extra = [c for c in out.columns if c not in FRAME_TABLE_COLUMNS]
    return out[[*FRAME_TABLE_COLUMNS, *extra]]


def validate_frame_table(df: pd.DataFrame) -> None:
    """Check label values: AUs in {0, 1}, expr in 0..6, valence and arousal in [-1, 1] (missing allowed).

    Raises
    ------
    ValueError
        Naming the column, the offending value and the first row (video, frame) that holds it.
    """
    checks = {name: lambda s: s.isin([0, 1]) for name in AU_NAMES}
    checks["expr"] = lambda s: s.between(0, len(EXPR_NAMES) - 1)
    checks["valence"] = checks["arousal"] = lambda s: s.between(-1.0, 1.0)
    for name, ok in checks.items():
        if name not in df.columns:
            continue
        values = df[name]
        present = values.notna()
        bad = present & ~ok(values).fillna(False).astype(bool)
        if bad.any():
            row = df.iloc[int(bad.to_numpy().argmax())]  # by position: the index may hold duplicates
            raise ValueError(
                f"frame table column {name!r} holds {row[name]} (video {row.get('video')}, "
                f"frame {row.get('frame')}); allowed: {_allowed(name)}"
            )


def _allowed(name: str) -> str:
    if name in AU_NAMES:
        return "0 or 1"
    if name == "expr":
        return f"0..{len(EXPR_NAMES) - 1}"
    return "[-1, 1]"
