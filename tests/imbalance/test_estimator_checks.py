"""scikit-learn / imbalanced-learn conventions: imbalanced-learn's estimator checks, tags, ``fit``,
``sampling_strategy_`` and ``get_feature_names_out``.

``ClassBalancedSampler`` passes every check of ``imblearn.utils.estimator_checks.parametrize_with_checks``.
The other samplers run the same checks; the ones they cannot meet are listed below with the reason, and
are strict expected failures: a listed check that starts passing fails this test until it is removed.
"""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from imbalance_helpers import au_like
from imblearn.utils.estimator_checks import estimator_checks_generator
from sklearn.base import clone
from sklearn.utils import get_tags

from imbalance import LPROS, LPRUS, MLROS, MLRUS, BinnedSampler, ClassBalancedSampler


# The same cases as imblearn's parametrize_with_checks, as a list: pytest deprecates a generator there.
@pytest.mark.parametrize(
    ("estimator", "check"),
    [
        pytest.param(estimator, check, id=f"ClassBalancedSampler-{check.func.__name__}")
        for estimator, check in estimator_checks_generator(ClassBalancedSampler(random_state=0))
    ],
)
def test_class_balanced_sampler_passes_every_imblearn_check(estimator, check):
    check(estimator)


_ONE_D_CLASS_DATA = (
    "the check's y is a 1-D class vector; a multi-label sampler resamples a 0/1 label matrix (n, L) and "
    "refuses a 1-D y"
)
MULTILABEL_CANNOT_MEET = {
    "check_target_type": (
        "the check requires refusing a multi-label 0/1 matrix, which is exactly the target these samplers "
        "resample"
    ),
    "check_samplers_one_label": _ONE_D_CLASS_DATA,
    "check_samplers_fit": _ONE_D_CLASS_DATA + "; nor is there a sampling_strategy (ML-ROS/LP-ROS take a "
    "percentage), hence no sampling_strategy_",
    "check_samplers_fit_resample": _ONE_D_CLASS_DATA,
    "check_samplers_sparse": _ONE_D_CLASS_DATA + " (sparse X: see test_multilabel_x_types)",
    "check_samplers_pandas": _ONE_D_CLASS_DATA + " or Series (DataFrames: see test_multilabel_x_types)",
    "check_samplers_pandas_sparse": _ONE_D_CLASS_DATA + " (see test_multilabel_x_types)",
    "check_samplers_string": _ONE_D_CLASS_DATA + " (string X: see test_multilabel_x_types)",
    "check_samplers_nan": _ONE_D_CLASS_DATA + " (X with NaN: see test_multilabel_x_types)",
    "check_samplers_list": _ONE_D_CLASS_DATA + " (lists: see test_multilabel_x_types)",
    "check_samplers_multiclass_ova": _ONE_D_CLASS_DATA,
    "check_samplers_preserve_dtype": _ONE_D_CLASS_DATA + " (dtypes: see test_multilabel_x_types)",
    "check_samplers_sample_indices": _ONE_D_CLASS_DATA + " (see test_multilabel_x_types)",
    "check_samplers_2d_target": (
        "the check's (n, 1) target holds the classes 0, 1, 2; a label matrix must be 0/1"
    ),
    "check_sampler_get_feature_names_out": _ONE_D_CLASS_DATA + " (see test_get_feature_names_out)",
    "check_sampler_get_feature_names_out_pandas": _ONE_D_CLASS_DATA + " (see test_get_feature_names_out)",
}
BINNED_CANNOT_MEET = {
    "check_target_type": (
        "a continuous y is what BinnedSampler balances (the check requires refusing it), and a 2-D y is a "
        "D-dimensional continuous target such as valence-arousal, not a multi-label matrix to refuse"
    ),
    "check_samplers_one_label": (
        "a constant y is one bin of a continuous target: already balanced, returned unchanged, not an error"
    ),
    "check_samplers_multiclass_ova": (
        "a 2-D y is a D-dimensional target binned jointly, not a one-vs-all encoding of classes: the one-hot "
        "rows become cells of a 3-D grid, numbered in another order than the classes, so the draws differ"
    ),
}
# BinnedSampler over [0, 3) in 3 bins: the checks' classes 0, 1, 2 are values inside the range, one per bin.
CANNOT_MEET = [
    (MLROS(random_state=0), MULTILABEL_CANNOT_MEET),
    (MLRUS(random_state=0), MULTILABEL_CANNOT_MEET),
    (LPROS(random_state=0), MULTILABEL_CANNOT_MEET),
    (LPRUS(random_state=0), MULTILABEL_CANNOT_MEET),
    (BinnedSampler(n_bins=3, low=0.0, high=3.0, random_state=0), BINNED_CANNOT_MEET),
]


