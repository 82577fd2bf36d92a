"""Every bad input is a ValueError that says what and where; nothing is modified in place."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import imbalance
from imbalance import LPROS, LPRUS, MLROS, MLRUS, BinnedSampler, ClassBalancedSampler

MULTILABEL = [MLROS, MLRUS, LPROS, LPRUS]


@pytest.mark.parametrize("cls", MULTILABEL)
@pytest.mark.parametrize(
    ("Y", "message"),
    [
        (np.array([[1, 0], [2, 1]]), r"binary \(0/1\): row 1, label '0' holds 2"),
        (np.array([[1.0, 0.0], [0.0, np.nan]]), r"row 1, label '1' holds nan"),
        (pd.DataFrame({"AU1": [1, 0], "AU2": [0.5, 1]}), r"row 0, label 'AU2' holds 0.5"),
        (sp.csr_matrix(np.array([[1, 0], [0, 3]])), r"row 1, label 1 holds 3"),
        (
            pd.DataFrame({"AU1": pd.array([1, None], dtype="Int64"), "AU2": [0, 1]}),
            r"row 1, label 'AU1' holds nan",
        ),
        (np.array([1, 0, 1]), r"2-D label matrix .* got shape \(3,\)"),
        (np.zeros((0, 3)), "empty: it has no rows"),
        (np.zeros((3, 0)), "no label columns"),
        (np.array([["a", "b"]], dtype=object), "must hold numbers 0/1: column 0, row 0 holds str 'a'"),
    ],
)
def test_bad_label_matrices(cls, Y, message):
    with pytest.raises(ValueError, match=message):
        cls(random_state=0).fit_indices(Y)


@pytest.mark.parametrize(
    "measure", [imbalance.irlbl, imbalance.mean_ir, imbalance.scumble, imbalance.describe]
)
def test_measures_reject_bad_matrices(measure):
    with pytest.raises(ValueError, match="binary"):
        measure(np.array([[1, -1]]))


@pytest.mark.parametrize("cls", MULTILABEL)
@pytest.mark.parametrize("percentage", [0, 100, -5, 150, float("nan"), "25", True])
def test_percentage_outside_the_open_interval(cls, percentage):
    with pytest.raises(ValueError, match="percentage"):
        cls(percentage=percentage).fit_indices(np.eye(3))


@pytest.mark.parametrize("random_state", [-1, "seed", 1.5])
def test_bad_random_state(random_state):
    with pytest.raises(ValueError, match="random_state"):
        MLROS(random_state=random_state).fit_indices(np.eye(3))


def test_x_and_y_of_different_lengths():
    with pytest.raises(ValueError, match="X has 4 rows but y has 3"):
        MLROS().fit_resample(np.zeros((4, 2)), np.eye(3))
    with pytest.raises(ValueError, match="X has 2 rows but y has 3"):
        ClassBalancedSampler().fit_resample([[0], [1]], [0, 1, 1])


@pytest.mark.parametrize(
    ("y", "message"),
    [
        (np.array([0.0, np.nan, 1.0]), "NaN at index 1"),
        (np.array([], dtype=int), "empty"),
        (np.zeros((3, 2, 2)), "1-D class target"),
        (np.full((3, 2), 0.5), r"shape \(3, 2\): a class sampler takes a 1-D class target, or a one-hot"),
        (np.array([[1, 0], [1, 1]]), "y row 1 holds 2 ones: a 2-D y must be one-hot.*use MLROS"),
        (np.zeros((3, 2)), "y row 0 holds 0 ones"),
        # Continuous targets: before, every distinct value became a class.
        (np.linspace(0, 1, 20), r"y holds 0.05263\d* at index 1: a continuous value, not a class label"),
        (np.array([1, 2.5, 2.5], dtype=object), "y holds 2.5 at index 1: a continuous value.*BinnedSampler"),
        (pd.Series([0.0, 1.0, np.inf]), "y holds inf at index 2: a continuous value"),
        # A single class: nothing to balance.
        (np.zeros(20), r"y holds one class only \(0.0\).*needs at least two classes"),
        (["a", "a"], "y holds one class only"),
        (np.array(["a", None], dtype=object), "missing value at index 1"),
        (pd.Series(["a", "b", None], dtype="string"), "missing value at index 2"),
        # Before: "'<' not supported between instances of 'int' and 'str'", from inside numpy.
        (np.array(["a", 1, "b"], dtype=object), "y mixes class label types: index 0 holds str 'a', index 1"),
        (pd.Series(["a", 1]), "y mixes class label types"),
        # Before: accepted, with the 1 silently turned into "1".
        (["a", 1, "1"], "y mixes class label types: index 0 holds str 'a', index 1 holds int 1"),
        (np.array([(1, 2), "a"], dtype=object), "must be strings or numbers: index 0 holds tuple"),
    ],
)
def test_bad_class_targets(y, message):
    with pytest.raises(ValueError, match=message):
        ClassBalancedSampler().fit_indices(y)


def test_class_labels_of_one_type_are_accepted():
    assert ClassBalancedSampler(random_state=0).fit_indices(["a", "b", "b"]).tolist() == [0, 0, 2]
    assert len(ClassBalancedSampler(random_state=0).fit_indices(np.array([1, 2.0, 2.0], dtype=object))) == 3
    assert len(ClassBalancedSampler(random_state=0).fit_indices(np.array([1.0, 2.0, 2.0]))) == 3


@pytest.mark.parametrize(
    ("Y", "message"),
    [
        # Before: "could not convert string to float: 'x'", with no column named.
        (
            pd.DataFrame({"AU1": [1, 0], "AU2": ["1", "x"]}),
            r"Y must hold numbers 0/1: column 'AU2', row 1 holds str 'x'",
        ),
        (np.array([[1, 0], [0, "x"]], dtype=object), r"column 1, row 1 holds str 'x'"),
    ],
)
def test_non_numeric_label_columns_are_named(Y, message):
    with pytest.raises(ValueError, match=message):
        imbalance.mean_ir(Y)


def test_non_numeric_continuous_columns_are_named():
    va = pd.DataFrame({"valence": [0.1, 0.2], "arousal": [0.3, "high"]})
    with pytest.raises(
        ValueError, match=r"y must hold real numbers: column 'arousal', row 1 holds str 'high'"
    ):
        BinnedSampler().fit_indices(va)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"n_samples": 0}, "n_samples must be a positive integer"),
        ({"max_repeats": 0}, "max_repeats must be a positive integer"),
        ({"n_samples": 100, "max_repeats": 2}, "n_samples=100 cannot be drawn with max_repeats=2"),
        ({"sampling_strategy": "balanced"}, r"sampling_strategy must be one of \('equal', 'auto'"),
        ({"sampling_strategy": {7: 3}}, "class 7, which is not in y"),
        ({"sampling_strategy": {0: -1}}, r"sampling_strategy\[0\] must be a non-negative int"),
        ({"sampling_strategy": 0.5}, "a dict or a callable"),
        ({"sampling_strategy": "auto", "n_samples": 10}, "n_samples=10 only applies to .*'equal'"),
    ],
)
def test_bad_class_sampler_parameters(params, message):
    with pytest.raises(ValueError, match=message):
        ClassBalancedSampler(**params).fit_indices(np.array([0, 0, 1, 1, 1]))


@pytest.mark.parametrize(
    ("params", "y", "message"),
    [
        ({}, np.array([0.0, np.inf]), r"finite: row 1, dimension 0 holds inf"),
        ({}, np.array([[0.0, -1.5]]), r"y\[0, 1\] = -1.5 is outside the binning range"),
        ({"n_bins": 0}, np.zeros(3), "n_bins must be a positive integer"),
        ({"low": 1.0, "high": -1.0}, np.zeros(3), "low must be finite and below high"),
        ({"out_of_range": "wrap"}, np.zeros(3), "out_of_range must be 'error' or 'clip'"),
        ({}, np.zeros((2, 2, 2)), r"1-D or \(n_samples, n_dims\)"),
        ({}, np.zeros(0), "empty"),
    ],
)
def test_bad_binned_inputs(params, y, message):
    with pytest.raises(ValueError, match=message):
        BinnedSampler(**params).fit_indices(y)


def test_no_resampler_modifies_its_inputs():
    rng = np.random.default_rng(0)
    Y = (rng.random((200, 4)) < [0.5, 0.2, 0.05, 0.3]).astype(np.int64)
    X = rng.normal(size=(200, 3))
    y = rng.integers(0, 3, 200)
    va = rng.uniform(-1.2, 1.2, size=(200, 2))
    saved = [a.copy() for a in (Y, X, y, va)]
    for sampler in (
        MLROS(random_state=0),
        MLRUS(random_state=0),
        LPROS(random_state=0),
        LPRUS(random_state=0),
    ):
        sampler.fit_resample(X, Y)
        sampler.sample_weights(Y)
    ClassBalancedSampler(random_state=0).fit_resample(X, y)
    BinnedSampler(out_of_range="clip", random_state=0).fit_resample(X, va)
    for before, after in zip(saved, (Y, X, y, va), strict=True):
        np.testing.assert_array_equal(before, after)
