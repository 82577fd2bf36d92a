"""Scoring in the emotion pipeline's evaluate stage (examples/emotion/evaluate.py)."""

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

from emotion.evaluate import score, tune_au_thresholds  # noqa: E402


def test_thresholds_are_tuned_on_completely_labelled_frames_only():
    truth = np.array([[1.0], [1.0], [0.0], [0.0], [np.nan]]).repeat(8, axis=1)
    probabilities = np.array([[0.3], [0.25], [0.2], [0.1], [0.9]]).repeat(8, axis=1)
    thresholds = tune_au_thresholds(truth, probabilities)
    assert np.all(
        (thresholds > 0.2) & (thresholds <= 0.25)
    )  # separates 0.25 from 0.2; the NaN row is ignored
    assert tune_au_thresholds(np.full((3, 8), np.nan), probabilities[:3]).tolist() == [0.5] * 8


def test_scores_use_the_thresholds_and_skip_missing_labels():
    truth = {
        "AU": np.array([[1, 0, 0, 0, 1, 0, 0, 1], [0, 0, 0, 0, 0, 0, 0, 0]], dtype=float),
        "EXPR": np.array([4.0, np.nan]),
        "VA": np.array([[0.5, -0.5], [-0.5, 0.5]]),
    }
    predicted = {
        "AU": np.array([[0.4, 0.1, 0.1, 0.1, 0.4, 0.1, 0.1, 0.4], [0.1] * 8]),
        "EXPR": np.array([[0, 0, 0, 0, 1.0, 0, 0], [1.0, 0, 0, 0, 0, 0, 0]]),
        "VA": np.array([[0.5, -0.5], [-0.5, 0.5]]),
    }
    scores = score(truth, predicted, np.full(8, 0.3))
    assert scores["AU"]["accuracy"] == 1.0  # 0.4 >= 0.3: every decision right
    assert scores["AU@0.5"]["accuracy"] == 13 / 16  # at 0.5 the three positives are missed
    assert scores["EXPR"]["n_frames"] == 1 and scores["EXPR"]["accuracy"] == 1.0
    assert scores["VA"]["score"] == 1.0
