import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import imbalance
from imbalance import EmptyLabelWarning

# 5 instances, 3 labels: counts 4, 2, 1 -> IRLbl 1, 2, 4; MeanIR 7/3.
Y = np.array([[1, 0, 0], [1, 1, 0], [1, 1, 1], [1, 0, 0], [0, 0, 0]])


def test_irlbl_and_dataset_figures_by_hand():
    np.testing.assert_allclose(imbalance.irlbl(Y), [1.0, 2.0, 4.0])
    assert imbalance.max_ir(Y) == 4.0
    assert imbalance.mean_ir(Y) == pytest.approx(7 / 3)
    std = np.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) / 2)
    assert imbalance.cvir(Y) == pytest.approx(std / (7 / 3))


def test_scumble_by_hand():
    # row 1: labels {0,1}: IRLbl 1, 2 -> 1 - sqrt(2)/1.5 ; row 2: {0,1,2}: 1 - 8**(1/3)/(7/3) = 1 - 2/(7/3)
    row1 = 1 - np.sqrt(2) / 1.5
    row2 = 1 - 2 / (7 / 3)
    assert imbalance.scumble(Y) == pytest.approx((row1 + row2) / 5)
    described = imbalance.describe(Y)
    np.testing.assert_allclose(
        described.scumble_per_label, [(row1 + row2) / 4, (row1 + row2) / 2, row2], rtol=1e-12
    )


def test_describe_table():
    d = imbalance.describe(pd.DataFrame(Y, columns=["AU1", "AU2", "AU4"]))
    assert d.labels == ["AU1", "AU2", "AU4"]
    assert d.count.tolist() == [4, 2, 1]
    np.testing.assert_allclose(d.share, [0.8, 0.4, 0.2])
    assert d.n_samples == 5 and d.n_labels == 3 and d.cardinality == pytest.approx(7 / 5)
    frame = d.to_frame()
    assert list(frame.columns) == ["count", "share", "IRLbl", "SCUMBLE"] and frame.index.name == "label"
    text = str(d)
    assert "AU4" in text and "MeanIR=2.333" in text


@pytest.mark.parametrize("convert", [np.asarray, sp.csr_matrix, sp.csc_array, sp.coo_matrix, pd.DataFrame])
def test_every_input_type_gives_the_same_measures(convert, au_matrix):
    expected = imbalance.describe(au_matrix)
    got = imbalance.describe(convert(au_matrix))
    np.testing.assert_array_equal(got.count, expected.count)
    np.testing.assert_allclose(got.scumble_per_label, expected.scumble_per_label)
    assert (got.mean_ir, got.cvir) == pytest.approx((expected.mean_ir, expected.cvir))
    assert got.scumble == pytest.approx(expected.scumble)


def test_boolean_and_float_matrices_are_accepted():
    assert imbalance.mean_ir(Y.astype(bool)) == imbalance.mean_ir(Y.astype(float)) == pytest.approx(7 / 3)


def test_sparse_explicit_zeros_and_duplicates_count_correctly():
    coo = sp.coo_matrix((np.array([1, 0, 1]), (np.array([0, 1, 2]), np.array([0, 1, 1]))), shape=(3, 2))
    np.testing.assert_array_equal(imbalance.describe(coo).count, [1, 1])


def test_empty_label_warns_and_is_left_out():
    with pytest.warns(EmptyLabelWarning, match="label"):
        ratios = imbalance.irlbl(np.c_[Y, np.zeros(5, dtype=int)])
    assert np.isnan(ratios[3])
    with pytest.warns(EmptyLabelWarning, match="'empty'"):
        value = imbalance.mean_ir(pd.DataFrame(np.c_[Y, np.zeros(5, int)], columns=["a", "b", "c", "empty"]))
    assert value == pytest.approx(7 / 3)


def test_no_positive_at_all_is_an_error():
    with pytest.raises(ValueError, match="no label has a positive sample"), warnings.catch_warnings():
        warnings.simplefilter("ignore", EmptyLabelWarning)
        imbalance.mean_ir(np.zeros((3, 2)))


def test_cvir_needs_two_labels():
    with pytest.raises(ValueError, match="at least two labels"):
        imbalance.cvir(np.array([[1], [0]]))
    assert np.isnan(imbalance.describe(np.array([[1], [0]])).cvir)


def test_balanced_data_has_unit_ratios_and_zero_scumble():
    balanced = np.array([[1, 1], [1, 1]])
    assert imbalance.mean_ir(balanced) == 1.0 and imbalance.scumble(balanced) == 0.0


def test_measures_never_modify_their_input(au_matrix):
    dense, sparse_y = au_matrix.copy(), sp.csr_matrix(au_matrix)
    sparse_copy = sparse_y.copy()
    imbalance.describe(dense)
    imbalance.describe(sparse_y)
    np.testing.assert_array_equal(dense, au_matrix)
    assert (sparse_y != sparse_copy).nnz == 0 and sparse_y.data.dtype == sparse_copy.data.dtype


def test_wide_dense_matrices_match_their_sparse_form():
    # More than 16 labels: SCUMBLE is computed row by row instead of once per distinct label set.
    rng = np.random.default_rng(3)
    wide = (rng.random((3000, 40)) < np.linspace(0.01, 0.5, 40)).astype(np.uint8)
    dense, sparse_form = imbalance.describe(wide), imbalance.describe(sp.csr_matrix(wide))
    assert dense.scumble == pytest.approx(sparse_form.scumble)
    np.testing.assert_allclose(dense.scumble_per_label, sparse_form.scumble_per_label)
    narrow = wide[:, :12]
    assert imbalance.scumble(narrow) == pytest.approx(imbalance.scumble(sp.csr_matrix(narrow)))