def _cases():
    for sampler, cannot_meet in CANNOT_MEET:
        for estimator, check in estimator_checks_generator(sampler):
            name = check.func.__name__
            marks = [pytest.mark.xfail(reason=cannot_meet[name], strict=True)] if name in cannot_meet else []
            yield pytest.param(estimator, check, id=f"{type(sampler).__name__}-{name}", marks=marks)


@pytest.mark.parametrize(("estimator", "check"), list(_cases()))
def test_other_samplers_meet_the_imblearn_checks_that_apply(estimator, check):
    check(estimator)


def test_every_listed_check_exists():
    for sampler, cannot_meet in CANNOT_MEET:
        names = {check.func.__name__ for _, check in estimator_checks_generator(sampler)}
        assert set(cannot_meet) <= names, set(cannot_meet) - names


@pytest.mark.parametrize(
    ("sampler", "one_d", "two_d", "multi_output"),
    [
        (ClassBalancedSampler(), True, False, False),
        (BinnedSampler(), True, True, True),
        (MLROS(), False, True, True),
        (LPRUS(), False, True, True),
    ],
)
def test_tags(sampler, one_d, two_d, multi_output):
    tags = get_tags(sampler)
    assert tags.estimator_type == "sampler" and tags.sampler_tags.sample_indices
    assert tags.target_tags.required
    assert (tags.target_tags.one_d_labels, tags.target_tags.two_d_labels) == (one_d, two_d)
    assert tags.target_tags.multi_output is multi_output
    assert tags.input_tags.sparse and tags.input_tags.dataframe and tags.input_tags.allow_nan


def test_tags_without_imblearn_are_scikit_learns(monkeypatch):
    monkeypatch.setitem(sys.modules, "imblearn", None)
    monkeypatch.setitem(sys.modules, "imblearn.utils._tags", None)
    tags = get_tags(MLROS())
    assert tags.estimator_type == "sampler" and tags.target_tags.multi_output
    assert not hasattr(tags, "sampler_tags")


