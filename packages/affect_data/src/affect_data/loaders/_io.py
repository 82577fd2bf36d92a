"""Reading annotation files as distributed: bulk numeric parsing, with exact line-numbered errors on faults.

The fast path hands a whole file to pandas' C parser; only when that fails, or its result does not have the
expected shape, does a slow line-by-line pass run to find and name the first faulty line. Well-formed files
(the common case, millions of rows) therefore never pay for Python-level parsing.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd


class AnnotationError(ValueError):
    """A malformed annotation file. The message names the file and, where known, the 1-based line.

    Attributes
    ----------
    path : pathlib.Path
        The offending file.
    line : int or None
        Its 1-based line number, when the fault is on one line.
    """

    def __init__(self, path: str | os.PathLike, message: str, line: int | None = None) -> None:
        self.path = Path(path)
        self.line = line
        where = f"{self.path}, line {line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {message}")


def split_header(path: Path, data: bytes) -> tuple[list[str], bytes]:
    """Split ``data`` (a file's bytes) into its first line's comma-separated fields and the rest."""
    data = data.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark some editors add
    head, _, body = data.partition(b"\n")
    try:
        text = head.decode("utf-8").strip()
    except UnicodeDecodeError as err:
        raise AnnotationError(path, f"header is not UTF-8 text: {err}", line=1) from None
    return [field.strip() for field in text.split(",")], body


def parse_numeric(path: Path, body: bytes, n_columns: int, first_line: int) -> np.ndarray:
    """Parse comma-separated rows of ``n_columns`` finite numbers into a float64 array (rows, n_columns).

    ``first_line`` is the 1-based line number of the first line of ``body`` in the file, used in errors.
    Trailing blank lines are allowed; a blank line inside the data is an error (it would shift every
    following frame by one).

    Raises
    ------
    AnnotationError
        At the first line with a wrong column count, a non-numeric or non-finite value, or a blank line.
    """
    body = body.rstrip(b" \t\r\n")
    if not body:
        return np.empty((0, n_columns), dtype=np.float64)
    n_lines = body.count(b"\n") + 1
    try:
        values = pd.read_csv(
            io.BytesIO(body),
            header=None,
            dtype=np.float64,
            engine="c",
            skip_blank_lines=False,
        ).to_numpy()
    except (ValueError, pd.errors.ParserError):
        values = None
    if values is None or values.shape != (n_lines, n_columns) or not np.isfinite(values).all():
        values = _parse_slowly(path, body, n_columns, first_line)
    return values


def _parse_slowly(path: Path, body: bytes, n_columns: int, first_line: int) -> np.ndarray:
    """Line-by-line parse that raises at the first fault; returns the values if there is none."""
    rows = []
    for offset, raw in enumerate(body.split(b"\n")):
        line = first_line + offset
        text = raw.decode("utf-8", errors="replace").strip()
        if not text:
            raise AnnotationError(path, "blank line inside the data", line=line)
        fields = text.split(",")
        if len(fields) != n_columns:
            raise AnnotationError(
                path, f"expected {n_columns} values, found {len(fields)}: {text!r}", line=line
            )
        row = []
        for field in fields:
            try:
                value = float(field)
            except ValueError:
                raise AnnotationError(path, f"value {field.strip()!r} is not a number", line=line) from None
            if not math.isfinite(value):
                raise AnnotationError(path, f"value {field.strip()!r} is not a finite number", line=line)
            row.append(value)
        rows.append(row)
    return np.asarray(rows, dtype=np.float64).reshape(-1, n_columns)


def check_values(
    path: Path, values: np.ndarray, ok: np.ndarray, names: list[str], first_line: int, allowed: str
) -> None:
    """Raise naming the first line and column where ``ok`` (same shape as ``values``) is False."""
    if ok.all():
        return
    row, column = np.argwhere(~ok)[0]
    raise AnnotationError(
        path,
        f"column {names[column]!r} holds {values[row, column]:g}; allowed: {allowed}",
        line=first_line + int(row),
    )


def list_folder(folder: Path) -> list[str]:
    """Names of the entries of ``folder``, read with one directory scan (no per-file stat)."""
    with os.scandir(folder) as entries:
        return [entry.name for entry in entries]
