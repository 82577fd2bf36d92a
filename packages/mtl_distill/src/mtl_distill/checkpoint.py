"""Checkpoint files: atomic writes, ``weights_only`` loads, and the random-number-generator states.

A checkpoint is a plain dict of tensors and Python primitives (the trainer's layout is documented in
:meth:`mtl_distill.trainer.Trainer.state_dict`), so ``torch.load(..., weights_only=True)`` reads it without
unpickling arbitrary objects. numpy's and Python's generator states are therefore stored as lists of ints.

Public names: :func:`save_checkpoint`, :func:`load_checkpoint`, :func:`rng_state`, :func:`set_rng_state`,
:func:`seed_everything`. numpy's *legacy global* generator is seeded and saved on purpose: it is the one
that user augmentation code (``np.random.rand``) draws from.
"""

from __future__ import annotations

import os
import random
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

__all__ = [
    "load_checkpoint",
    "rng_state",
    "save_checkpoint",
    "seed_everything",
    "set_rng_state",
    "write_atomically",
]


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` with ``torch.save`` to ``path`` atomically (see :func:`write_atomically`).

    Example
    -------
    >>> import tempfile, torch
    >>> folder = tempfile.mkdtemp()
    >>> path = save_checkpoint({"w": torch.ones(2), "epoch": 3}, f"{folder}/ckpt.pt")
    >>> load_checkpoint(path)["epoch"]
    3
    """
    return write_atomically(path, lambda file: torch.save(state, file))


def write_atomically(path: str | os.PathLike, write: Callable[[BinaryIO], None] | bytes | str) -> Path:
    """Create or replace ``path`` atomically: ``write(file)`` (or the given bytes / UTF-8 text) goes to a
    temporary file in the same folder, which is flushed to disk and renamed over ``path``.

    A crash while writing leaves the previous file intact; readers never see a half-written file. The file
    gets the permissions of any new file of the user (``0o666`` less the umask).

    Example
    -------
    >>> import tempfile
    >>> path = write_atomically(f"{tempfile.mkdtemp()}/notes.txt", "done")
    >>> path.read_text()
    'done'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not tempfile.mkstemp: its 0o600 would survive the rename, and a checkpoint shared with a group (or read
    # by another account serving the model) would be unreadable to it. O_EXCL still refuses an existing name.
    temporary = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(handle, "wb") as file:
            if callable(write):
                write(file)
            else:
                file.write(write.encode("utf-8") if isinstance(write, str) else write)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` with ``torch.load(weights_only=True)``.

    Raises ``FileNotFoundError`` naming the path when it is missing and ``ValueError`` naming it when the
    file is not a readable checkpoint (truncated, or holding objects other than tensors and primitives).

    Example
    -------
    >>> import tempfile, torch
    >>> path = save_checkpoint({"w": torch.zeros(1)}, f"{tempfile.mkdtemp()}/c.pt")
    >>> load_checkpoint(path)["w"].tolist()
    [0.0]
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:
        raise ValueError(f"checkpoint {path} could not be read with weights_only=True: {error}") from error
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint {path} holds a {type(state).__name__}, expected a dict")
    return state


def rng_state() -> dict[str, Any]:
    """The states of torch's (CPU and every CUDA device), numpy's and Python's global generators.

    Only tensors, lists and numbers, so that the dict survives ``weights_only=True`` loading.
    """
    numpy_state = np.random.get_state()  # noqa: NPY002
    python_version, python_keys, python_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "keys": numpy_state[1].tolist(),
            "pos": int(numpy_state[2]),
            "has_gauss": int(numpy_state[3]),
            "cached_gaussian": float(numpy_state[4]),
        },
        "python": {"version": python_version, "keys": list(python_keys), "gauss": python_gauss},
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the generator states captured by :func:`rng_state`."""
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([cuda_state.cpu() for cuda_state in state["cuda"]])
    numpy_state = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        (
            "MT19937",
            np.asarray(numpy_state["keys"], dtype=np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    python_state = state["python"]
    random.setstate((python_state["version"], tuple(python_state["keys"]), python_state["gauss"]))


def seed_everything(seed: int, *, accelerators: bool = True) -> None:
    """Seed torch's, numpy's (legacy global) and Python's generators with ``seed``.

    ``accelerators=False`` leaves the CUDA (and other device) generators alone and seeds torch's CPU
    generator only: what data loading uses, and about 100 times faster than ``torch.manual_seed``, which
    matters when every loaded item is seeded (:class:`mtl_distill.batching.IndexedDataset`).
    """
    if accelerators:
        torch.manual_seed(seed)
    else:
        torch.default_generator.manual_seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002
    random.seed(seed)
