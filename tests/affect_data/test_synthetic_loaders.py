"""The four loaders read the tiny synthetic corpus with no special case; what they load matches the truth."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from affect_data import load_afew_va, load_aff_wild2, load_disfa, load_expw
from affect_data.schema import (
    AU_NAMES,
    FRAME_TABLE_COLUMNS,
    LABEL_COLUMNS,
    TASK_COLUMNS,
    validate_frame_table,
)
from affect_data.synthetic import aff_wild2_truth_table, load_truth, write_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = write_corpus(tmp_path_factory.mktemp("synthetic") / "corpus", preset="tiny", seed=1)
    truth = load_truth(root)
    return root, truth


def joined(table: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    validate_frame_table(table)
    both = table.merge(
        truth, on=["dataset", "video", "frame"], how="left", suffixes=("", "_truth"), indicator=True
    )
    assert (both["_merge"] == "both").all(), "loaded frames missing from truth.csv"
    return both


def assert_labels_agree(both: pd.DataFrame, task: str) -> int:
    """Compare the loaded labels of ``task`` with the truth where loaded; return how many rows had them."""
    columns = list(TASK_COLUMNS[task])
    labelled = both[columns].notna().all(axis=1)
    loaded = both.loc[labelled, columns].astype(float).to_numpy()
    expected = both.loc[labelled, [f"{c}_truth" for c in columns]].astype(float).to_numpy()
    np.testing.assert_allclose(loaded, expected, atol=1e-6)
    return int(labelled.sum())


def test_aff_wild2_loader_reads_the_corpus(corpus):
    root, truth = corpus
    table = load_aff_wild2(root / "aff_wild2")
    both = joined(table, truth)
    info = json.loads((root / "corpus.json").read_text())["aff_wild2"]
    for task in ("AU", "EXPR", "VA"):
        assert assert_labels_agree(both, task) > 50
    assert set(table.loc[table["split"] == "validation", "video"]) == set(info["validation_videos"])
    assert (both["split"] == both["split_truth"]).all()
    # Every framed, annotated line is loaded: the AU rows are the truth frames of the AU set's videos minus
    # the rows the files mark -1 (whole rows go when any AU is -1).
    au_videos = [v for v, tasks in info["tasks"].items() if "AU" in tasks]
    au_rows = table[table[list(AU_NAMES)].notna().all(axis=1)]
    framed = truth[(truth["dataset"] == "aff_wild2") & truth["video"].isin(au_videos)]
    unannotated = 0
    for video in au_videos:
        split = "Validation_Set" if video in info["validation_videos"] else "Training_Set"
        lines = (root / "aff_wild2/annotations/AU_Set" / split / f"{video}.txt").read_text().splitlines()[1:]
        images = {int(p.stem) - 1 for p in (root / "aff_wild2/cropped_aligned" / video).glob("*.jpg")}
        unannotated += sum("-1" in lines[k].split(",") for k in images)
    assert len(au_rows) == len(framed) - unannotated


def test_aff_wild2_loader_ignores_the_test_videos_as_on_the_real_release(corpus, tmp_path):
    # The loader builds its rows from the label files, so crop folders without one (the test videos, like
    # the real ABAW 2020 test set) are never read: removing them changes neither the table nor the report.
    root, _ = corpus
    test = json.loads((root / "corpus.json").read_text())["aff_wild2"]["test_videos"]
    table = load_aff_wild2(root / "aff_wild2")
    assert test and not set(test) & set(table["video"])
    assert set(table["split"]) == {"train", "validation"}
    without = tmp_path / "aff_wild2"
    shutil.copytree(root / "aff_wild2", without)
    for video in test:
        shutil.rmtree(without / "cropped_aligned" / video)
    other = load_aff_wild2(without)
    pd.testing.assert_frame_equal(table.drop(columns="path"), other.drop(columns="path"))
    report, other_report = table.attrs["report"], other.attrs["report"]
    assert report.summary() == other_report.summary().replace(str(without), str(root / "aff_wild2"))
    assert report.to_frame().equals(other_report.to_frame())
    assert report.rows_read == report.rows_kept + report.total_skipped
    with pytest.raises(ValueError, match="splits must be"):  # the loader has no test split to ask for
        load_aff_wild2(root / "aff_wild2", splits=["test"])


def test_truth_table_gives_the_test_frames_with_complete_truth(corpus):
    root, truth = corpus
    loaded = load_aff_wild2(root / "aff_wild2")
    test = aff_wild2_truth_table(root)  # split="test" by default
    assert list(test.columns) == list(FRAME_TABLE_COLUMNS)
    assert test.dtypes.equals(loaded.dtypes)  # the loader's frame table, column for column
    assert not test[list(LABEL_COLUMNS)].isna().any().any()  # every task on every frame
    assert (test["split"] == "test").all() and (test["subject"] == test["video"]).all()
    info = json.loads((root / "corpus.json").read_text())["aff_wild2"]
    assert set(test["video"]) == set(info["test_videos"])
    expected = truth[(truth["dataset"] == "aff_wild2") & (truth["split"] == "test")]
    assert len(test) == len(expected)
    assert test[["video", "frame"]].equals(test[["video", "frame"]].sort_values(["video", "frame"]))
    both = joined(test, truth)
    for task in ("AU", "EXPR", "VA"):
        assert assert_labels_agree(both, task) == len(test)
    assert all(Path(path).is_file() and Path(path).is_absolute() for path in test["path"])
    # Paths are spelled as the loader spells them: the validation frames it loads are rows of this table.
    validation = aff_wild2_truth_table(root, "validation")
    loaded_validation = loaded[loaded["split"] == "validation"]
    assert set(loaded_validation["path"]) <= set(validation["path"])


def test_truth_table_errors(corpus, tmp_path):
    root, truth = corpus
    with pytest.raises(ValueError, match="split must be one of"):
        aff_wild2_truth_table(root, "Test")
    old = tmp_path / "old"  # a corpus written before the test split: no test rows in its truth
    old.mkdir()
    truth[truth["split"] != "test"].to_csv(old / "truth.csv", index=False)
    with pytest.raises(ValueError, match=r"no Aff-Wild2 test frames.*write it again"):
        aff_wild2_truth_table(old)
    broken = tmp_path / "broken"  # a jpg that the truth lists is gone
    broken.mkdir()
    shutil.copy(root / "truth.csv", broken / "truth.csv")
    shutil.copytree(root / "aff_wild2" / "cropped_aligned", broken / "aff_wild2" / "cropped_aligned")
    video = aff_wild2_truth_table(root)["video"].iloc[0]
    (broken / "aff_wild2" / "cropped_aligned" / video / "00001.jpg").unlink(missing_ok=False)
    with pytest.raises(FileNotFoundError, match=rf"{video}/00001\.jpg is listed in truth\.csv but missing"):
        aff_wild2_truth_table(broken)


def test_disfa_loader_reads_the_corpus(corpus):
    root, truth = corpus
    table = load_disfa(root / "disfa")
    both = joined(table, truth)
    assert assert_labels_agree(both, "AU") == len(table) == (truth["dataset"] == "disfa").sum()


def test_expw_loader_reads_the_corpus(corpus, tmp_path):
    root, truth = corpus
    table = load_expw(root / "expw", cache_dir=tmp_path / "expw_crops")
    both = joined(table, truth)
    assert assert_labels_agree(both, "EXPR") == len(table) == (truth["dataset"] == "expw").sum()
    assert (table["face_id"] == both["face_id_truth"]).all()


def test_afew_va_loader_reads_the_corpus(corpus, tmp_path):
    root, truth = corpus
    table = load_afew_va(root / "afew_va", cache_dir=tmp_path / "afew_crops", size=64)
    both = joined(table, truth)
    assert assert_labels_agree(both, "VA") == len(table) == (truth["dataset"] == "afew_va").sum()
    # The landmark-aligned crop holds a face, not a flat patch of background.
    crop = np.asarray(Image.open(table["path"].iloc[0]).convert("L"), dtype=float)
    assert crop.shape == (64, 64) and crop[16:48, 16:48].std() > 10
