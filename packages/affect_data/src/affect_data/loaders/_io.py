"""Reading annotation files as distributed: one reader for all annotation text, bulk numeric parsing with
exact line-numbered errors on faults, and the check that paths named by annotations stay inside their root.

Every loader reads its annotation files with :func:`read_annotation`, so they all accept and refuse the same
things: a UTF-8 byte order mark is dropped, CRLF and CR-only line endings read as LF, and bytes that are not
UTF-8, a UTF-16 file or a NUL byte are an :class:`AnnotationError` naming the file and line.

The fast numeric path hands a whole file to pandas' C parser; only when that fails, or its result does not
have the expected shape, does a slow line-by-line pass run to find and name the first faulty line.
Well-formed files (the common case, millions of rows) therefore never pay for Python-level parsing.
"""

from __future__ import annotations

import io
import math
import os
import warnings
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


#: How many characters of a faulty line an error message quotes.
EXCERPT_CHARS = 80

_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def read_annotation(path: Path) -> bytes:
    """The bytes of an annotation file, ready to parse: UTF-8 checked, BOM dropped, line endings ``\\n``.

    A UTF-8 byte order mark (some editors add one) is removed; CRLF (Windows) and CR-only (classic Mac OS)
    line endings become LF, so line numbers in errors count the lines an editor shows. The result decodes
    as UTF-8 without error.

    Raises
    ------
    AnnotationError
        A UTF-16 file, bytes that are not UTF-8, or a NUL byte (binary data), naming the file and line.
    """
    data = path.read_bytes()
    if data.startswith(_UTF16_BOMS):
        raise AnnotationError(path, "is UTF-16 text; annotation files must be UTF-8 (or ASCII)", line=1)
    data = data.removeprefix(_UTF8_BOM)
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    nul = data.find(b"\0")
    if nul >= 0:  # a NUL also cannot be part of a file name: open() would raise ValueError
        raise AnnotationError(path, "holds a NUL byte (binary data?)", line=data.count(b"\n", 0, nul) + 1)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise AnnotationError(
            path,
            f"is not UTF-8 text: byte {data[err.start : err.start + 1]!r} ({err.reason})",
            line=data.count(b"\n", 0, err.start) + 1,
        ) from None
    return data


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """``text`` quoted, cut to ``limit`` characters so that an error never prints a whole file."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text)} characters)"


class EmptyAnnotationWarning(UserWarning):
    """An annotation file that holds no data row (a header alone, or nothing): it adds no row to the table."""


def warn_empty(path: Path, what: str) -> None:
    """Warn that ``path`` holds no ``what`` (a loader would otherwise return fewer rows without a word)."""
    warnings.warn(f"{path} holds no {what}: it adds no row", EmptyAnnotationWarning, stacklevel=3)


def split_header(data: bytes) -> tuple[list[str], bytes]:
    """Split ``data`` (from :func:`read_annotation`) into its first line's comma-separated fields and the
    rest."""
    head, _, body = data.partition(b"\n")
    return [field.strip() for field in head.decode("utf-8").split(",")], body


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
    except Exception:  # whatever pandas dislikes, the line-by-line pass below names the faulty line
        values = None
    if values is None or values.shape != (n_lines, n_columns) or not np.isfinite(values).all():
        values = _parse_slowly(path, body, n_columns, first_line)
    return values


def _parse_slowly(path: Path, body: bytes, n_columns: int, first_line: int) -> np.ndarray:
    """Line-by-line parse that raises at the first fault; returns the values if there is none."""
    rows = []
    for offset, raw in enumerate(body.split(b"\n")):
        line = first_line + offset
        text = raw.decode("utf-8").strip()
        if not text:
            raise AnnotationError(path, "blank line inside the data", line=line)
        fields = text.split(",")
        if len(fields) != n_columns:
            raise AnnotationError(
                path, f"expected {n_columns} values, found {len(fields)}: {excerpt(text)}", line=line
            )
        row = []
        for field in fields:
            try:
                value = float(field)
            except ValueError:
                raise AnnotationError(
                    path, f"value {excerpt(field.strip())} is not a number", line=line
                ) from None
            if not math.isfinite(value):
                raise AnnotationError(
                    path, f"value {excerpt(field.strip())} is not a finite number", line=line
                )
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


def resolved_root(root: str | os.PathLike) -> str:
    """``root`` with every symlink resolved: the folder :func:`inside` compares paths against."""
    return os.path.realpath(root)


def inside(path: str | os.PathLike, root: str) -> bool:
    """Whether ``path`` lies strictly below ``root`` (from :func:`resolved_root`) once symlinks are resolved.

    Paths assembled from annotation content (an ExpW image name, an Aff-Wild2 video name) go through this
    before anything is opened, so that ``..``, an absolute name or a symlink cannot make a loader read
    outside the data set. ``root`` itself is not "inside": a name such as ``.`` or ``""`` names no image.

    Examples
    --------
    >>> inside("/data/expw/image/origin/a.jpg", "/data/expw/image/origin")
    True
    >>> inside("/data/expw/image/origin/../../secret.jpg", "/data/expw/image/origin")
    False
    """
    prefix = root if root.endswith(os.sep) else root + os.sep
    return os.path.realpath(path).startswith(prefix)
