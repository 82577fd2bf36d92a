"""Before/after distributions of a resampling, the paper's Figure 2 (needs matplotlib: ``imbalance[plot]``).

Figures are drawn with matplotlib's object API (no pyplot state), so they work headless and in threads.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import numpy as np

from ._optional import missing_dependency
from ._validation import check_label_matrix, check_targets_1d
from .balanced import BinnedSampler

try:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
except ImportError as error:
    raise missing_dependency("matplotlib", "imbalance.plot", error) from error

__all__ = ["bin_heatmap", "class_bars", "label_bars", "save_before_after"]


def _grouped_bars(ax: Axes, names: list[str], series: dict[str, np.ndarray], ylabel: str) -> Axes:
    width = 0.8 / len(series)
    positions = np.arange(len(names))
    for i, (label, values) in enumerate(series.items()):
        ax.bar(positions + (i - (len(series) - 1) / 2) * width, values, width, label=label)
    ax.set_xticks(positions, names, rotation=45 if len(names) > 12 else 0)
    ax.set_ylabel(ylabel)
    ax.legend()
    return ax


def label_bars(Y_before: Any, Y_after: Any = None, *, ax: Axes | None = None, title: str = "") -> Axes:
    """Share of instances carrying each label, before (and after) resampling, as grouped bars.

    Examples
    --------
    >>> import numpy as np
    >>> from imbalance.plot import label_bars
    >>> ax = label_bars(np.array([[1, 0], [1, 1], [1, 0]]), np.array([[1, 0], [1, 1], [1, 1]]))
    >>> len(ax.patches)
    4
    """
    before = check_label_matrix(Y_before, "Y_before")
    series = {"before": before.column_counts() / before.n_rows}
    if Y_after is not None:
        after = check_label_matrix(Y_after, "Y_after")
        if after.n_labels != before.n_labels:
            raise ValueError(f"Y_after has {after.n_labels} labels, Y_before {before.n_labels}")
        series["after"] = after.column_counts() / after.n_rows
    ax = ax if ax is not None else Figure(figsize=(8, 4)).add_subplot()
    ax.set_title(title or "Label distribution")
    return _grouped_bars(ax, before.names, series, "share of instances")


def class_bars(y_before: Any, y_after: Any = None, *, ax: Axes | None = None, title: str = "") -> Axes:
    """Share of each class, before (and after) resampling, as grouped bars.

    Examples
    --------
    >>> import numpy as np
    >>> from imbalance.plot import class_bars
    >>> len(class_bars(np.array([0, 0, 0, 1]), np.array([0, 1, 0, 1])).patches)
    4
    """
    before = check_targets_1d(y_before, "y_before")
    arrays = {"before": before}
    if y_after is not None:
        arrays["after"] = check_targets_1d(y_after, "y_after")
    classes = np.unique(np.concatenate(list(arrays.values())))
    series = {
        name: np.array([np.count_nonzero(values == c) for c in classes]) / values.size
        for name, values in arrays.items()
    }
    ax = ax if ax is not None else Figure(figsize=(8, 4)).add_subplot()
    ax.set_title(title or "Class distribution")
    return _grouped_bars(ax, [str(c) for c in classes], series, "share of instances")


def bin_heatmap(
    y: Any,
    *,
    n_bins: int = 20,
    low: float = -1.0,
    high: float = 1.0,
    ax: Axes | None = None,
    title: str = "",
    xlabel: str = "dimension 0",
    ylabel: str = "dimension 1",
) -> Axes:
    """Joint histogram of a 2-D continuous target over the binning grid, log colour.

    Parameters
    ----------
    y : array-like of shape (n_samples, 2)
        The target; column 0 is drawn along x, column 1 along y.
    n_bins, low, high : int, float, float, default 20, -1.0, 1.0
        The grid of :class:`~imbalance.BinnedSampler`: ``n_bins`` equal bins per dimension over
        ``[low, high]``; values outside are clipped into it.
    ax : matplotlib.axes.Axes, optional
        Where to draw; default a new figure's axes.
    title : str, default ""
        Axes title (default "Joint bins").
    xlabel, ylabel : str, default "dimension 0", "dimension 1"
        Axis labels: name the target's dimensions (e.g. "valence" and "arousal").

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import numpy as np
    >>> from imbalance.plot import bin_heatmap
    >>> ax = bin_heatmap(np.array([[0.1, 0.2], [-0.5, 0.9]]), n_bins=4, xlabel="valence", ylabel="arousal")
    >>> ax.images[0].get_array().shape, ax.get_xlabel(), ax.get_ylabel()
    ((4, 4), 'valence', 'arousal')
    """
    bins = BinnedSampler(n_bins=n_bins, low=low, high=high, out_of_range="clip").digitize(y)
    if bins.shape[1] != 2:
        raise ValueError(f"bin_heatmap needs a 2-D target (n, 2), got {bins.shape[1]} dimension(s)")
    counts = np.zeros((n_bins, n_bins))
    np.add.at(counts, (bins[:, 1], bins[:, 0]), 1)
    ax = ax if ax is not None else Figure(figsize=(5, 4)).add_subplot()
    image = ax.imshow(
        np.log10(1 + counts), origin="lower", extent=(low, high, low, high), cmap="viridis", aspect="auto"
    )
    ax.figure.colorbar(image, ax=ax, label="log10(1 + count)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title or "Joint bins")
    return ax


def save_before_after(
    before: Any, after: Any, path: str | os.PathLike, *, kind: str = "labels", **options
) -> Path:
    """Save a before/after figure as PNG and return its path, written atomically with the user's normal
    permissions (``0o666`` less the umask).

    ``kind`` is "labels" (multi-label matrices, grouped bars), "classes" (class targets, grouped bars) or
    "bins" (2-D continuous targets, two heat maps side by side; ``options`` go to :func:`bin_heatmap`, e.g.
    ``xlabel`` and ``ylabel``, except ``title``, which titles the figure).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from imbalance.plot import save_before_after
    >>> path = save_before_after(np.array([[1, 0], [1, 1]]), np.array([[1, 1], [1, 1]]),
    ...                          os.path.join(tempfile.mkdtemp(), "labels.png"))
    >>> path.stat().st_size > 0
    True
    """
    path = Path(path)
    if kind == "labels":
        figure = Figure(figsize=(8, 4), layout="constrained")
        label_bars(before, after, ax=figure.add_subplot(), **options)
    elif kind == "classes":
        figure = Figure(figsize=(8, 4), layout="constrained")
        class_bars(before, after, ax=figure.add_subplot(), **options)
    elif kind == "bins":
        figure = Figure(figsize=(10, 4), layout="constrained")
        title = options.pop("title", "")  # the figure's title: the two panels are "before" and "after"
        if title:
            figure.suptitle(title)
        left, right = figure.subplots(1, 2)
        bin_heatmap(before, ax=left, title="before", **options)
        bin_heatmap(after, ax=right, title="after", **options)
    else:
        raise ValueError(f"kind must be 'labels', 'classes' or 'bins', got {kind!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not tempfile.mkstemp: its 0o600 would survive the rename. A new name (O_EXCL) with mode 0o666 gets the
    # user's normal permissions: the umask applies.
    temporary = str(path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp.png")
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        figure.savefig(temporary, format="png", dpi=100)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return path
