"""ML-ROS / ML-RUS: hand-checked event order, equality with the plain loop, statistics, properties."""

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from imbalance_helpers import au_like
from imbalance_oracle import mlros_reference, mlrus_reference

import imbalance
from imbalance import MLROS, MLRUS, EmptyLabelWarning


def _round_robin_case() -> tuple[np.ndarray, int, int]:
    """Row A = {0, 1} is label 1's only instance, row B = {2} label 2's; six filler labels hold 7 rows each.

    Counts 6, 1, 1, 7 x 6 -> IRLbl 7/6, 7, 7, 1 x 6 -> MeanIR = (7/6 + 14 + 6) / 9 = 2.3519. By hand:
    A: c=(7, 2), IRLbl1 = 7/2 keep | B: c2=2, 7/2 keep | A: c=(8, 3), 8/3 keep | B: c2=3, max is now 8:
    8/3 keep (with the max frozen at 7 it would be 7/3 <= MeanIR, dropped) | A: c=(9, 4), 9/4 drop |
    B: c2=4, 9/4 drop.
    """
    rows = [[1, 1, 0] + [0] * 6, [0, 0, 1] + [0] * 6] + [[1, 0, 0] + [0] * 6] * 5
    for filler in range(6):
        rows += [[0, 0, 0] + [int(i == filler) for i in range(6)]] * 7
    return np.array(rows), 0, 1


def test_mlros_round_robin_growing_max_and_drops_by_hand():
    Y, a, b = _round_robin_case()
    assert imbalance.mean_ir(Y) == pytest.approx((7 / 6 + 14 + 6) / 9)
    sampler = MLROS(percentage=25, random_state=0)  # budget 12, not binding
    indices = sampler.fit_indices(Y)
    np.testing.assert_array_equal(indices[: len(Y)], np.arange(len(Y)))
    assert indices[len(Y) :].tolist() == [a, b, a, b, a, b]
    assert sampler.clones_per_label_.tolist() == [0, 3, 3] + [0] * 6


def test_mlros_budget_stops_mid_pass():
    Y, a, b = _round_robin_case()
    indices = MLROS(percentage=10, random_state=0).fit_indices(Y)  # floor(49 * 10 / 100) = 4 clones
    assert indices[len(Y) :].tolist() == [a, b, a, b]


def test_mlrus_round_robin_drop_and_budget_by_hand():
    # counts 10, 4, 1, 1 -> IRLbl 1, 2.5, 10, 10 -> MeanIR 5.875; majority bags 0 and 1 alternate:
    # c0 9 | c1 3 (9/3 = 3) | c0 8 | c1 2 (4) | c0 7 | c1 1 (7 >= 5.875: dropped) | c0 6, 5, 4 (budget 9)
    Y = np.array([[1, 0, 0, 0]] * 10 + [[0, 1, 0, 0]] * 4 + [[0, 0, 1, 0], [0, 0, 0, 1]])
    for seed in range(5):
        kept = MLRUS(percentage=60, random_state=seed).fit_indices(Y)
        assert Y[kept].sum(axis=0).tolist() == [4, 1, 1, 1]
        assert kept.tolist() == sorted(set(kept.tolist()))


def test_mlros_ignores_minority_labels_at_mean_and_leaves_balanced_data_alone():
    balanced = np.array([[1, 0], [0, 1], [1, 1]])
    np.testing.assert_array_equal(MLROS(random_state=0).fit_indices(balanced), np.arange(3))
    np.testing.assert_array_equal(MLRUS(random_state=0).fit_indices(balanced), np.arange(3))


def test_empty_label_gets_a_warning_and_no_bag():
    Y = np.c_[au_like(200, seed=1), np.zeros(200, dtype=np.uint8)]
    with pytest.warns(EmptyLabelWarning):
        sampler = MLROS(random_state=0)
        sampler.fit_indices(Y)
    assert sampler.clones_per_label_[-1] == 0


