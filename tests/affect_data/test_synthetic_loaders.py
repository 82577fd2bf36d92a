"""The four loaders read the tiny synthetic corpus with no special case; what they load matches the truth."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from affect_data import load_afew_va, load_aff_wild2, load_disfa, load_expw
from affect_data.schema import AU_NAMES, TASK_COLUMNS, validate_frame_table
from affect_data.synthetic import load_truth, write_corpus


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
