import numpy as np
import pandas as pd
import pytest

from affect_data.schema import AU_NAMES, as_frame_table
from affect_data.splits import (
    group_label_counts,
    iterative_stratification,
    stratified_group_split,
    temporal_downsample,
)


def make_table(n_videos=40, frames=(20, 80), seed=0):
    """Videos whose expression and AU rates differ, with a few rare-class videos."""
    rng = np.random.default_rng(seed)
    rows = []
    for v in range(n_videos):
        n = int(rng.integers(*frames))
        expr = rng.choice(7, p=[0.4, 0.1, 0.03, 0.03, 0.3, 0.1, 0.04])
        au_rate = rng.uniform(0.05, 0.6, 8)
        va = rng.uniform(-1, 1, 2)
        for f in range(n):
            rows.append(
                {
                    "dataset": "aff_wild2",
                    "video": f"video{v}",
                    "frame": f,
                    "path": f"/x/video{v}/{f + 1:05d}.jpg",
                    "subject": f"s{v // 2}",
                    "split": "train",
                    "expr": expr if rng.random() < 0.9 else rng.integers(7),
                    **dict(zip(AU_NAMES, (rng.random(8) < au_rate).astype(int), strict=True)),
                    "valence": np.clip(va[0] + rng.normal(0, 0.1), -1, 1),
                    "arousal": np.clip(va[1] + rng.normal(0, 0.1), -1, 1),
                }
            )
    return as_frame_table(pd.DataFrame(rows))


def test_temporal_downsample_counts_frames_in_order_per_video():
    table = pd.DataFrame(
        {
            "dataset": ["d"] * 7 + ["e"] * 3,
            "video": ["a", "a", "b", "a", "a", "b", "a", "a", "a", "a"],
            "frame": [4, 0, 5, 1, 9, 2, 3, 1, 0, 2],  # "a" of d has frame 2 missing
        }
    )
    kept = temporal_downsample(table, 2)
    # d/a in frame order: 0 1 3 4 9 -> ranks 0, 2, 4 are frames 0, 3, 9; d/b: 2 5 -> 2; e/a: 0 1 2 -> 0, 2.
    assert sorted(zip(kept["dataset"], kept["video"], kept["frame"], strict=True)) == [
        ("d", "a", 0),
        ("d", "a", 3),
        ("d", "a", 9),
        ("d", "b", 2),
        ("e", "a", 0),
        ("e", "a", 2),
    ]
    assert list(kept.index) == sorted(kept.index)  # input order kept
    assert temporal_downsample(table, 2, offset=1)["frame"].tolist() == [4, 5, 1, 1]
    assert len(temporal_downsample(table, 1)) == len(table)
    with pytest.raises(ValueError, match="positive integer"):
        temporal_downsample(table, 0)
    with pytest.raises(ValueError, match="offset"):
        temporal_downsample(table, 2, offset=2)


def test_iterative_stratification_hand_case():
    # Proportions 3:1, 7 units. The rarest label (L1, one unit) goes first, to fold 0 (desire 0.75 vs 0.25).
    # L0's four units then desire [3, 1] -> fold 0, fold 0, a tie [1, 1] broken by size desire (2.25 vs 1.75)
    # -> fold 0, and the last -> fold 1. The label-free units follow size desire [1.25, 0.75] -> one per fold.
    evidence = np.array([[1, 0], [1, 0], [1, 0], [1, 0], [0, 1], [0, 0], [0, 0]])
    for seed in range(5):
        folds = iterative_stratification(evidence, [0.75, 0.25], random_state=seed)
        assert folds[4] == 0
        assert (folds[:4] == 1).sum() == 1
        assert sorted(folds[5:].tolist()) == [0, 1]


def test_iterative_stratification_weighted_hand_case():
    # Unit 0 carries 6 frames of label 0, units 1 and 2 carry 3 each; halves desire 6 each -> unit 0 alone.
    evidence = np.array([[6], [3], [3]])
    folds = iterative_stratification(evidence, [0.5, 0.5], sizes=[6, 3, 3], random_state=1)
    assert folds[1] == folds[2] != folds[0]


def test_iterative_stratification_is_seeded_and_validates():
    y = (np.random.default_rng(0).random((60, 5)) < 0.2).astype(int)
    a = iterative_stratification(y, [0.8, 0.2], random_state=3)
    assert np.array_equal(a, iterative_stratification(y, [0.8, 0.2], random_state=3))
    assert sorted(np.bincount(a).tolist()) == [12, 48]
    with pytest.raises(ValueError, match="non-negative"):
        iterative_stratification(-y, [0.5, 0.5])
    with pytest.raises(ValueError, match="proportions"):
        iterative_stratification(y, [1.0])
    with pytest.raises(ValueError, match="proportions"):
        iterative_stratification(y, [0.5, np.nan])
    with pytest.raises(ValueError, match="sizes"):
        iterative_stratification(y, [0.5, 0.5], sizes=np.full(60, np.nan))
    with pytest.raises(ValueError, match="min_share"):
        iterative_stratification(y, [0.5, 0.5], min_share=2)


