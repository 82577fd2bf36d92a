"""Package hygiene: light import, public names, runnable docstring examples."""

import doctest
import importlib
import subprocess
import sys

import matplotlib
import pytest

matplotlib.use("Agg")

PUBLIC = [
    "irlbl",
    "max_ir",
    "mean_ir",
    "cvir",
    "scumble",
    "describe",
    "MLROS",
    "MLRUS",
    "LPROS",
    "LPRUS",
    "ClassBalancedSampler",
    "BinnedSampler",
]


def test_import_pulls_numpy_only():
    code = (
        "import sys, imbalance; "
        "print(sorted(m for m in ('torch', 'matplotlib', 'pandas', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_public_names():
    import imbalance

    assert all(hasattr(imbalance, name) for name in PUBLIC)
    for name in PUBLIC[6:]:
        sampler = getattr(imbalance, name)()
        assert all(callable(getattr(sampler, m)) for m in ("fit_resample", "fit_indices", "sample_weights"))


@pytest.mark.parametrize(
    "module",
    ["measures", "multilabel", "labelset", "balanced", "torch", "plot"],
)
def test_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(f"imbalance.{module}"), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
