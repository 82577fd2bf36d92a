"""The skip policy shared by every loader: what was dropped, why, and a few examples of each.

A long load must not die for one bad frame, and must not drop frames silently either. Each loader counts
every label row it reads and every row it drops, by reason, in a :class:`LoadReport` that it attaches to the
table it returns (``table.attrs["report"]``) and logs at INFO level on the ``affect_data.loaders`` logger.
Malformed files are different: they raise :class:`~affect_data.loaders.AnnotationError` naming the file and
line, because a misread file would silently mislabel every frame after the fault.

Reasons, as used by the loaders:

================== ====================================================================================
``not_annotated``  the file holds a sentinel (Aff-Wild2 ``-1`` in AU/EXPR, ``-5`` in VA) for the row
``other_class``    Aff-Wild2 (ABAW 2022+) expression ``Other`` (class 7), outside the 7 shared classes
``missing_image``  no face image for the row (no detected face, or a source image absent on disk)
``duplicate``      ExpW: a line repeated verbatim
``conflicting``    ExpW: a second line for the same (image, face id) with different values (first kept)
``low_confidence`` ExpW: face confidence below the ``min_confidence`` asked for
``empty_box``      ExpW: a face box that holds no pixel once clipped to its image
``off_image``      ExpW box or AFEW-VA aligned crop with less than half its area on the image (it would
                   train on a mostly black or sliver crop)
``bad_landmarks``  AFEW-VA: landmarks that give no face (non-finite values, eyes at one point, no area)
``corrupt_image``  an image that exists but cannot be decoded (truncated, not an image, ...)
``outside_root``   a path taken from an annotation (image name, video name, clip folder) that resolves,
                   symlinks followed, outside the data set's image folder: never opened
================== ====================================================================================
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from affect_data.schema import as_frame_table

NOT_ANNOTATED = "not_annotated"
OTHER_CLASS = "other_class"
MISSING_IMAGE = "missing_image"
DUPLICATE = "duplicate"
CONFLICTING = "conflicting"
LOW_CONFIDENCE = "low_confidence"
EMPTY_BOX = "empty_box"
OFF_IMAGE = "off_image"
BAD_LANDMARKS = "bad_landmarks"
CORRUPT_IMAGE = "corrupt_image"
OUTSIDE_ROOT = "outside_root"

#: How many example items (file, frame, ...) a report keeps per reason.
MAX_EXAMPLES = 5

logger = logging.getLogger("affect_data.loaders")


@dataclass
class LoadReport:
    """Counts of the label rows a loader read, kept and skipped (by reason and scope).

    ``rows_read == rows_kept + total skipped`` holds for every loader. ``scope`` narrows a count to one part
    of a data set (an Aff-Wild2 task set, say); ``ignored`` counts things on disk that no label refers to
    (images beyond the end of a label file, when the loader is told to ignore them).

    Parameters
    ----------
    dataset : str
        The ``dataset`` value of the table the report describes.

    Examples
    --------
    >>> report = LoadReport("aff_wild2")
    >>> report.read(10)
    >>> report.skip("missing_image", 3, scope="AU", example="video1.txt line 5")
    >>> report.rows_kept = 7
    >>> report.count("missing_image"), report.total_skipped
    (3, 3)
    >>> print(report.summary())
    aff_wild2: read 10 label rows, kept 7, skipped 3 (AU missing_image 3, e.g. video1.txt line 5)
    """

    dataset: str
    rows_read: int = 0
    rows_kept: int = 0
    skipped: Counter[tuple[str, str]] = field(default_factory=Counter)
    ignored: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def read(self, n: int) -> None:
        """Count ``n`` more label rows read."""
        self.rows_read += int(n)

    def skip(self, reason: str, n: int = 1, *, scope: str = "", example: str | None = None) -> None:
        """Count ``n`` rows dropped for ``reason`` (nothing happens when ``n`` is 0)."""
        if n <= 0:
            return
        self.skipped[(scope, reason)] += int(n)
        if example is not None:
            kept = self.examples.setdefault(reason, [])
            if len(kept) < MAX_EXAMPLES:
                kept.append(example)

    def ignore(self, what: str, n: int = 1) -> None:
        """Count ``n`` files on disk that no label refers to."""
        if n > 0:
            self.ignored[what] += int(n)

    def count(self, reason: str | None = None, scope: str | None = None) -> int:
        """Rows skipped for ``reason`` (all reasons when None) within ``scope`` (all scopes when None)."""
        return sum(
            n
            for (row_scope, row_reason), n in self.skipped.items()
            if (reason is None or row_reason == reason) and (scope is None or row_scope == scope)
        )

    @property
    def total_skipped(self) -> int:
        """Rows skipped for any reason."""
        return sum(self.skipped.values())

    def to_frame(self) -> pd.DataFrame:
        """The skip counts as a table with columns ``scope, reason, count``."""
        rows = [(scope, reason, n) for (scope, reason), n in sorted(self.skipped.items())]
        return pd.DataFrame(rows, columns=["scope", "reason", "count"])

    def summary(self) -> str:
        """One line: rows read, kept, and skipped per reason with the first example of each."""
        parts = []
        for (scope, reason), n in sorted(self.skipped.items()):
            example = self.examples.get(reason)
            label = f"{scope} {reason}".strip()
            parts.append(f"{label} {n}" + (f", e.g. {example[0]}" if example else ""))
        for what, n in sorted(self.ignored.items()):
            parts.append(f"ignored {what} {n}")
        text = (
            f"{self.dataset}: read {self.rows_read} label rows, kept {self.rows_kept}, "
            f"skipped {self.total_skipped}"
        )
        return text + (f" ({'; '.join(parts)})" if parts else "")

    def log(self, log: logging.Logger | None = None, level: int = logging.INFO) -> None:
        """Write :meth:`summary` to ``log`` (default: the ``affect_data.loaders`` logger)."""
        (log or logger).log(level, self.summary())


def finish_table(table: pd.DataFrame, report: LoadReport, split: str | None = None) -> pd.DataFrame:
    """A loader's last step: the frame table in standard form, with ``report`` completed, attached and logged.

    ``split``, when given, fills the ``split`` column, and ``report.dataset`` fills ``dataset`` (the data sets
    without a split of their own).
    """
    if split is not None:
        table = table.assign(dataset=report.dataset, split=split)
    table = as_frame_table(table)
    report.rows_kept = len(table)
    table.attrs["report"] = report
    report.log()
    return table
