"""affect_data's one way of writing a file atomically (face crops, overlay videos)."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a new, empty temporary file next to ``path`` to write; it replaces ``path`` when the block ends.

    The temporary name keeps ``path``'s suffix, since writers such as FFmpeg pick the format from it. If the
    block raises, the temporary file is removed and ``path`` is left as it was. Unlike
    ``mtl_distill.checkpoint.write_atomically`` nothing is fsynced: crops are written by the thousand and can
    be made again. ``tempfile.mkstemp`` is not used either: its mode ``0o600`` would survive the rename and
    make files shared with a group unreadable to it; here the mode is ``0o666`` less the umask, and
    ``O_EXCL`` still refuses an existing name.
    """
    temporary = path.parent / f".{path.stem}.{secrets.token_hex(8)}{path.suffix}"
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666))
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
