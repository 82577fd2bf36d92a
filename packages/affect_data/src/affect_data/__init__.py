"""Aff-Wild2, DISFA, ExpW and AFEW-VA as distributed, the FG 2020 merging recipes, ABAW metrics, and a
synthetic affect corpus written in the same formats.

Every loader returns a *frame table*: a pandas DataFrame with one row per face image (see
:mod:`affect_data.schema`), missing labels as NA, and a :class:`LoadReport` in ``table.attrs["report"]``.
"""

from affect_data.loaders import (
    AnnotationError,
    LoadReport,
    load_afew_va,
    load_aff_wild2,
    load_disfa,
    load_expw,
)
from affect_data.schema import (
    AU_NAMES,
    DTYPES,
    EXPR_NAMES,
    FRAME_TABLE_COLUMNS,
    LABEL_COLUMNS,
    META_COLUMNS,
    SPLITS,
    TASK_COLUMNS,
    VA_NAMES,
    as_frame_table,
    empty_frame_table,
    validate_frame_table,
)

__version__ = "0.1.0"

__all__ = [
    "AU_NAMES",
    "DTYPES",
    "EXPR_NAMES",
    "FRAME_TABLE_COLUMNS",
    "LABEL_COLUMNS",
    "META_COLUMNS",
    "SPLITS",
    "TASK_COLUMNS",
    "VA_NAMES",
    "AnnotationError",
    "LoadReport",
    "as_frame_table",
    "empty_frame_table",
    "load_afew_va",
    "load_aff_wild2",
    "load_disfa",
    "load_expw",
    "validate_frame_table",
]
