"""One definition of F1, macro F1 and CCC across the packages (docs/design.md section 5).

The trainer selects epochs with ``mtl_distill``'s task scores and the emotion example reports
``affect_data``'s ABAW scores: both must give the same number for the same predictions, and the F1s must be
scikit-learn's (checked where scikit-learn is installed).
"""

from __future__ import annotations

import numpy as np
import pytest

import mtl_distill as md
from affect_data.metrics import abaw_selection_score, au_score, ccc, expr_score, va_score
from mtl_distill.metrics import binary_f1, concordance_correlation, macro_f1

# Class 5 never occurs and class 6 only in the predictions: the macro average must skip the first only.
EXPR_TRUTH = np.array([0, 0, 1, 2, 2, 3, 4, 4, 4, 4])
EXPR_PREDICTED = np.array([0, 1, 1, 2, 6, 3, 4, 4, 0, 4])


def _probabilities(classes: np.ndarray, num_classes: int = 7) -> np.ndarray:
    return np.eye(num_classes)[classes] * 0.9 + 0.1 / num_classes


def test_macro_f1_is_the_same_in_both_packages_and_skips_absent_classes():
    trainer = md.MultiClassTask("EXPR", 7).score(_probabilities(EXPR_PREDICTED), EXPR_TRUTH)
    abaw = expr_score(EXPR_TRUTH, EXPR_PREDICTED)
    assert abaw["macro_f1"] == trainer["score"]
    assert abaw["accuracy"] == trainer["accuracy"]
    assert [abaw["f1"][name] for name in abaw["f1"]] == [trainer[f"f1_{k}"] for k in range(7)]
    present = [abaw["f1"][name] for k, name in enumerate(abaw["f1"]) if k != 5]
    assert abaw["macro_f1"] == pytest.approx(np.mean(present))


def test_f1s_are_scikit_learns():
    metrics = pytest.importorskip("sklearn.metrics")
    expected = metrics.f1_score(EXPR_TRUTH, EXPR_PREDICTED, average="macro", zero_division=0.0)
    assert expr_score(EXPR_TRUTH, EXPR_PREDICTED)["macro_f1"] == pytest.approx(expected)
    assert macro_f1(EXPR_PREDICTED, EXPR_TRUTH, 7)[0] == pytest.approx(expected)

    rng = np.random.default_rng(0)
    truth = (rng.random((60, 8)) < [0.5, 0.3, 0.2, 0.4, 0.6, 0.1, 0.05, 0.0]).astype(int)
    decisions = (rng.random((60, 8)) < 0.3).astype(int)
    decisions[:, 7] = 0  # AU25: no positive anywhere, F1 is 0 / 0
    expected = metrics.f1_score(truth, decisions, average=None, zero_division=0.0)
    np.testing.assert_allclose(list(au_score(truth, decisions)["f1"].values()), expected)
    np.testing.assert_allclose(binary_f1(decisions, truth), expected)


def test_ccc_is_the_same_in_both_packages_with_zero_for_constant_equal_series():
    rng = np.random.default_rng(1)
    truth = rng.uniform(-1, 1, (50, 2))
    predicted = np.clip(truth + rng.normal(0, 0.4, truth.shape), -1, 1)
    shared = concordance_correlation(predicted, truth)
    assert [ccc(truth[:, d], predicted[:, d]) for d in range(2)] == pytest.approx(shared.tolist(), abs=1e-15)
    constant = np.full((4, 1), 0.25)
    assert concordance_correlation(constant, constant).tolist() == [0.0]
    assert ccc(constant[:, 0], constant[:, 0]) == 0.0


def test_the_trainers_selection_score_is_the_mean_abaw_score():
    rng = np.random.default_rng(2)
    n = 40
    au_truth = (rng.random((n, 8)) < 0.3).astype(float)
    au_probabilities = np.clip(au_truth * 0.6 + rng.random((n, 8)) * 0.5, 0, 1)
    va_truth = rng.uniform(-1, 1, (n, 2))
    va_predicted = np.clip(va_truth + rng.normal(0, 0.3, (n, 2)), -1, 1)
    expr_truth = rng.integers(0, 6, n)  # class 6 absent from the truth
    expr_probabilities = rng.random((n, 7))

    trainer_scores = {
        "AU": md.MultiLabelTask("AU", 8).score(au_probabilities, au_truth),
        "EXPR": md.MultiClassTask("EXPR", 7).score(expr_probabilities, expr_truth),
        "VA": md.BinnedRegressionTask("VA", 2).score(va_predicted, va_truth),
    }
    reported = [
        au_score(au_truth, au_probabilities, threshold=0.5)["score"],
        expr_score(expr_truth, expr_probabilities)["score"],
        va_score(va_truth, va_predicted)["score"],
    ]
    assert abaw_selection_score(trainer_scores) == pytest.approx(np.mean(reported), abs=1e-12)