def _random_case(rng: np.random.Generator) -> tuple[np.ndarray, float, int]:
    n, n_labels = int(rng.integers(1, 400)), int(rng.integers(1, 9))
    Y = (rng.random((n, n_labels)) < rng.random(n_labels) ** 2).astype(np.uint8)
    if rng.random() < 0.5:  # co-occurrence through a shared row factor
        Y |= (rng.random((n, 1)) < 0.1) & (rng.random((n, n_labels)) < 0.5)
    percentage = float(rng.choice([1.0, 10.0, 25.0, 50.0, 99.0, rng.uniform(0.01, 99.99)]))
    return Y, percentage, int(rng.integers(0, 2**31))


def test_batched_mlros_and_mlrus_match_the_plain_loop_on_many_cases():
    rng = np.random.default_rng(2024)
    checked = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmptyLabelWarning)
        for _ in range(300):
            Y, percentage, seed = _random_case(rng)
            if Y.sum() == 0:
                continue
            for given_y in (Y, sp.csr_matrix(Y)):
                np.testing.assert_array_equal(
                    MLROS(percentage, random_state=seed).fit_indices(given_y),
                    mlros_reference(Y, percentage, seed),
                )
                np.testing.assert_array_equal(
                    MLRUS(percentage, random_state=seed).fit_indices(given_y),
                    mlrus_reference(Y, percentage, seed),
                )
            checked += 1
    assert checked > 250


def test_batched_mlros_matches_the_plain_loop_on_a_large_skewed_case():
    # Large enough that the batched code works in many windows and drops bags mid-window.
    Y = au_like(30_000, seed=3)
    np.testing.assert_array_equal(MLROS(25, random_state=5).fit_indices(Y), mlros_reference(Y, 25, 5))
    np.testing.assert_array_equal(MLRUS(25, random_state=5).fit_indices(Y), mlrus_reference(Y, 25, 5))


@settings(max_examples=60, deadline=None)
@given(
    Y=arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 5)), elements=st.integers(0, 1)),
    percentage=st.floats(0.5, 99.5),
    seed=st.integers(0, 2**32 - 1),
)
def test_properties_of_mlros_and_mlrus(Y, percentage, seed):
    if Y.sum() == 0:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmptyLabelWarning)
        grown = MLROS(percentage, random_state=seed).fit_indices(Y)
        kept = MLRUS(percentage, random_state=seed).fit_indices(Y)
        again = MLROS(percentage, random_state=seed).fit_indices(Y)
        expected = mlros_reference(Y, percentage, seed)
    n, budget = len(Y), int(np.floor(len(Y) * percentage / 100))
    assert grown.dtype == np.int64 and kept.dtype == np.int64
    np.testing.assert_array_equal(grown[:n], np.arange(n))  # originals kept, once, in order
    assert n <= len(grown) <= n + budget and grown.min() >= 0 and grown.max() < n
    np.testing.assert_array_equal(grown, again)  # deterministic under a seed
    np.testing.assert_array_equal(grown, expected)
    assert n - budget <= len(kept) <= n and np.all(np.diff(kept) > 0)


def test_clones_are_uniform_within_a_bag_over_seeds():
    # Label 1 lives on 5 rows (IRLbl 19, MeanIR 10): 5 clones bring it to MeanIR; they should spread evenly.
    Y = np.array([[1, 0]] * 95 + [[0, 1]] * 5)
    hits = np.zeros(100)
    for seed in range(200):
        indices = MLROS(percentage=10, random_state=seed).fit_indices(Y)
        hits += np.bincount(indices[100:], minlength=100)
    per_row = hits[95:]
    assert per_row.sum() == 200 * 5
    chi2 = ((per_row - per_row.mean()) ** 2 / per_row.mean()).sum()
    assert chi2 < 18.5  # chi-square, 4 degrees of freedom, p = 0.001


