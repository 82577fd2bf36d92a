"""Measure and repair imbalance in multi-label, multi-class and continuous targets.

``import imbalance`` needs numpy only; ``imbalance.torch`` (torch) and ``imbalance.plot`` (matplotlib) are
optional modules, imported on their own. A feature whose optional dependency is missing raises an
``ImportError`` naming the extra that installs it: ``pip install "imbalance[pandas]"`` for
``describe(Y).to_frame()``, ``[plot]``, ``[torch]``, ``[sklearn]`` for scikit-learn's tags.
"""

from .balanced import BinnedSampler, ClassBalancedSampler
from .labelset import LPROS, LPRUS
from .measures import Description, EmptyLabelWarning, cvir, describe, irlbl, max_ir, mean_ir, scumble
from .multilabel import MLROS, MLRUS

__all__ = [
    "LPROS",
    "LPRUS",
    "MLROS",
    "MLRUS",
    "BinnedSampler",
    "ClassBalancedSampler",
    "Description",
    "EmptyLabelWarning",
    "cvir",
    "describe",
    "irlbl",
    "max_ir",
    "mean_ir",
    "scumble",
]
__version__ = "0.1.0"
