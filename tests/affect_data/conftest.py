"""Fixtures shared by the affect_data tests."""

from pathlib import Path

import pytest

from affect_data.synthetic import write_corpus


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """The tiny synthetic corpus (seed 0), written once per session. Treat it as read-only: copy it first."""
    return write_corpus(tmp_path_factory.mktemp("tiny") / "corpus", preset="tiny", seed=0)