def test_deletions_are_uniform_within_a_bag_over_seeds():
    # Label 0 holds 40 rows; ML-RUS deletes 10 of them per run (budget 10% of 100 rows).
    Y = np.array([[1, 0]] * 40 + [[0, 1]] * 20 + [[0, 0]] * 40)
    deleted = np.zeros(100)
    for seed in range(200):
        kept = MLRUS(percentage=10, random_state=seed).fit_indices(Y)
        deleted[np.setdiff1d(np.arange(100), kept)] += 1
    per_row = deleted[:40]
    assert deleted[40:].sum() == 0 and per_row.sum() == 200 * 10
    chi2 = ((per_row - per_row.mean()) ** 2 / per_row.mean()).sum()
    assert chi2 < 72.1  # chi-square, 39 degrees of freedom, p = 0.001


def test_mlros_lowers_mean_ir_on_average_and_different_seeds_differ():
    Y = au_like(5000, seed=11)
    before = imbalance.mean_ir(Y)
    lists = [MLROS(25, random_state=seed).fit_indices(Y) for seed in range(10)]
    assert all(imbalance.mean_ir(Y[idx]) < before for idx in lists)
    assert len({idx[5000:].tobytes() for idx in lists}) == 10


def test_mlros_sample_weights_are_expected_draws():
    Y = au_like(3000, seed=4)
    sampler = MLROS(25, random_state=1)
    weights = sampler.sample_weights(Y)
    indices = sampler.fit_indices(Y)
    assert weights.dtype == np.float64 and weights.min() >= 1.0
    assert weights.sum() == pytest.approx(len(indices))
    # Averaged over seeds, realised draws per row match the weights' pattern (rows of rare labels weigh more).
    draws = np.mean(
        [np.bincount(MLROS(25, random_state=s).fit_indices(Y), minlength=3000) for s in range(40)], 0
    )
    rare = Y[:, 0] == 1
    assert draws[rare].mean() == pytest.approx(weights[rare].mean(), rel=0.1)


def test_mlrus_weights_mark_kept_rows():
    Y = au_like(1000, seed=4)
    sampler = MLRUS(20, random_state=3)
    weights = sampler.sample_weights(Y)
    np.testing.assert_array_equal(np.flatnonzero(weights), sampler.fit_indices(Y))


def test_fit_resample_keeps_types_and_never_modifies_inputs():
    Y = au_like(500, seed=2)
    X = np.random.default_rng(0).normal(size=(500, 3))
    frame = pd.DataFrame(Y, columns=[f"AU{i}" for i in range(8)])
    originals = (Y.copy(), X.copy(), frame.copy())
    X_res, Y_res = MLROS(25, random_state=0).fit_resample(X, frame)
    assert isinstance(Y_res, pd.DataFrame) and list(Y_res.columns) == list(frame.columns)
    np.testing.assert_array_equal(X_res, X[MLROS(25, random_state=0).fit_indices(Y)])
    X_sparse, Y_sparse = MLRUS(10, random_state=0).fit_resample(sp.csr_matrix(X), sp.csr_matrix(Y))
    assert sp.issparse(X_sparse) and sp.issparse(Y_sparse) and Y_sparse.shape == (450, 8)
    np.testing.assert_array_equal(Y, originals[0])
    np.testing.assert_array_equal(X, originals[1])
    pd.testing.assert_frame_equal(frame, originals[2])


def test_sparse_labels_are_never_densified(monkeypatch):
    Y = sp.random(20_000, 300, density=0.01, format="csr", random_state=0, data_rvs=np.ones)
    Y = sp.csr_matrix(Y + sp.csr_matrix((np.ones(200), (np.arange(200), np.zeros(200, int))), shape=Y.shape))
    Y.data[:] = 1

    def refuse(*args, **kwargs):
        raise AssertionError("the sparse label matrix was densified")

    for name in ("toarray", "todense"):
        monkeypatch.setattr(sp._base._spbase, name, refuse)
    monkeypatch.setattr(sp._base._spbase, "__array__", refuse, raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmptyLabelWarning)
        grown = MLROS(25, random_state=0).fit_indices(Y)
        kept = MLRUS(10, random_state=0).fit_indices(Y)
        imbalance.describe(Y)
    assert len(grown) > 20_000 and len(kept) < 20_000
