"""The interface shared by every resampler: imbalanced-learn's ``fit_resample`` plus index-first helpers."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from ._validation import check_same_length, take_rows


class BaseResampler:
    """Base class: subclasses implement ``_fit_indices(y)`` and ``_expected_draws(y)``.

    Parameters live as public attributes named like the ``__init__`` arguments (scikit-learn's convention),
    so ``get_params``/``set_params``/``sklearn.base.clone`` and ``imblearn.pipeline.Pipeline`` work.
    """

    sample_indices_: np.ndarray

    def fit_indices(self, y: Any) -> np.ndarray:
        """Draw the resampled row indices for target ``y``; also stored as ``sample_indices_``.

        Returns
        -------
        numpy.ndarray of int64
            Row indices into ``y`` (and into any X aligned with it).
        """
        self.sample_indices_ = np.asarray(self._fit_indices(y), dtype=np.int64)
        return self.sample_indices_

    def fit_resample(self, X: Any, y: Any) -> tuple[Any, Any]:
        """Resample ``X`` and ``y`` together; both come back in their own types (array, sparse, pandas).

        ``X`` may be any row-indexable object with the same number of rows as ``y``, or ``None``.

        Returns
        -------
        X_res, y_res
            ``X[sample_indices_]`` and ``y[sample_indices_]``.
        """
        check_same_length(X, n_rows(y))
        indices = self.fit_indices(y)
        return take_rows(X, indices), take_rows(y, indices)

    def sample_weights(self, y: Any) -> np.ndarray:
        """Expected number of draws of each instance in one list from ``fit_indices(y)`` (float64).

        Feed them to ``torch.utils.data.WeightedRandomSampler(weights, num_samples=len(list))`` to draw the
        same distribution on the fly.
        """
        return np.asarray(self._expected_draws(y), dtype=np.float64)

    def _fit_indices(self, y: Any) -> np.ndarray:
        raise NotImplementedError

    def _expected_draws(self, y: Any) -> np.ndarray:
        raise NotImplementedError

    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [name for name in signature.parameters if name != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor parameters (scikit-learn convention)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> BaseResampler:
        """Set constructor parameters (scikit-learn convention); unknown names raise ``ValueError``."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"{type(self).__name__} has no parameter {name!r}; valid: {', '.join(valid)}"
                )
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = inspect.signature(type(self).__init__).parameters
        changed = [
            f"{name}={value!r}"
            for name, value in self.get_params().items()
            if defaults[name].default is inspect.Parameter.empty or defaults[name].default != value
        ]
        return f"{type(self).__name__}({', '.join(changed)})"


def n_rows(y: Any) -> int:
    """Number of samples of a target of any supported type."""
    shape = getattr(y, "shape", None)
    return int(shape[0]) if shape is not None and len(shape) > 0 else len(y)
