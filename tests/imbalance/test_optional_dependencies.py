"""A feature whose optional dependency is missing raises an ImportError that names the extra to install.

A missing module is simulated by ``None`` in ``sys.modules`` (for the module and its submodules), which makes
``import`` fail exactly as when it is not installed.
"""

import importlib
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

import imbalance
from imbalance._optional import EXTRAS


def _uninstall(monkeypatch, module: str) -> None:
    for name in [name for name in sys.modules if name == module or name.startswith(f"{module}.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, module, None)


def _reimport(monkeypatch, name: str):
    monkeypatch.delitem(sys.modules, name, raising=False)
    return importlib.import_module(name)


def test_describe_to_frame_without_pandas(monkeypatch):
    description = imbalance.describe(np.array([[1, 0], [1, 1]]))
    _uninstall(monkeypatch, "pandas")
    with pytest.raises(
        ImportError, match=r'Description.to_frame\(\) needs pandas.*pip install "imbalance\[pandas\]"'
    ):
        description.to_frame()
    print(description)  # the table itself needs numpy only


def test_plot_without_matplotlib(monkeypatch):
    _uninstall(monkeypatch, "matplotlib")
    with pytest.raises(
        ImportError, match=r'imbalance.plot needs matplotlib.*pip install "imbalance\[plot\]"'
    ):
        _reimport(monkeypatch, "imbalance.plot")


def test_torch_sampler_without_torch(monkeypatch):
    _uninstall(monkeypatch, "torch")
    with pytest.raises(ImportError, match=r'imbalance.torch needs torch.*pip install "imbalance\[torch\]"'):
        _reimport(monkeypatch, "imbalance.torch")


def test_sklearn_tags_without_scikit_learn(monkeypatch):
    _uninstall(monkeypatch, "sklearn")
    with pytest.raises(
        ImportError,
        match=r'MLROS.__sklearn_tags__ needs scikit-learn.*pip install "imbalance\[sklearn\]"',
    ) as raised:
        imbalance.MLROS().__sklearn_tags__()
    assert raised.value.name == "sklearn" and isinstance(raised.value.__cause__, ImportError)


def test_without_scipy_dense_input_works_and_scipy_is_never_imported(monkeypatch):
    _uninstall(monkeypatch, "scipy")
    Y = np.array([[1, 0], [1, 1], [1, 0], [1, 0]])
    assert imbalance.mean_ir(Y) == 2.5
    assert len(imbalance.MLROS(percentage=50, random_state=0).fit_indices(Y)) == 5


def test_every_extra_is_declared():
    pyproject = Path(__file__).parents[2] / "packages" / "imbalance" / "pyproject.toml"
    declared = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    assert set(EXTRAS.values()) == set(declared)
