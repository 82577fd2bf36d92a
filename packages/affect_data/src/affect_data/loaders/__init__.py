"""Loaders of the four data sets as distributed, each returning a frame table (see :mod:`affect_data.schema`).

Every loader attaches a :class:`LoadReport` of what it read, kept and skipped as ``table.attrs["report"]``,
and raises :class:`AnnotationError` (a ``ValueError`` naming the file and line) for malformed files. An
annotation file without a data row gives an :class:`EmptyAnnotationWarning`.
"""

from affect_data.loaders._io import AnnotationError, EmptyAnnotationWarning
from affect_data.loaders.afew_va import load_afew_va
from affect_data.loaders.aff_wild2 import LAYOUTS, load_aff_wild2
from affect_data.loaders.disfa import OPENFACE_PATTERN, load_disfa
from affect_data.loaders.expw import EXPW_TO_AFF_WILD2, load_expw
from affect_data.loaders.report import LoadReport

__all__ = [
    "EXPW_TO_AFF_WILD2",
    "LAYOUTS",
    "OPENFACE_PATTERN",
    "AnnotationError",
    "EmptyAnnotationWarning",
    "LoadReport",
    "load_afew_va",
    "load_aff_wild2",
    "load_disfa",
    "load_expw",
]
