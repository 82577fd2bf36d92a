import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score

from affect_data.metrics import au_score, ccc, expr_score, va_score


def test_au_score_by_hand():
    truth = np.array([[1, 0, 0, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0, 0, 0]])
    pred = np.array([[1, 0, 0, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 1]])
    result = au_score(truth, pred)
    # AU1: tp 1, fn 1 -> 2/3; AU2: tp 1, fn 1 -> 2/3; AU25: fp 1 -> 0; the other five have no positives -> 0.
    assert result["f1"]["AU1"] == pytest.approx(2 / 3)
    assert result["f1"]["AU2"] == pytest.approx(2 / 3)
    assert result["f1"]["AU25"] == 0.0
    assert result["mean_f1"] == pytest.approx((4 / 3) / 8)
    assert result["accuracy"] == pytest.approx(21 / 24)
    assert result["score"] == pytest.approx(0.5 * (4 / 3) / 8 + 0.5 * 21 / 24)
    assert result["n_frames"] == 3


def test_au_score_matches_sklearn():
    rng = np.random.default_rng(0)
    truth = (rng.random((300, 8)) < 0.3).astype(int)
    pred = (rng.random((300, 8)) < 0.4).astype(int)
    result = au_score(truth, pred)
    expected_f1 = f1_score(truth, pred, average=None, zero_division=0.0)
    np.testing.assert_allclose(list(result["f1"].values()), expected_f1)
    assert result["accuracy"] == pytest.approx(accuracy_score(truth.ravel(), pred.ravel()))


def test_au_score_skips_missing_rows_and_values():
    rng = np.random.default_rng(1)
    truth = (rng.random((50, 8)) < 0.4).astype(float)
    pred = (rng.random((50, 8)) < 0.4).astype(float)
    with_missing = np.vstack([truth, np.full((5, 8), np.nan)])
    pred_missing = np.vstack([pred, np.ones((5, 8))])
    assert au_score(with_missing, pred_missing) == {**au_score(truth, pred), "n_frames": 50}

    # A single missing value removes one decision: AU1 of row 0.
    partial = truth.copy()
    partial[0, 0] = np.nan
    result = au_score(partial, pred)
    assert result["f1"]["AU1"] == pytest.approx(f1_score(truth[1:, 0], pred[1:, 0], zero_division=0.0))
    assert result["accuracy"] == pytest.approx(((truth == pred).sum() - (truth[0, 0] == pred[0, 0])) / 399)


def test_au_score_reads_nullable_frame_table_columns_and_thresholds():
    truth = pd.DataFrame({f"c{i}": pd.array([1, 0, pd.NA], dtype="Int8") for i in range(8)})
    scores = np.array([[0.9] * 8, [0.2] * 8, [0.7] * 8])
    result = au_score(truth, scores, threshold=0.5)
    assert result["score"] == 1.0 and result["n_frames"] == 2
    per_au = au_score(truth, scores, threshold=[0.95] + [0.5] * 7)  # AU1 now misses its positive
    assert per_au["f1"]["AU1"] == 0.0 and per_au["f1"]["AU2"] == 1.0
    with pytest.raises(ValueError, match="threshold="):
        au_score(truth, scores)


def test_au_score_zero_division_choice():
    truth = np.zeros((4, 8))
    assert au_score(truth, truth)["mean_f1"] == 0.0
    assert au_score(truth, truth, zero_division=1.0)["mean_f1"] == 1.0


def test_expr_score_by_hand_and_against_sklearn():
    truth = [0, 0, 1, 4, 4, 4, 6, np.nan]
    pred = [0, 1, 1, 4, 4, 0, 6, 3]
    result = expr_score(truth, pred)
    # Neutral: tp 1, fp 1, fn 1 -> 0.5; Anger: tp 1, fp 1 -> 2/3; Happiness: tp 2, fn 1 -> 0.8; Surprise 1.
    assert result["f1"]["Neutral"] == pytest.approx(0.5)
    assert result["f1"]["Anger"] == pytest.approx(2 / 3)
    assert result["f1"]["Happiness"] == pytest.approx(0.8)
    assert result["f1"]["Surprise"] == 1.0
    # Classes 2, 3 and 5 are in neither the truth nor the prediction: they do not enter the macro average.
    assert result["macro_f1"] == pytest.approx((0.5 + 2 / 3 + 0.8 + 1.0) / 4)
    assert result["f1"]["Disgust"] == 0.0
    assert result["accuracy"] == pytest.approx(5 / 7)
    assert result["score"] == pytest.approx(0.67 * result["macro_f1"] + 0.33 * 5 / 7)
    assert result["n_frames"] == 7

    rng = np.random.default_rng(2)
    truth = rng.integers(0, 7, 500)
    scores = rng.random((500, 7))
    result = expr_score(truth, scores)
    pred = scores.argmax(axis=1)
    sk = f1_score(truth, pred, average="macro", zero_division=0.0)
    assert result["macro_f1"] == pytest.approx(sk)
    assert result["accuracy"] == pytest.approx(accuracy_score(truth, pred))


