"""tqdm and tensorboard are optional. Asked for explicitly (``required=True``), a missing one is an
ImportError naming the extra; otherwise the feature is off, the rest runs, and one INFO record says what to
install.

A missing module is simulated by ``None`` in ``sys.modules``, which makes ``import`` fail as when it is not
installed.
"""

import logging
import sys
import tomllib
from pathlib import Path

import pytest

from mtl_distill import _optional
from mtl_distill.logging_utils import MetricsLogger, progress


@pytest.fixture
def uninstall(monkeypatch):
    monkeypatch.setattr(_optional, "_noted", set())  # each test sees the first, logged, occurrence

    def block(module: str) -> None:
        for name in [name for name in sys.modules if name == module or name.startswith(f"{module}.")]:
            monkeypatch.setitem(sys.modules, name, None)
        monkeypatch.setitem(sys.modules, module, None)

    return block


def test_progress_bars_without_tqdm(uninstall, caplog):
    uninstall("tqdm")
    with pytest.raises(
        ImportError, match=r'progress bars: tqdm could not.*pip install "mtl-distill\[progress\]"'
    ):
        progress(range(3), required=True)
    with caplog.at_level(logging.INFO, logger="mtl_distill"):
        assert list(progress(range(3))) == [0, 1, 2]
        assert list(progress(range(2))) == [0, 1]
    (record,) = caplog.records  # once per process
    assert record.getMessage().startswith("progress bars off: tqdm could not be imported")
    assert 'pip install "mtl-distill[progress]"' in record.getMessage()


def test_tensorboard_logging_without_tensorboard(uninstall, caplog, tmp_path):
    uninstall("tensorboard")
    uninstall("torch.utils.tensorboard")
    with pytest.raises(
        ImportError,
        match=r'TensorBoard logging: tensorboard could not.*pip install "mtl-distill\[tensorboard\]"',
    ):
        MetricsLogger(tmp_path, required=True)
    with caplog.at_level(logging.INFO, logger="mtl_distill"):
        logger = MetricsLogger(tmp_path)  # the CSV still works
        logger.write([{"epoch": 0, "loss": 1.0}])
    assert (tmp_path / "metrics.csv").read_text() == "epoch,loss\n0,1.0\n"
    assert "TensorBoard logging off" in caplog.text and "mtl-distill[tensorboard]" in caplog.text


def test_every_extra_is_declared():
    pyproject = Path(__file__).parents[2] / "packages" / "mtl_distill" / "pyproject.toml"
    declared = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    assert set(_optional.EXTRAS.values()) == set(declared)


def test_study_plot_without_matplotlib(uninstall, tmp_path):
    from mtl_distill.study import summarize

    uninstall("matplotlib")
    summary = summarize({s: {"a": {"m": s}, "b": {"m": 0}} for s in range(3)}, [("a", "b")])
    with pytest.raises(
        ImportError, match=r'StudySummary.plot: matplotlib could not.*pip install "mtl-distill\[plot\]"'
    ):
        summary.plot(tmp_path / "plot.png")