def test_group_label_counts_per_task():
    table = make_table(n_videos=3)
    counts = group_label_counts(table, "AU")
    one = table[table["video"] == "video1"]
    assert counts.loc[("aff_wild2", "video1"), "AU12"] == one["AU12"].sum()
    assert counts.loc[("aff_wild2", "video1"), "n_frames"] == len(one)
    expr = group_label_counts(table, "EXPR")
    assert (expr.drop(columns="n_frames").sum(axis=1) == expr["n_frames"]).all()
    va = group_label_counts(table, "VA", va_bins=4)
    assert va.shape[1] == 9
    assert (va.filter(like="valence").sum(axis=1) == va["n_frames"]).all()
    assert len(group_label_counts(table, "AU", group="subject")) == 2


@pytest.mark.parametrize("task", ["AU", "EXPR", "VA"])
def test_split_keeps_videos_whole_and_hits_the_size(task):
    table = make_table()
    train, validation = stratified_group_split(table, task, validation_size=0.25, random_state=0)
    assert len(train) + len(validation) == len(table)
    assert not set(train["video"]) & set(validation["video"])
    assert set(validation["split"]) == {"validation"} and set(train["split"]) == {"train"}
    assert abs(len(validation) / len(table) - 0.25) < 0.05
    assert table.equals(make_table())  # input untouched


def test_split_by_subject_keeps_subjects_whole():
    train, validation = stratified_group_split(make_table(), "AU", group="subject", random_state=0)
    assert not set(train["subject"]) & set(validation["subject"])


def test_split_stratifies_better_than_random_video_assignment():
    """Label shares of the validation part stay closer to the whole than a random choice of videos."""
    table = make_table(n_videos=60, seed=1)
    counts = group_label_counts(table, "EXPR")
    overall = counts.drop(columns="n_frames").sum() / counts["n_frames"].sum()

    def share_error(validation):
        shares = validation["expr"].astype(int).value_counts(normalize=True).reindex(range(7), fill_value=0)
        return np.abs(shares.to_numpy() - overall.to_numpy()).sum()

    rng = np.random.default_rng(0)
    videos = counts.index.get_level_values("video")
    stratified, random = [], []
    for seed in range(5):
        stratified.append(share_error(stratified_group_split(table, "EXPR", 0.3, random_state=seed)[1]))
        chosen = rng.choice(videos, size=int(0.3 * len(videos)), replace=False)
        random.append(share_error(table[table["video"].isin(chosen)]))
    assert np.mean(stratified) < 0.6 * np.mean(random)


def test_split_errors():
    table = make_table(n_videos=2)
    with pytest.raises(ValueError, match="validation_size"):
        stratified_group_split(table, "AU", validation_size=1.0)
    with pytest.raises(ValueError, match="unknown task 'XYZ'"):
        stratified_group_split(table, "XYZ")
    no_subject = table.assign(subject=pd.Series(pd.NA, index=table.index, dtype="string"))
    with pytest.raises(ValueError, match="have no subject"):
        stratified_group_split(no_subject, "AU", group="subject")


def test_iterative_stratification_takes_the_rarest_label_first():
    """Label R (2 units) is rarer than C (6 units, both R units among them). Handled first, as the algorithm
    prescribes, R's two units go to different halves every time; a C-first order (scikit-multilearn 0.2.0
    takes labels in order of appearance) would often put them together."""
    evidence = np.array([[0, 1], [0, 1], [0, 1], [0, 1], [1, 1], [1, 1]])
    for seed in range(20):
        folds = iterative_stratification(evidence, [0.5, 0.5], random_state=seed)
        assert folds[4] != folds[5], seed
        assert sorted(np.bincount(folds).tolist()) == [3, 3]


def test_split_spreads_groups_without_the_tasks_labels():
    """Videos of another task set (no AU label at all) go about validation_size to validation, not all to
    one side."""
    table = make_table(n_videos=40)
    expr_only = table["video"].isin([f"video{v}" for v in range(20)])
    table.loc[expr_only, list(AU_NAMES)] = pd.NA
    for seed in range(3):
        train, validation = stratified_group_split(table, "AU", validation_size=0.3, random_state=seed)
        unlabelled = validation["AU1"].isna()
        assert abs(unlabelled.sum() / expr_only.sum() - 0.3) < 0.1
        assert abs((~unlabelled).sum() / (~expr_only).sum() - 0.3) < 0.05
        assert not set(train["video"]) & set(validation["video"])
