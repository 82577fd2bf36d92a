"""Aff-Wild2, DISFA, ExpW and AFEW-VA as distributed, the FG 2020 merging recipes, ABAW metrics, and a
synthetic affect corpus written in the same formats.

Every loader returns a *frame table*: a pandas DataFrame with one row per face image (see
:mod:`affect_data.schema`), missing labels as NA, and a :class:`LoadReport` in ``table.attrs["report"]``.

The torch side (``affect_data.datasets``: FrameDataset, SequenceDataset; ``affect_data.cache``: the memory-
mapped crop cache) is imported from its modules so that ``import affect_data`` stays free of torch.
"""

from affect_data import metrics
from affect_data.loaders import (
    AnnotationError,
    EmptyAnnotationWarning,
    LoadReport,
    load_afew_va,
    load_aff_wild2,
    load_disfa,
    load_expw,
)
from affect_data.recipes import PAPER_RECIPE, TaskData, check_recipe, prepare_task, prepare_tasks
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
from affect_data.splits import iterative_stratification, stratified_group_split, temporal_downsample

__version__ = "0.1.0"

__all__ = [
    "AU_NAMES",
    "DTYPES",
    "EXPR_NAMES",
    "FRAME_TABLE_COLUMNS",
    "LABEL_COLUMNS",
    "META_COLUMNS",
    "PAPER_RECIPE",
    "SPLITS",
    "TASK_COLUMNS",
    "VA_NAMES",
    "AnnotationError",
    "EmptyAnnotationWarning",
    "LoadReport",
    "TaskData",
    "as_frame_table",
    "check_recipe",
    "empty_frame_table",
    "iterative_stratification",
    "load_afew_va",
    "load_aff_wild2",
    "load_disfa",
    "load_expw",
    "metrics",
    "prepare_task",
    "prepare_tasks",
    "stratified_group_split",
    "temporal_downsample",
    "validate_frame_table",
]
