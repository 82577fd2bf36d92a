"""Training records: a per-epoch CSV (rewritten atomically), TensorBoard when installed, progress bars.

Public names: :class:`MetricsLogger`, :func:`progress`. TensorBoard (``mtl-distill[tensorboard]``) and tqdm
(``mtl-distill[progress]``) are optional: without them the CSV is still written and the loops still run, and
one INFO record of the ``mtl_distill`` logger says what to install; ``required=True`` makes a missing one an
``ImportError`` naming the extra instead.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mtl_distill._optional import missing_dependency, note_missing, require
from mtl_distill.checkpoint import write_atomically

__all__ = ["MetricsLogger", "flatten_scores", "progress"]


def flatten_scores(scores: Mapping[str, Mapping[str, float]], prefix: str = "val") -> dict[str, float]:
    """``{task: {metric: value}}`` -> ``{"val/task/metric": value}`` (one CSV column per metric).

    Example
    -------
    >>> flatten_scores({"digit": {"score": 0.9, "accuracy": 0.95}})
    {'val/digit/score': 0.9, 'val/digit/accuracy': 0.95}
    """
    return {
        f"{prefix}/{task}/{metric}": float(value)
        for task, metrics in scores.items()
        for metric, value in metrics.items()
    }


class MetricsLogger:
    """Writes the history (one dict of numbers per epoch) to ``metrics.csv`` and to TensorBoard.

    The whole CSV is rewritten atomically from the history after every epoch, so a killed and resumed run
    leaves exactly one row per finished epoch. Columns are the union of all rows' keys, in first-seen order.

    Parameters
    ----------
    folder : path
        Where ``metrics.csv`` (and the ``tensorboard/`` event files) go.
    tensorboard : bool, default True
        Also log to TensorBoard when ``torch.utils.tensorboard`` can be imported (tensorboard installed).
    logged_epochs : iterable of int, optional
        Epochs already sent to TensorBoard by an earlier process (a resumed run): not sent again.
    required : bool, default False
        With ``tensorboard``: a missing tensorboard is an ``ImportError`` naming the extra to install,
        rather than a CSV-only logger.

    Example
    -------
    >>> import tempfile
    >>> logger = MetricsLogger(tempfile.mkdtemp(), tensorboard=False)
    >>> logger.write([{"epoch": 0, "train_loss": 1.5}, {"epoch": 1, "train_loss": 0.5}])
    >>> logger.csv_path.read_text().splitlines()
    ['epoch,train_loss', '0,1.5', '1,0.5']
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        tensorboard: bool = True,
        *,
        logged_epochs: Iterable[int] = (),
        required: bool = False,
    ) -> None:
        self.folder = Path(folder)
        self.csv_path = self.folder / "metrics.csv"
        if tensorboard and required:
            require("torch.utils.tensorboard", "tensorboard", "TensorBoard logging")
        self._writer = _tensorboard_writer(self.folder / "tensorboard") if tensorboard else None
        self._logged_epochs = {int(epoch) for epoch in logged_epochs}

    def write(self, history: Sequence[Mapping[str, Any]]) -> None:
        """Rewrite the CSV from ``history`` and send rows not yet sent to TensorBoard."""
        columns: dict[str, None] = {}
        for row in history:
            columns.update(dict.fromkeys(row))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows(history)
        write_atomically(self.csv_path, buffer.getvalue())
        if self._writer is not None:
            for row in history:
                epoch = int(row["epoch"])
                if epoch in self._logged_epochs:
                    continue
                for key, value in row.items():
                    if key != "epoch" and isinstance(value, int | float):
                        self._writer.add_scalar(key, value, epoch)
                self._logged_epochs.add(epoch)
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def progress(
    iterable: Iterable,
    *,
    total: int | None = None,
    desc: str = "",
    enabled: bool = True,
    required: bool = False,
) -> Iterable:
    """A tqdm progress bar over ``iterable`` when ``enabled`` and tqdm is installed; else the iterable itself.

    Without tqdm, ``required=True`` raises an ``ImportError`` naming the extra (``mtl-distill[progress]``);
    otherwise the iterable comes back unchanged and one INFO record says what to install.

    Example
    -------
    >>> list(progress(range(3), enabled=False))
    [0, 1, 2]
    """
    if not enabled:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError as error:
        if required:
            raise missing_dependency("tqdm", "progress bars", error) from error
        note_missing("tqdm", "progress bars", error)
        return iterable
    return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True)


def _tensorboard_writer(folder: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as error:
        note_missing("tensorboard", "TensorBoard logging", error)
        return None
    return SummaryWriter(log_dir=str(folder))