def test_numpy_only_use_never_imports_scikit_learn():
    code = (
        "import sys, numpy as np, imbalance\n"
        "X, y = np.zeros((6, 2)), np.array([0, 0, 0, 0, 1, 1])\n"
        "s = imbalance.ClassBalancedSampler(random_state=0).fit(X, y)\n"
        "s.fit_resample(X, y); s.get_feature_names_out(); s.sampling_strategy_\n"
        "imbalance.MLROS(random_state=0).fit_resample(X, np.eye(6)[:, :3])\n"
        "print(sorted(m for m in ('sklearn', 'imblearn', 'scipy', 'pandas') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ----- ClassBalancedSampler: sampling_strategy, sampling_strategy_, targets -----

Y_CLASSES = np.array([0] * 90 + [1] * 9 + [2] * 1)


def test_equal_share_is_the_default_and_auto_is_imblearns():
    default = ClassBalancedSampler(random_state=0).fit_indices(Y_CLASSES)
    equal = ClassBalancedSampler(sampling_strategy="equal", random_state=0).fit_indices(Y_CLASSES)
    np.testing.assert_array_equal(default, equal)
    assert len(default) == 100
    from imblearn.over_sampling import RandomOverSampler

    auto = ClassBalancedSampler(sampling_strategy="auto", random_state=0).fit_resample(None, Y_CLASSES)[1]
    _, ros = RandomOverSampler(random_state=0).fit_resample(np.zeros((100, 1)), Y_CLASSES)
    assert np.bincount(auto).tolist() == np.bincount(ros).tolist() == [90, 90, 90]


@pytest.mark.parametrize("strategy", ["equal", "auto", "not minority", {"a": 20, "c": 3}])
def test_sampling_strategy_is_the_fitted_draws_per_class_and_reproduces_them(strategy):
    y = np.array(["b"] * 50 + ["a"] * 9 + ["c"] * 3)
    sampler = ClassBalancedSampler(sampling_strategy=strategy, random_state=0).fit(None, y)
    assert list(sampler.sampling_strategy_) == ["a", "b", "c"]
    assert list(sampler.sampling_strategy_.values()) == sampler.class_counts_.tolist()
    assert all(type(key) is str and type(value) is int for key, value in sampler.sampling_strategy_.items())
    again = ClassBalancedSampler(sampling_strategy=sampler.sampling_strategy_, random_state=1).fit(None, y)
    assert again.sampling_strategy_ == sampler.sampling_strategy_


def test_binned_sampling_strategy_counts_draws_per_cell():
    va = np.array([[-0.9, -0.9]] * 6 + [[0.9, 0.9]] * 2)
    sampler = BinnedSampler(n_bins=2, random_state=0).fit(None, va)
    assert sampler.sampling_strategy_ == {(0, 0): 4, (1, 1): 4}


def test_a_one_hot_target_is_read_as_classes_and_resampled_as_rows():
    X = np.arange(100.0)[:, None]
    one_hot = np.eye(3, dtype=np.int8)[Y_CLASSES]
    sampler = ClassBalancedSampler(random_state=0)
    X_res, y_res = sampler.fit_resample(X, one_hot)
    X_ref, y_ref = ClassBalancedSampler(random_state=0).fit_resample(X, Y_CLASSES)
    np.testing.assert_array_equal(X_res, X_ref)
    np.testing.assert_array_equal(y_res, np.eye(3, dtype=np.int8)[y_ref])
    assert sampler.classes_.tolist() == [0, 1, 2]


# ----- fit, n_features_in_, get_feature_names_out, for every sampler -----

Y_LABELS = au_like(300, seed=1)
SAMPLERS = [
    (ClassBalancedSampler(random_state=0), Y_LABELS.argmax(axis=1)),
    (BinnedSampler(n_bins=4, random_state=0), np.linspace(-1, 1, 300) ** 3),
    (MLROS(random_state=0), Y_LABELS),
    (MLRUS(random_state=0), Y_LABELS),
    (LPROS(random_state=0), Y_LABELS),
    (LPRUS(random_state=0), Y_LABELS),
]
IDS = [type(sampler).__name__ for sampler, _ in SAMPLERS]


@pytest.mark.parametrize(("sampler", "y"), SAMPLERS, ids=IDS)
def test_fit_draws_the_list_and_returns_self(sampler, y):
    X = np.zeros((300, 2))
    fitted = clone(sampler)
    assert fitted.fit(X, y) is fitted
    np.testing.assert_array_equal(fitted.sample_indices_, clone(sampler).fit_indices(y))
    assert fitted.n_features_in_ == 2
    with pytest.raises(ValueError, match="X has 3 rows but y has 300"):
        clone(sampler).fit(np.zeros((3, 2)), y)
    for method in ("fit", "fit_resample"):
        with pytest.raises(ValueError, match="requires y to be passed, but the target y is None"):
            getattr(clone(sampler), method)(X, None)


@pytest.mark.parametrize(("sampler", "y"), SAMPLERS, ids=IDS)
def test_get_feature_names_out(sampler, y):
    sampler = clone(sampler)
    with pytest.raises(ValueError, match="call fit or fit_resample with a 2-D X"):
        sampler.get_feature_names_out()
    X = pd.DataFrame(np.zeros((300, 3)), columns=["a", "b", "c"])
    sampler.fit_resample(X, y)
    assert sampler.get_feature_names_out().tolist() == ["a", "b", "c"]
    assert sampler.get_feature_names_out(["a", "b", "c"]).dtype == object
    with pytest.raises(ValueError, match="input_features is not equal to feature_names_in_"):
        sampler.get_feature_names_out(["a", "b", "d"])
    sampler.fit(X.to_numpy(), y)
    assert not hasattr(sampler, "feature_names_in_")
    assert sampler.get_feature_names_out().tolist() == ["x0", "x1", "x2"]
    assert sampler.get_feature_names_out(["u", "v", "w"]).tolist() == ["u", "v", "w"]
    with pytest.raises(
        ValueError, match=r"input_features should have length equal to number of features \(3\)"
    ):
        sampler.get_feature_names_out(["u"])
    with pytest.raises(ValueError, match="input_features must be a sequence of str"):
        sampler.get_feature_names_out([1, 2, 3])
    sampler.fit_indices(y)  # no X: the features of the earlier fit are forgotten
    with pytest.raises(ValueError, match="call fit or fit_resample"):
        sampler.get_feature_names_out()


# ----- the X-side imblearn checks, with a label matrix as the target -----


def _x_variants(X):
    frame = pd.DataFrame(X, columns=[f"c{i}" for i in range(X.shape[1])])
    return {
        "sparse": (sp.csr_matrix(X), lambda out: out.toarray(), sp.csr_matrix),
        "dataframe": (frame, lambda out: out.to_numpy(), pd.DataFrame),
        "sparse dataframe": (
            frame.astype(pd.SparseDtype(float, 0)),
            lambda out: out.to_numpy(),
            pd.DataFrame,
        ),
        "list": (X.tolist(), np.asarray, list),
        "float32": (X.astype(np.float32), lambda out: out, np.ndarray),
    }


@pytest.mark.parametrize(
    "sampler", [MLROS(random_state=0), MLRUS(random_state=0), LPROS(random_state=0)], ids=str
)
@pytest.mark.parametrize("kind", ["sparse", "dataframe", "sparse dataframe", "list", "float32"])
def test_multilabel_x_types(sampler, kind):
    """imblearn's sparse / pandas / list / dtype / sample_indices checks, with a 0/1 label matrix as y."""
    X = np.random.default_rng(0).normal(size=(300, 3))
    X_ref, Y_ref = clone(sampler).fit_resample(X, Y_LABELS)
    variant, to_array, kind_type = _x_variants(X)[kind]
    fitted = clone(sampler)
    X_res, Y_res = fitted.fit_resample(variant, Y_LABELS)
    assert isinstance(X_res, kind_type)
    np.testing.assert_allclose(to_array(X_res), X_ref, rtol=1e-6)
    np.testing.assert_array_equal(Y_res, Y_ref)
    np.testing.assert_array_equal(fitted.sample_indices_, clone(sampler).fit_indices(Y_LABELS))
    if kind == "float32":
        assert X_res.dtype == np.float32
    if kind == "dataframe":
        assert X_res.columns.tolist() == ["c0", "c1", "c2"]
        _, Y_frame = clone(sampler).fit_resample(variant, pd.DataFrame(Y_LABELS, columns=list("ABCDEFGH")))
        assert Y_frame.columns.tolist() == list("ABCDEFGH") and (Y_frame.index == X_res.index).all()


@pytest.mark.parametrize("sampler", [MLROS(random_state=0), LPRUS(random_state=0)], ids=str)
def test_multilabel_x_with_strings_and_nan_passes_through(sampler):
    X = np.array([["A"], ["B"], [None]] * 100, dtype=object)
    X_res, Y_res = clone(sampler).fit_resample(X, Y_LABELS)
    assert X_res.dtype == object and X_res.shape[0] == Y_res.shape[0]
    X_nan = np.tile([[0.0], [np.nan], [1.0]], (100, 1))
    assert np.isnan(clone(sampler).fit_resample(X_nan, Y_LABELS)[0]).any()
