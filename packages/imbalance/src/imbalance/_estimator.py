"""scikit-learn and imbalanced-learn conventions on top of :class:`~imbalance.base.BaseResampler`.

``fit``, ``n_features_in_`` / ``feature_names_in_``, ``get_feature_names_out`` and ``__sklearn_tags__``, so
that the resamplers work in ``imblearn.pipeline.Pipeline`` (``get_feature_names_out`` included), with
``sklearn.utils.get_tags`` and under imbalanced-learn's estimator checks. scikit-learn is imported only inside
``__sklearn_tags__``, which only scikit-learn calls: numpy-only use stays numpy-only.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ._optional import import_optional
from ._validation import check_same_length, is_dataframe
from .base import BaseResampler, n_rows

__all__ = ["Resampler"]


class Resampler(BaseResampler):
    """A :class:`BaseResampler` with scikit-learn's and imbalanced-learn's estimator conventions.

    Subclasses set ``_target`` to the kind of ``y`` they resample: ``"classes"`` (one class per sample),
    ``"labels"`` (a 0/1 label matrix) or ``"continuous"`` (real values); the tags say so.
    """

    _target: ClassVar[str]

    def fit(self, X: Any, y: Any) -> Resampler:
        """Draw the resampled list of ``y`` (``sample_indices_`` and the other fitted attributes) and record
        ``X``'s features; returns ``self``. ``fit_resample(X, y)`` also returns the resampled data.

        Returns
        -------
        self
        """
        self._require_y(y)
        check_same_length(X, n_rows(y))
        self.fit_indices(y)
        self._record_features(X)
        return self

    def fit_indices(self, y: Any) -> np.ndarray:
        """Draw the resampled row indices for target ``y``; also stored as ``sample_indices_``.

        Forgets the features of an earlier ``fit`` (there is no ``X`` here to describe).

        Returns
        -------
        numpy.ndarray of int64
            Row indices into ``y`` (and into any X aligned with it).
        """
        self._require_y(y)
        self._record_features(None)
        return super().fit_indices(y)

    def fit_resample(self, X: Any, y: Any) -> tuple[Any, Any]:
        """Resample ``X`` and ``y`` together; both come back in their own types (array, sparse, pandas, list).

        ``X`` may be any row-indexable object with the same number of rows as ``y``, or ``None``; a 2-D ``X``
        sets ``n_features_in_`` (and a DataFrame ``feature_names_in_``) for ``get_feature_names_out``.

        Returns
        -------
        X_res, y_res
            ``X[sample_indices_]`` and ``y[sample_indices_]``.
        """
        self._require_y(y)
        resampled = super().fit_resample(X, y)
        self._record_features(X)
        return resampled

    def _require_y(self, y: Any) -> None:
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")

    def _record_features(self, X: Any) -> None:
        """``n_features_in_`` for a 2-D ``X``, ``feature_names_in_`` for a DataFrame with string column names.

        An ``X`` without a 2-D shape (``None``, a list, images) leaves both unset, as scikit-learn does.
        """
        for name in ("n_features_in_", "feature_names_in_"):
            self.__dict__.pop(name, None)
        shape = getattr(X, "shape", None)
        if shape is None or len(shape) != 2:
            return
        self.n_features_in_ = int(shape[1])
        if is_dataframe(X) and all(isinstance(column, str) for column in X.columns):
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the output features: the input features, since resampling only selects rows.

        Parameters
        ----------
        input_features : sequence of str or None
            ``None`` gives ``feature_names_in_`` after fitting on a DataFrame, else ``x0``, ``x1``, ...
            Otherwise it must have ``n_features_in_`` names, equal to ``feature_names_in_`` when that is set.

        Returns
        -------
        numpy.ndarray of str objects

        Examples
        --------
        >>> import numpy as np
        >>> from imbalance import ClassBalancedSampler
        >>> sampler = ClassBalancedSampler(random_state=0).fit(np.zeros((4, 2)), [0, 0, 0, 1])
        >>> sampler.get_feature_names_out().tolist()
        ['x0', 'x1']
        """
        if not hasattr(self, "n_features_in_"):
            raise ValueError(
                f"{type(self).__name__}.get_feature_names_out needs the number of features: call fit or "
                "fit_resample with a 2-D X (an array or DataFrame of shape (n_samples, n_features)) first"
            )
        names_in = getattr(self, "feature_names_in_", None)
        if input_features is None:
            if names_in is not None:
                return names_in.copy()
            return np.asarray([f"x{i}" for i in range(self.n_features_in_)], dtype=object)
        features = np.asarray(input_features, dtype=object)
        if features.ndim != 1 or not all(isinstance(name, str) for name in features):
            raise ValueError(f"input_features must be a sequence of str, got {input_features!r}")
        if names_in is not None and not np.array_equal(features, names_in):
            raise ValueError(
                f"input_features is not equal to feature_names_in_: got {features.tolist()}, "
                f"fitted on {names_in.tolist()}"
            )
        if features.size != self.n_features_in_:
            raise ValueError(
                "input_features should have length equal to number of features "
                f"({self.n_features_in_}), got {features.size}"
            )
        return features

    def __sklearn_tags__(self) -> Any:
        """scikit-learn's estimator tags (imbalanced-learn's, with sampler tags, when it is installed).

        ``sklearn.utils.get_tags(sampler)`` calls it; it imports scikit-learn, and nothing else here does.
        """
        sklearn_utils = import_optional("sklearn.utils", f"{type(self).__name__}.__sklearn_tags__")
        try:
            from imblearn.utils._tags import InputTags, SamplerTags, Tags
        except ImportError:  # scikit-learn alone: its own tags, which have no sampler section
            InputTags, Tags = sklearn_utils.InputTags, sklearn_utils.Tags
            imblearn_input, imblearn = {}, {}
        else:
            imblearn_input, imblearn = {"dataframe": True}, {"sampler_tags": SamplerTags(sample_indices=True)}
        target = self._target
        return Tags(
            estimator_type="sampler",
            target_tags=sklearn_utils.TargetTags(
                required=True,
                one_d_labels=target != "labels",
                two_d_labels=target != "classes",
                multi_output=target != "classes",
                single_output=target != "labels",
            ),
            # X is only indexed by rows, never read: any dtype, NaN, strings and sparse storage pass through.
            input_tags=InputTags(
                two_d_array=True, sparse=True, string=True, allow_nan=True, **imblearn_input
            ),
            **imblearn,
        )
