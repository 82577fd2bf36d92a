"""The samplers inside imbalanced-learn's Pipeline (resampling at fit time only) and sklearn's clone."""

import numpy as np
import pytest
from imbalance_helpers import au_like
from imblearn.pipeline import Pipeline
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.multioutput import MultiOutputClassifier
from sklearn.neighbors import KNeighborsClassifier

from imbalance import LPROS, MLROS, MLRUS, ClassBalancedSampler


class RecordingKNN(KNeighborsClassifier):
    """Remembers how many rows it was fitted on."""

    def fit(self, X, y):
        self.n_fit_rows_ = len(X)
        return super().fit(X, y)


@pytest.mark.parametrize(
    "sampler", [MLROS(25, random_state=0), MLRUS(10, random_state=0), LPROS(20, random_state=0)]
)
def test_multilabel_samplers_in_a_pipeline(sampler):
    Y = au_like(400, seed=0)
    X = Y + np.random.default_rng(0).normal(0, 0.3, size=Y.shape)
    pipeline = Pipeline([("balance", sampler), ("model", RecordingKNN(n_neighbors=3))])
    pipeline.fit(X, Y)
    assert pipeline.named_steps["model"].n_fit_rows_ == len(sampler.fit_indices(Y))
    assert pipeline.predict(X).shape == Y.shape  # no resampling at predict time


def test_class_balancer_in_a_pipeline_and_clone():
    rng = np.random.default_rng(0)
    y = rng.choice(3, size=600, p=[0.8, 0.15, 0.05])
    X = rng.normal(size=(600, 2)) + y[:, None]
    sampler = ClassBalancedSampler(n_samples=900, max_repeats=30, random_state=0)
    pipeline = Pipeline([("balance", sampler), ("model", MultiOutputClassifier(LogisticRegression()))])
    pipeline.fit(X, y[:, None])
    assert pipeline.predict(X).shape == (600, 1)
    copy = clone(sampler)
    assert copy is not sampler and copy.get_params() == sampler.get_params()
    assert repr(copy) == "ClassBalancedSampler(n_samples=900, max_repeats=30, random_state=0)"


def test_set_params_rejects_unknown_names():
    with pytest.raises(ValueError, match="has no parameter 'percent'"):
        MLROS().set_params(percent=10)
