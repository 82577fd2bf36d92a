"""The Example sections of the tasks, losses, metrics and ensemble modules run as written."""

import doctest
import importlib

import pytest
import torch

MODULES = ["mtl_distill.tasks", "mtl_distill.losses", "mtl_distill.metrics", "mtl_distill.ensemble"]


@pytest.mark.parametrize("name", MODULES)
def test_module_examples(name):
    torch.set_num_threads(1)
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
