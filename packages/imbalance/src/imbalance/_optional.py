"""Optional dependencies: import them when a feature needs them, and name the extra that installs them.

``import imbalance`` needs numpy only. pandas (``Description.to_frame``), matplotlib (``imbalance.plot``),
torch (``imbalance.torch``) and scikit-learn (``__sklearn_tags__``) are imported by the feature that uses
them; when one is missing, the ``ImportError`` says which ``pip install "imbalance[...]"`` brings it.
scipy is never imported: a scipy.sparse input is recognised when scipy is already loaded.
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: The extra of ``packages/imbalance/pyproject.toml`` that installs each optional top-level module.
EXTRAS = {"pandas": "pandas", "scipy": "sparse", "matplotlib": "plot", "torch": "torch", "sklearn": "sklearn"}

_DISTRIBUTIONS = {"sklearn": "scikit-learn"}


def missing_dependency(module: str, feature: str, error: ImportError) -> ImportError:
    """The ``ImportError`` to raise when ``feature`` cannot import ``module`` (a key of :data:`EXTRAS`).

    Examples
    --------
    >>> cause = ImportError("No module named 'pandas'")
    >>> print(missing_dependency("pandas", "Description.to_frame()", cause))  # doctest: +ELLIPSIS
    Description.to_frame() needs pandas, which could not ...; install it with: pip install "imbalance[pandas]"
    """
    name = _DISTRIBUTIONS.get(module, module)
    return ImportError(
        f"{feature} needs {name}, which could not be imported ({error}); "
        f'install it with: pip install "imbalance[{EXTRAS[module]}]"',
        name=module,
    )


def import_optional(module: str, feature: str) -> ModuleType:
    """Import ``module`` (dotted names allowed) for ``feature``, or raise :func:`missing_dependency`'s error.

    Examples
    --------
    >>> import_optional("numpy.linalg", "an example").__name__
    'numpy.linalg'
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise missing_dependency(module.partition(".")[0], feature, error) from error