def test_ccc_by_hand_and_properties():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    y = np.array([2.0, 2.0, 4.0, 4.0])
    # mean x 2.5, mean y 3; population cov 1.0, var x 1.25, var y 1.0 -> 2 / (2.25 + 0.25) = 0.8.
    assert ccc(x, y) == pytest.approx(0.8)
    assert ccc(y, x) == pytest.approx(0.8)
    assert ccc(x, x) == pytest.approx(1.0)
    assert ccc(x - 2.5, 2.5 - x) == pytest.approx(-1.0)
    assert ccc([np.nan, *x], [5.0, *y]) == pytest.approx(0.8)
    assert ccc([0.5, 0.5], [0.5, 0.5]) == 0.0  # 0 / 0: the stated value of docs/design.md section 5.2
    assert ccc([0.3, 0.3], [0.1, 0.1]) == 0.0


def test_va_score_per_dimension_missing_and_torch_input():
    rng = np.random.default_rng(3)
    truth = rng.uniform(-1, 1, (100, 2))
    pred = np.clip(truth + rng.normal(0, 0.3, truth.shape), -1, 1)
    result = va_score(truth, pred)
    assert result["ccc"]["valence"] == pytest.approx(ccc(truth[:, 0], pred[:, 0]))
    assert result["score"] == pytest.approx((result["ccc"]["valence"] + result["ccc"]["arousal"]) / 2)

    truth_missing = truth.copy()
    truth_missing[:10, 1] = np.nan
    result = va_score(truth_missing, torch.from_numpy(pred))
    assert result["ccc"]["arousal"] == pytest.approx(ccc(truth[10:, 1], pred[10:, 1]))
    assert result["ccc"]["valence"] == pytest.approx(ccc(truth[:, 0], pred[:, 0]))
    assert result["n_frames"] == 100


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: au_score(np.zeros((3, 8)), np.zeros((2, 8))),
            r"y_pred has shape \(2, 8\); expected \(3, 8\)",
        ),
        (
            lambda: au_score(np.zeros((3, 7)), np.zeros((3, 7))),
            r"y_true has shape \(3, 7\); expected \(N, 8\)",
        ),
        (lambda: au_score(np.full((2, 8), np.nan), np.zeros((2, 8))), "no AU label"),
        (lambda: au_score(np.zeros((2, 8)), np.full((2, 8), np.nan)), "y_pred holds NaN"),
        (lambda: au_score(np.full((2, 8), 2), np.zeros((2, 8))), "0/1 decisions; found 2"),
        (lambda: au_score(np.zeros((2, 8)), np.zeros((2, 8)), threshold=[0.5] * 7), r"got shape \(7,\)"),
        (lambda: expr_score([0, 1], [0, 1, 2]), r"y_pred has shape \(3,\)"),
        (lambda: expr_score([0, 7], [0, 1]), "class indices 0..6; found 7"),
        (lambda: expr_score([0, 1], np.zeros((2, 6))), r"expected \(2, 7\)"),
        (lambda: expr_score([np.nan], [0]), "no expression label"),
        (lambda: va_score(np.zeros((3, 2)), np.zeros((3, 3))), r"expected \(3, 2\)"),
        (
            lambda: va_score(np.column_stack([np.zeros(3), np.full(3, np.nan)]), np.zeros((3, 2))),
            "no arousal",
        ),
        (lambda: ccc([1.0, 2.0], [1.0]), r"y has shape \(1,\)"),
        (lambda: ccc(["a"], [1.0]), "x cannot be read as numbers"),
    ],
)
def test_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_au_score_leaves_out_an_au_that_is_never_labelled():
    # ABAW 2021+ AU files lack AU20: its column is all missing, so it has no F1 rather than F1 = 0.
    rng = np.random.default_rng(2)
    truth = (rng.random((40, 8)) < 0.4).astype(float)
    pred = (rng.random((40, 8)) < 0.4).astype(float)
    truth[:, 6] = np.nan
    result = au_score(truth, pred)
    assert np.isnan(result["f1"]["AU20"])
    seven = [0, 1, 2, 3, 4, 5, 7]
    expected = f1_score(truth[:, seven], pred[:, seven], average=None, zero_division=0.0)
    assert result["mean_f1"] == pytest.approx(expected.mean())
    assert result["accuracy"] == pytest.approx(
        accuracy_score(truth[:, seven].ravel(), pred[:, seven].ravel())
    )
