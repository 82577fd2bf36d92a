"""Optional dependencies: tqdm (progress bars), tensorboard (TensorBoard logging), matplotlib (study plots).

A feature that needs one imports it when used. Asked for explicitly (``required=True``), a missing one is an
``ImportError`` naming the extra that installs it; otherwise the feature is skipped and one log record per
process (logger ``mtl_distill``, level INFO) says how to get it.
"""

from __future__ import annotations

import importlib
import logging

#: The extra of ``packages/mtl_distill/pyproject.toml`` that installs each optional module.
EXTRAS = {"tqdm": "progress", "tensorboard": "tensorboard", "matplotlib": "plot"}

_logger = logging.getLogger("mtl_distill")
_noted: set[str] = set()


def missing_dependency(module: str, feature: str, error: ImportError) -> ImportError:
    """The ``ImportError`` to raise when ``feature`` cannot import ``module`` (a key of :data:`EXTRAS`).

    Examples
    --------
    >>> cause = ImportError("No module named 'tqdm'")
    >>> print(missing_dependency("tqdm", "progress bars", cause))  # doctest: +ELLIPSIS
    progress bars: tqdm could not be imported (...); install it with: pip install "mtl-distill[progress]"
    """
    return ImportError(f"{feature}: {_hint(module, error)}", name=module)


def require(path: str, module: str, feature: str) -> None:
    """Import ``path`` (which needs ``module``, a key of :data:`EXTRAS`), or raise ``missing_dependency``."""
    try:
        importlib.import_module(path)
    except ImportError as error:
        raise missing_dependency(module, feature, error) from error


def _hint(module: str, error: ImportError) -> str:
    install = f'pip install "mtl-distill[{EXTRAS[module]}]"'
    return f"{module} could not be imported ({error}); install it with: {install}"


def note_missing(module: str, feature: str, error: ImportError) -> None:
    """Log once per process, at INFO, that ``feature`` is off because ``module`` is missing, and the fix."""
    if module not in _noted:
        _noted.add(module)
        _logger.info("%s off: %s", feature, _hint(module, error))
