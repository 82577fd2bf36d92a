"""The emotion pipeline's prepare stage (examples/emotion/prepare.py): its pieces, then the stage itself on
the tiny corpus (held-out test split on the synthetic corpus, none on real data)."""

import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

from emotion.config import DATASETS, load_config  # noqa: E402
from emotion.factory import read_table  # noqa: E402
from emotion.prepare import _ensure_corpus, keep_rows, run_prepare, validation_table  # noqa: E402


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
    manifest = {"preset": {"name": "tiny"}, "seed": 3, "aff_wild2": {"test_videos": ["v9"]}}
    (tmp_path / "corpus.json").write_text(json.dumps(manifest))
    _ensure_corpus(tmp_path, "tiny", 3)  # the same corpus: reused as it is
    asked_otherwise = r"preset 'tiny', seed 3, but the config asks for preset 'demo', seed 0"
    with pytest.raises(ValueError, match=asked_otherwise):
        _ensure_corpus(tmp_path, "demo", 0)


def test_a_corpus_without_test_videos_is_not_reused(tmp_path):
    # Written before the corpus had its held-out test split: test.csv could not be written from it.
    (tmp_path / "corpus.json").write_text('{"preset": {"name": "tiny"}, "seed": 3, "aff_wild2": {}}')
    with pytest.raises(ValueError, match=r"before the synthetic corpus had held-out test videos: delete"):
        _ensure_corpus(tmp_path, "tiny", 3)


# ------------------------------------------------------------------ the stage on the tiny corpus


def tiny_config(folder: Path, **data_changes):
    data = yaml.safe_load((ROOT / "examples" / "emotion" / "configs" / "tiny.yaml").read_text())
    data["run_root"] = str(folder / "runs")
    data["data"]["synthetic"]["root"] = str(folder.parent / "corpus")  # one corpus for the module
    data["data"]["crop_cache"] = str(folder / "crops")
    data["data"].update(data_changes)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_config(path, check_paths=False)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """The prepare stage on the tiny corpus: (config, prepare folder, returned summary)."""
    folder = tmp_path_factory.mktemp("prepare") / "synthetic"
    folder.mkdir()
    config = tiny_config(folder)
    out = config.run_dir / "prepare"
    out.mkdir(parents=True)
    return config, out, run_prepare(config, out)


@pytest.mark.slow
def test_prepare_writes_the_held_out_test_split(prepared):
    config, out, returned = prepared
    corpus = Path(config.data.synthetic.root)
    info = json.loads((corpus / "corpus.json").read_text())["aff_wild2"]
    test, validation = read_table(out / "test.csv"), read_table(out / "validation.csv")
    assert list(test.columns) == list(validation.columns)
    assert test.dtypes.equals(validation.dtypes)
    assert set(test["video"]) == set(info["test_videos"]) and (test["split"] == "test").all()
    assert not test[["AU1", "AU25", "expr", "valence", "arousal"]].isna().any().any()
    assert set(test["expr"]) == set(range(7))
    truth = pd.read_csv(corpus / "truth.csv", dtype={"video": str})
    assert len(test) == ((truth["dataset"] == "aff_wild2") & (truth["split"] == "test")).sum()
    # Held out: no test video is a training or validation video.
    for task in ("AU", "EXPR", "VA"):
        assert not set(test["video"]) & set(read_table(out / f"train_{task}.csv")["video"]), task
    assert not set(test["video"]) & set(validation["video"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test_frames"] == returned["test_frames"] == len(test)
    assert summary["test_videos"] == returned["test_videos"] == len(info["test_videos"])
    assert summary["validation_frames"] == returned["validation_frames"] == len(validation)
    # The crop cache holds the test frames, so they are scored without decoding a jpg.
    from affect_data.cache import FrameCache

    assert FrameCache(out / "crops").covers(test).all()


@pytest.mark.slow
def test_prepare_on_real_data_writes_no_test_split(prepared, tmp_path):
    # The corpus's four folders read as real data sets: no hidden truth, so no test split (the ABAW
    # protocol reports validation); a test.csv of an earlier synthetic run is removed.
    config, _, _ = prepared
    corpus = Path(config.data.synthetic.root)
    real = tiny_config(tmp_path, synthetic=None, frame_cache=False, **{n: str(corpus / n) for n in DATASETS})
    out = real.run_dir / "prepare"
    out.mkdir(parents=True)
    (out / "test.csv").write_text("stale")
    returned = run_prepare(real, out)
    assert not (out / "test.csv").exists() and (out / "validation.csv").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert "test_frames" not in summary and "test_frames" not in returned


@pytest.mark.slow
def test_prepare_without_the_frame_cache_drops_unreadable_frames(prepared, tmp_path):
    # Before: with data.frame_cache false a zero-byte Aff-Wild2 frame stayed in the tables, and training
    # died at epoch 1 step 0 with "OSError: cannot identify image file".
    import shutil

    from affect_data.datasets import FrameDataset

    config, synthetic_out, _ = prepared
    source = Path(config.data.synthetic.root)
    corpus = tmp_path / "corpus"
    shutil.copytree(source, corpus, copy_function=os.link)  # hard links: cheap
    train = read_table(synthetic_out / "train_EXPR.csv")
    first = Path(train.loc[train["dataset"] == "aff_wild2", "path"].iloc[0])  # a frame training reads
    frame = corpus / first.relative_to(source)
    frame.unlink()  # a hard link: write a new file, not through the link into the shared corpus
    frame.write_bytes(b"")
    real = tiny_config(tmp_path, synthetic=None, frame_cache=False, **{n: str(corpus / n) for n in DATASETS})
    out = real.run_dir / "prepare"
    out.mkdir(parents=True)
    run_prepare(real, out)
    assert json.loads((out / "summary.json").read_text())["unreadable_images"] == 1
    tables = [read_table(out / f"train_{task}.csv") for task in ("AU", "EXPR", "VA")]
    tables.append(read_table(out / "validation.csv"))
    assert not any(str(frame) in set(table["path"]) for table in tables)
    for table in tables[:3]:  # the epoch that crashed: every training image decodes
        dataset = FrameDataset(table, size=real.data.image_size, unreadable="raise")
        for i in range(len(dataset)):
            dataset[i]
