"""affect_data's one way of writing atomically: a file (face crops, overlay videos) or a folder (the crop
cache, the synthetic corpus)."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
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


#: The hidden siblings that :func:`atomic_folder` leaves when its process is killed mid-write: the folder
#: being filled and the previous one moved aside. Group 1 is the folder's name, group 2 the writer's pid.
PARTIAL_FOLDER = re.compile(r"\.(.+)\.(?:tmp|old)-(\d+)-[0-9a-f]{8}")


@contextlib.contextmanager
def atomic_folder(folder: Path, replace: bool) -> Iterator[Path]:
    """Yield a new, empty temporary folder next to ``folder`` to fill; it becomes ``folder`` when the block
    ends.

    A folder already at ``folder`` then is replaced when ``replace`` is true or it is empty; otherwise
    ``FileExistsError`` (another writer got there first), and the new folder is discarded. The previous folder
    is moved aside before the new one is renamed into place and deleted after, so a reader finds either one
    whole. If the block raises, the temporary folder is deleted. A killed process leaves hidden siblings named
    as :data:`PARTIAL_FOLDER` says, with its process id, for a later run to delete.
    """
    tag = f"{os.getpid()}-{secrets.token_hex(4)}"
    temporary = folder.parent / f".{folder.name}.tmp-{tag}"
    temporary.mkdir(parents=True)
    try:
        yield temporary
        if folder.exists():
            if not replace and any(folder.iterdir()):
                raise FileExistsError(f"{folder} appeared, not empty, while it was being written")
            old = folder.parent / f".{folder.name}.old-{tag}"
            os.rename(folder, old)
            os.rename(temporary, folder)
            shutil.rmtree(old)
        else:
            os.rename(temporary, folder)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
