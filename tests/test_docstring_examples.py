"""Every Example section in the three packages runs as written: numpydoc examples are what users copy."""

import doctest
import importlib
import pkgutil

import pytest


def _modules() -> list[str]:
    names = []
    for package in ("imbalance", "mtl_distill", "affect_data"):
        found = pkgutil.walk_packages(importlib.import_module(package).__path__, f"{package}.")
        names += [module.name for module in found if not module.name.endswith("__main__")]
    return names


@pytest.mark.parametrize("name", _modules())
def test_module_examples(name, tmp_path, monkeypatch):
    import torch

    torch.set_num_threads(1)
    monkeypatch.chdir(tmp_path)  # an example that writes a file writes it here
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} example(s) of {name} failed; run it with doctest -v"
