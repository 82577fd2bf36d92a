"""Pieces of the emotion pipeline's prepare stage that need no corpus (examples/emotion/prepare.py)."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

from emotion.prepare import _ensure_corpus, keep_rows, validation_table  # noqa: E402


def aff_wild2_rows():
    """Frame 0 of video v1 annotated in the AU and the EXPR set, frame 1 in the VA set, one training row."""
    return pd.DataFrame(
        {
            "dataset": "aff_wild2",
            "video": ["v1", "v1", "v1", "v2"],
            "frame": [0, 0, 1, 0],
            "path": ["a.jpg", "a.jpg", "b.jpg", "c.jpg"],
            "subject": "s",
            "split": ["validation", "validation", "validation", "train"],
            **{
                au: [1, pd.NA, pd.NA, 0]
                for au in ("AU1", "AU2", "AU4", "AU6", "AU12", "AU15", "AU20", "AU25")
            },
            "expr": [pd.NA, 4, pd.NA, 1],
            "valence": [np.nan, np.nan, 0.5, 0.1],
            "arousal": [np.nan, np.nan, -0.5, 0.1],
        }
    )


def test_validation_frames_are_merged_across_task_sets():
    table = validation_table(aff_wild2_rows())
    assert table[["video", "frame"]].values.tolist() == [["v1", 0], ["v1", 1]]
    first, second = table.iloc[0], table.iloc[1]
    assert (first["AU1"], first["expr"]) == (1, 4) and pd.isna(first["valence"])
    assert pd.isna(second["AU1"]) and second["valence"] == 0.5


def test_hidden_truth_replaces_the_labels(tmp_path):
    truth = aff_wild2_rows().drop(columns=["path", "subject"]).iloc[[0, 2]]
    truth = truth.assign(face_id=0, expr=[6, 0], valence=[-0.2, 0.3], arousal=[0.2, 0.1])
    truth.loc[:, ["AU1", "AU2", "AU4", "AU6", "AU12", "AU15", "AU20", "AU25"]] = 0
    truth.to_csv(tmp_path / "truth.csv", index=False)
    table = validation_table(aff_wild2_rows(), tmp_path / "truth.csv")
    assert table["expr"].tolist() == [6, 0]
    assert table["AU1"].tolist() == [0, 0]  # complete: every task on every frame
    truth.iloc[:1].to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(ValueError, match=r"short\.csv: 1 validation frame\(s\) have no row.*'v1' frame 1"):
        validation_table(aff_wild2_rows(), tmp_path / "short.csv")


def test_no_validation_rows_is_an_error():
    rows = aff_wild2_rows().assign(split="train")
    with pytest.raises(ValueError, match="no validation rows"):
        validation_table(rows)


def test_dropping_rows_renumbers_the_balanced_list():
    table = pd.DataFrame({"path": ["a", "b", "c", "d"]})
    indices = np.array([3, 1, 1, 0, 2, 3])
    kept, renumbered = keep_rows(table, indices, np.array([True, False, True, True]))
    assert kept["path"].tolist() == ["a", "c", "d"]
    assert kept["path"].to_numpy()[renumbered].tolist() == ["d", "a", "c", "d"]


def test_a_corpus_of_another_preset_or_seed_is_not_reused(tmp_path):
    (tmp_path / "corpus.json").write_text('{"preset": {"name": "tiny"}, "seed": 3}')
    _ensure_corpus(tmp_path, "tiny", 3)  # the same corpus: reused as it is
    asked_otherwise = r"preset 'tiny', seed 3, but the config asks for preset 'demo', seed 0"
    with pytest.raises(ValueError, match=asked_otherwise):
        _ensure_corpus(tmp_path, "demo", 0)
