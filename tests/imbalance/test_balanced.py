"""ClassBalancedSampler and BinnedSampler: equal probabilities, repeat cap, strategies, binning edges."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imbalance import BinnedSampler, ClassBalancedSampler

Y_CLASSES = np.array([0] * 90 + [1] * 9 + [2] * 1)


def test_every_class_gets_the_same_number_of_draws():
    indices = ClassBalancedSampler(n_samples=300, random_state=0).fit_indices(Y_CLASSES)
    assert np.bincount(Y_CLASSES[indices]).tolist() == [100, 100, 100]


def test_large_classes_are_drawn_without_replacement_small_ones_evenly():
    indices = ClassBalancedSampler(n_samples=150, random_state=0).fit_indices(Y_CLASSES)
    draws = np.bincount(indices, minlength=100)
    assert set(draws[:90].tolist()) <= {0, 1} and draws[:90].sum() == 50  # without replacement
    assert set(draws[90:99].tolist()) <= {5, 6}  # 50 draws over 9 rows: 5 or 6 each
    assert draws[99] == 50


def test_default_length_is_the_input_size_and_rows_come_ascending():
    indices = ClassBalancedSampler(random_state=1).fit_indices(Y_CLASSES)
    assert len(indices) == 100 and indices.dtype == np.int64
    assert np.all(np.diff(indices) >= 0)


def test_repeat_cap_moves_the_share_of_capped_classes_to_the_others():
    sampler = ClassBalancedSampler(n_samples=300, max_repeats=50, random_state=0)
    indices = sampler.fit_indices(Y_CLASSES)
    assert np.bincount(Y_CLASSES[indices]).tolist() == [125, 125, 50]
    assert np.bincount(indices).max() <= 50
    assert sampler.class_counts_.tolist() == [125, 125, 50]


def test_uneven_split_is_random_but_exact_in_expectation():
    totals = np.zeros(3)
    for seed in range(300):
        counts = np.bincount(Y_CLASSES[ClassBalancedSampler(random_state=seed).fit_indices(Y_CLASSES)])
        assert sorted(counts.tolist()) == [33, 33, 34]
        totals += counts
    assert np.all(np.abs(totals / 300 - 100 / 3) < 0.15)


def test_sample_weights_are_the_expected_draws_per_instance():
    sampler = ClassBalancedSampler(n_samples=300, max_repeats=50, random_state=0)
    weights = sampler.sample_weights(Y_CLASSES)
    assert weights.sum() == pytest.approx(300)
    np.testing.assert_allclose(weights[[0, 90, 99]], [125 / 90, 125 / 9, 50])
    empirical = np.mean(
        [
            np.bincount(ClassBalancedSampler(random_state=s).fit_indices(Y_CLASSES), minlength=100)
            for s in range(400)
        ],
        axis=0,
    )
    expected = ClassBalancedSampler().sample_weights(Y_CLASSES)
    assert np.all(np.abs(empirical - expected) <= 5 * np.sqrt(expected / 400))  # 5 sigma per row
    for cls in range(3):
        assert empirical[cls == Y_CLASSES].mean() == pytest.approx(
            expected[cls == Y_CLASSES].mean(), rel=0.02
        )


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        # "auto" and "all" mean what they mean for imbalanced-learn's over-samplers: up to the majority.
        ("auto", [90, 90, 90]),
        ("all", [90, 90, 90]),
        ("not majority", [90, 90, 90]),
        ("not minority", [1, 1, 1]),
        ("minority", [90, 9, 90]),
        ("majority", [1, 9, 1]),
        ({1: 20, 2: 3}, [90, 20, 3]),
        (lambda y: {2: 7}, [90, 9, 7]),
    ],
)
def test_imblearn_sampling_strategies(strategy, expected):
    indices = ClassBalancedSampler(sampling_strategy=strategy, random_state=0).fit_indices(Y_CLASSES)
    assert np.bincount(Y_CLASSES[indices], minlength=3).tolist() == expected


def test_string_classes_and_pandas_targets():
    y = pd.Series(["happy"] * 6 + ["sad"] * 2 + ["fear"])
    sampler = ClassBalancedSampler(n_samples=9, random_state=0)
    X_res, y_res = sampler.fit_resample(pd.DataFrame({"x": range(9)}), y)
    assert sorted(y_res.value_counts().tolist()) == [3, 3, 3]
    assert sampler.classes_.tolist() == ["fear", "happy", "sad"]
    assert (X_res.index == y_res.index).all()


@settings(max_examples=40, deadline=None)
@given(
    y=st.lists(st.integers(0, 5), min_size=2, max_size=60).filter(lambda values: len(set(values)) > 1),
    n_samples=st.integers(1, 200),
    cap=st.one_of(st.none(), st.integers(4, 10)),
    seed=st.integers(0, 2**32 - 1),
)
def test_class_balanced_properties(y, n_samples, cap, seed):
    y = np.array(y)
    sampler = ClassBalancedSampler(n_samples=n_samples, max_repeats=cap, random_state=seed)
    if cap is not None and n_samples > cap * len(y):
        with pytest.raises(ValueError, match="cannot be drawn with max_repeats"):
            sampler.fit_indices(y)
        return
    indices = sampler.fit_indices(y)
    assert len(indices) == n_samples and indices.min() >= 0 and indices.max() < len(y)
    np.testing.assert_array_equal(
        indices, ClassBalancedSampler(n_samples, cap, random_state=seed).fit_indices(y)
    )
    counts = np.bincount(y[indices], minlength=6)[np.unique(y)]
    if cap is None:
        assert counts.max() - counts.min() <= 1
    else:
        assert np.bincount(indices).max() <= cap


def test_bins_follow_the_documented_edges():
    sampler = BinnedSampler()
    values = np.array([-1.0, -0.9, -0.9000001, 0.0, 0.95, 1.0])
    assert sampler.digitize(values)[:, 0].tolist() == [0, 1, 0, 10, 19, 19]
    edges = np.linspace(-1, 1, 21)
    assert sampler.digitize(edges[:-1])[:, 0].tolist() == list(range(20))


def test_out_of_range_error_names_the_row_or_clips():
    va = np.array([[0.0, 0.0], [0.5, 1.2]])
    with pytest.raises(ValueError, match=r"y\[1, 1\] = 1.2 is outside the binning range \[-1.0, 1.0\]"):
        BinnedSampler().fit_indices(va)
    clipped = BinnedSampler(out_of_range="clip").digitize(va)
    assert clipped.tolist() == [[10, 10], [15, 19]]


def _va(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal([0.2, 0.1], [0.25, 0.3], size=(n, 2)), -1, 1)


def test_joint_bins_are_balanced_cell_by_cell():
    va = _va(20_000, 0)
    sampler = BinnedSampler(n_bins=5, random_state=0)
    indices = sampler.fit_indices(va)
    cells = np.ravel_multi_index(tuple(sampler.digitize(va[indices]).T), (5, 5))
    counts = np.bincount(cells, minlength=25)
    present = np.bincount(np.ravel_multi_index(tuple(sampler.digitize(va).T), (5, 5)), minlength=25) > 0
    assert np.all(counts[~present] == 0)
    assert counts[present].max() - counts[present].min() <= 1
    assert len(sampler.cells_) == present.sum()


def test_per_dimension_balancing_gives_uniform_marginals():
    va = _va(20_000, 1)
    sampler = BinnedSampler(n_bins=5, joint=False, random_state=0)
    bins = sampler.digitize(va[sampler.fit_indices(va)])
    for dim in range(2):
        marginal = np.bincount(bins[:, dim], minlength=5)
        assert marginal.max() - marginal.min() <= 5, marginal  # equal up to integer rounding of the cells
    assert sampler.sample_weights(va).sum() == pytest.approx(20_000)


def test_per_dimension_balancing_warns_when_impossible():
    # Cells (0,0), (1,0), (2,1): bins 0 and 1 of dimension 0 only meet bin 0 of dimension 1.
    y = np.array([[-0.9, -0.9], [0.0, -0.9], [0.9, 0.9]] * 10)
    with pytest.warns(RuntimeWarning, match="closest reachable"):
        BinnedSampler(n_bins=3, joint=False, random_state=0).fit_indices(y)


def test_repeat_cap_protects_rare_cells():
    va = np.r_[_va(5000, 2), [[1.0, -1.0]]]  # one lonely instance in the corner cell
    capped = BinnedSampler(max_repeats=10, random_state=0).fit_indices(va)
    assert np.bincount(capped)[-1] == 10 and len(capped) == len(va)
    uncapped = BinnedSampler(random_state=0).fit_indices(va)
    assert np.bincount(uncapped)[-1] > 10


def test_one_dimensional_target():
    y = np.r_[np.full(90, 0.05), np.full(10, -0.75)]
    indices = BinnedSampler(n_bins=4, random_state=0).fit_indices(y)
    assert np.bincount(BinnedSampler(n_bins=4).digitize(y[indices])[:, 0]).tolist() == [50, 0, 50]


@pytest.mark.parametrize(("n_bins", "low", "high"), [(20, -1.0, 1.0), (7, -0.3, 2.9), (100, -5.0, 5.0)])
def test_digitize_agrees_with_the_edges_next_to_every_edge(n_bins, low, high):
    edges = np.linspace(low, high, n_bins + 1)
    near = np.r_[edges, np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf)].clip(low, high)
    values = np.r_[np.random.default_rng(0).uniform(low, high, 10_000), near]
    expected = np.minimum(np.searchsorted(edges, values, side="right") - 1, n_bins - 1)
    got = BinnedSampler(n_bins=n_bins, low=low, high=high).digitize(values)[:, 0]
    np.testing.assert_array_equal(got, expected)
