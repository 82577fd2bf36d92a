"""imbalance.plot writes non-empty PNG files for labels, classes and joint bins."""

import os
import stat

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from imbalance_helpers import au_like

from imbalance import MLROS, BinnedSampler, ClassBalancedSampler
from imbalance.plot import bin_heatmap, save_before_after


def _is_png(path) -> bool:
    return path.stat().st_size > 1000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_label_before_after(tmp_path):
    Y = pd.DataFrame(au_like(500, seed=0), columns=[f"AU{i}" for i in range(8)])
    _, Y_res = MLROS(25, random_state=0).fit_resample(None, Y)
    path = save_before_after(Y, Y_res, tmp_path / "nested" / "au.png", title="AU")
    assert _is_png(path) and list(tmp_path.joinpath("nested").iterdir()) == [path]


def test_class_and_bin_before_after(tmp_path):
    y = np.array([0] * 80 + [1] * 15 + [2] * 5)
    assert _is_png(
        save_before_after(
            y, y[ClassBalancedSampler(random_state=0).fit_indices(y)], tmp_path / "c.png", kind="classes"
        )
    )
    va = np.clip(np.random.default_rng(0).normal(0, 0.4, size=(2000, 2)), -1, 1)
    after = va[BinnedSampler(max_repeats=20, random_state=0).fit_indices(va)]
    assert _is_png(save_before_after(va, after, tmp_path / "va.png", kind="bins"))
    titled = save_before_after(va, after, tmp_path / "va_titled.png", kind="bins", title="VA", n_bins=10)
    assert _is_png(titled)


def test_heatmap_counts_and_errors(tmp_path):
    ax = bin_heatmap(np.array([[-1.0, -1.0], [1.0, 1.0], [1.0, 1.0]]), n_bins=2)
    np.testing.assert_allclose(ax.images[0].get_array(), np.log10(1 + np.array([[1, 0], [0, 2]])))
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("dimension 0", "dimension 1")  # no domain in the defaults
    named = bin_heatmap(np.zeros((2, 2)), n_bins=2, xlabel="valence", ylabel="arousal")
    assert (named.get_xlabel(), named.get_ylabel()) == ("valence", "arousal")
    with pytest.raises(ValueError, match="needs a 2-D target"):
        bin_heatmap(np.zeros(5))
    with pytest.raises(ValueError, match="kind must be"):
        save_before_after(np.zeros(3), np.zeros(3), tmp_path / "x.png", kind="pie")
    with pytest.raises(ValueError, match="Y_after has 3 labels"):
        save_before_after(np.eye(2), np.eye(3), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_saved_figures_get_the_users_normal_permissions(tmp_path, umask):
    # Before: tempfile.mkstemp's 0600 survived the rename into place.
    previous = os.umask(umask)
    try:
        path = save_before_after(np.array([[1, 0], [1, 1]]), np.array([[1, 1], [1, 1]]), tmp_path / "p.png")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["p.png"]  # no temporary file left
