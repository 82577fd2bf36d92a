"""LP-ROS / LP-RUS: label sets as classes, budget shared towards the mean bag size."""

import numpy as np
import pytest
import scipy.sparse as sp

from imbalance import LPROS, LPRUS
from imbalance._validation import check_label_matrix
from imbalance.labelset import labelset_codes

# Label sets {0} x 8, {1} x 2, {0,1} x 2: mean bag size 4.
Y = np.array([[1, 0]] * 8 + [[0, 1]] * 2 + [[1, 1]] * 2)


def test_labelset_codes_agree_for_dense_sparse_and_wide_matrices():
    dense = labelset_codes(check_label_matrix(Y))
    assert dense.tolist() == [0] * 8 + [1] * 2 + [2] * 2  # numbered in order of first appearance
    np.testing.assert_array_equal(labelset_codes(check_label_matrix(sp.csr_matrix(Y))), dense)
    wide = np.zeros((12, 70), dtype=np.uint8)
    wide[:, :2] = Y
    wide[:2, 69] = 1
    assert np.unique(labelset_codes(check_label_matrix(wide))).size == 4


def test_lpros_fills_minority_label_sets_towards_the_mean():
    # budget floor(12 * 50 / 100) = 6; each of the two small bags may grow by 4 - 2 = 2 -> 4 clones in all.
    indices = LPROS(percentage=50, random_state=0).fit_indices(Y)
    np.testing.assert_array_equal(indices[:12], np.arange(12))
    clones = indices[12:]
    assert len(clones) == 4 and set(clones.tolist()) <= set(range(8, 12))
    assert np.bincount(clones >= 10).tolist() == [2, 2]


def test_lpros_shares_a_small_budget_and_passes_on_what_a_bag_cannot_use():
    Y3 = np.array([[1, 0]] * 9 + [[0, 1]] * 2 + [[1, 1]] * 1)  # bags 9, 2, 1; mean 4: needs 2 and 3
    clones = LPROS(percentage=25, random_state=0).fit_indices(Y3)[12:]  # budget 3
    assert len(clones) == 3 and set(clones.tolist()) <= {9, 10, 11}
    # The bag needing 2 is served first with floor(3 / 2) = 1, the other gets the remaining 2.
    assert sorted(np.bincount(clones >= 11, minlength=2).tolist()) == [1, 2]


def test_lprus_shrinks_majority_label_sets_towards_the_mean():
    kept = LPRUS(percentage=50, random_state=0).fit_indices(Y)  # the bag of 8 may lose 8 - 4 = 4
    assert len(kept) == 8 and int((kept < 8).sum()) == 4 and np.all(np.diff(kept) > 0)


def test_weights_are_expected_draws():
    np.testing.assert_allclose(LPROS(percentage=50).sample_weights(Y), [1.0] * 8 + [2.0] * 4)
    np.testing.assert_allclose(LPRUS(percentage=50).sample_weights(Y), [0.5] * 8 + [1.0] * 4)


@pytest.mark.parametrize("cls", [LPROS, LPRUS])
def test_deterministic_under_a_seed_and_sparse_equals_dense(cls):
    rng = np.random.default_rng(0)
    Y_random = (rng.random((300, 4)) < [0.6, 0.3, 0.1, 0.05]).astype(np.uint8)
    first = cls(30, random_state=4).fit_indices(Y_random)
    np.testing.assert_array_equal(first, cls(30, random_state=4).fit_indices(Y_random))
    np.testing.assert_array_equal(cls(30, random_state=4).fit_indices(sp.csr_matrix(Y_random)), first)
