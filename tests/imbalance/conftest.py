"""Fixtures of the imbalance tests; puts this folder on sys.path for the helper and oracle modules."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from imbalance_helpers import au_like


@pytest.fixture
def au_matrix() -> np.ndarray:
    return au_like(2000, seed=7)
