"""load_aff_wild2 on small fixtures written in the ABAW 2020 and 2022 formats."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from affect_data import AU_NAMES, FRAME_TABLE_COLUMNS, AnnotationError, EmptyAnnotationWarning, load_aff_wild2
from affect_data.loaders.aff_wild2 import AU_NAMES_12, EXPR_NAMES_8
from affect_data.schema import EXPR_NAMES

HEADERS = {"AU": ",".join(AU_NAMES), "EXPR": ",".join(EXPR_NAMES), "VA": "valence,arousal"}
SET_2020 = {"AU": "AU_Set", "EXPR": "EXPR_Set", "VA": "VA_Set"}
SPLIT_2020 = {"train": "Training_Set", "validation": "Validation_Set"}


def write_labels(root, task, split, video, lines, header=None, layout=SET_2020, splits=SPLIT_2020):
    folder = root / "annotations" / layout[task] / splits[split]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{video}.txt"
    path.write_text("\n".join([header or HEADERS[task], *lines]) + "\n")
    return path


def write_images(root, video, numbers):
    folder = root / "cropped_aligned" / video
    folder.mkdir(parents=True, exist_ok=True)
    for k in numbers:
        (folder / f"{k:05d}.jpg").write_bytes(b"jpeg")


@pytest.fixture
def corpus(tmp_path):
    """Two videos: one with a left/right pair, sentinels and frames without a face image."""
    root = tmp_path / "aff_wild2"
    # video A: 6 label lines, images 1-4 and 6 (frame 4 has no detected face)
    write_images(root, "videoA", [1, 2, 3, 4, 6])
    write_labels(
        root,
        "AU",
        "train",
        "videoA",
        [
            "1,0,0,0,1,0,0,1",
            "-1,-1,-1,-1,-1,-1,-1,-1",
            "0,1,0,0,0,0,0,0",
            "0,0,0,0,0,0,0,0",
            "1,1,1,1,1,1,1,1",
            "0,0,1,0,0,0,0,0",
        ],
    )
    write_labels(root, "EXPR", "train", "videoA", ["4", "4", "-1", "0", "6", "2"])
    write_labels(
        root, "VA", "validation", "videoA", ["0.5,-0.25", "-5,-5", "1,-1", "0,0", "0.1,0.2", "-0.3,0.4"]
    )
    # a two-person video: both crops folders exist, labels end after 3 lines for _right (images 1..3)
    write_images(root, "10-60-1280x720_left", [1, 2])
    write_images(root, "10-60-1280x720_right", [1, 2, 3])
    write_labels(root, "EXPR", "validation", "10-60-1280x720_left", ["1", "5", "3"])
    write_labels(root, "EXPR", "validation", "10-60-1280x720_right", ["0", "0", "0"])
    for task in ("AU", "EXPR", "VA"):  # every task/split folder exists, as in the release
        for split in SPLIT_2020.values():
            (root / "annotations" / SET_2020[task] / split).mkdir(parents=True, exist_ok=True)
    return root


def test_reads_every_task_with_1_based_images_and_drops_sentinels_and_faceless_frames(corpus):
    table = load_aff_wild2(corpus)
    assert list(table.columns) == list(FRAME_TABLE_COLUMNS)
    au = table[table["AU1"].notna()]
    # line 1 is all -1; line 4 (image 00005.jpg) has no image
    assert au["frame"].tolist() == [0, 2, 3, 5]
    assert au["path"].str.endswith("videoA/00001.jpg").iloc[0]
    assert au["path"].iloc[1].endswith("videoA/00003.jpg")
    assert au.iloc[0][list(AU_NAMES)].tolist() == [1, 0, 0, 0, 1, 0, 0, 1]
    assert au[["expr", "valence", "arousal"]].isna().all().all()  # an AU row carries AU labels only

    expr = table[table["expr"].notna()]
    assert expr[expr["video"] == "videoA"]["frame"].tolist() == [0, 1, 3, 5]
    assert expr[expr["video"] == "10-60-1280x720_left"]["frame"].tolist() == [0, 1]
    assert set(expr[expr["video"].str.startswith("10-60")]["split"]) == {"validation"}
    assert set(expr["video"]) == {"videoA", "10-60-1280x720_left", "10-60-1280x720_right"}

    va = table[table["valence"].notna()]
    assert va["frame"].tolist() == [0, 2, 3, 5]
    np.testing.assert_allclose(va["valence"], [0.5, 1.0, 0.0, -0.3], rtol=1e-6)
    assert (va["subject"] == va["video"]).all()
    assert table["path"].map(lambda p: p.startswith("/")).all()


def test_report_counts_every_dropped_row(corpus):
    table = load_aff_wild2(corpus)
    report = table.attrs["report"]
    assert report.count("not_annotated", scope="AU") == 1
    assert report.count("not_annotated", scope="EXPR") == 1
    assert report.count("not_annotated", scope="VA") == 1
    # AU: line 4 (no image); EXPR: videoA line 4, _left line 2; VA: line 4
    assert report.count("missing_image", scope="AU") == 1
    assert report.count("missing_image", scope="EXPR") == 2
    assert report.count("missing_image") == 4
    assert report.rows_read == 6 * 3 + 3 + 3
    assert report.rows_read == report.rows_kept + report.total_skipped == len(table) + report.total_skipped
    assert "missing_image" in report.summary()
    assert set(report.to_frame()["reason"]) == {"not_annotated", "missing_image"}


def test_tasks_and_splits_select_what_is_read(corpus):
    table = load_aff_wild2(corpus, tasks=["EXPR"], splits=["validation"])
    assert table["expr"].notna().all()
    assert set(table["split"]) == {"validation"}
    assert table[list(AU_NAMES)].isna().all().all()
    with pytest.raises(ValueError, match="tasks"):
        load_aff_wild2(corpus, tasks=["AUs"])


def test_merge_tasks_gives_one_row_per_frame_and_split(corpus):
    table = load_aff_wild2(corpus, merge_tasks=True)
    assert not table.duplicated(["video", "frame", "split"]).any()
    row = table[(table["video"] == "videoA") & (table["frame"] == 0) & (table["split"] == "train")].iloc[0]
    assert row["AU1"] == 1 and row["expr"] == 4 and pd.isna(row["valence"])  # VA is in another split
    assert len(table) == len(load_aff_wild2(corpus)[["video", "frame", "split"]].drop_duplicates())


def test_check_images_false_needs_no_images(corpus, tmp_path):
    table = load_aff_wild2(corpus, check_images=False, images_dir=tmp_path / "nowhere", tasks=["AU"])
    assert table["frame"].tolist() == [0, 2, 3, 4, 5]
    assert table["path"].iloc[-1].endswith("nowhere/videoA/00006.jpg")


def test_abaw2022_layout_keeps_8_of_12_aus_and_drops_other(tmp_path):
    root = tmp_path / "aw2"
    tasks = {"AU": "AU_Detection_Challenge", "EXPR": "EXPR_Classification_Challenge"}
    splits = {"train": "Train_Set"}
    write_images(root, "v1", [1, 2, 3])
    #           AU1,2,4,6,7,10,12,15,23,24,25,26
    write_labels(
        root,
        "AU",
        "train",
        "v1",
        ["1,0,0,1,1,1,0,0,1,1,1,0", "0,0,0,0,0,0,1,0,0,0,0,1", "-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1"],
        header=",".join(AU_NAMES_12),
        layout=tasks,
        splits=splits,
    )
    write_labels(
        root,
        "EXPR",
        "train",
        "v1",
        ["7", "3", "0"],
        header=",".join(EXPR_NAMES_8),
        layout=tasks,
        splits=splits,
    )
    table = load_aff_wild2(root, layout="abaw2022", tasks=["AU", "EXPR"], splits=["train"])
    au = table[table["AU1"].notna()]
    # 12-AU files lack AU20: it stays missing; the other 7 shared AUs are read by name
    seven = [name for name in AU_NAMES if name != "AU20"]
    assert au.iloc[0][seven].tolist() == [1, 0, 0, 1, 0, 0, 1]
    assert au.iloc[1][seven].tolist() == [0, 0, 0, 0, 1, 0, 0]
    assert au["AU20"].isna().all()
    assert table[table["expr"].notna()]["expr"].tolist() == [3, 0]
    assert table.attrs["report"].count("other_class") == 1
    assert table.attrs["report"].count("not_annotated", scope="AU") == 1
    with pytest.raises(FileNotFoundError, match="layout='abaw2022'"):
        load_aff_wild2(root)  # default layout: the folder names say which one it is


@pytest.mark.parametrize(
    ("task", "lines", "header", "message", "line"),
    [
        ("AU", ["1,0,0,0,1,0,0"], None, "expected 8 values, found 7", 2),
        ("AU", ["1,0,0,0,1,0,0,1", "1,0,0,0,1,0,0,1,0"], None, "expected 8 values, found 9", 3),
        ("AU", ["1,0,0,0,1,0,0,1", "1,0,x,0,1,0,0,1"], None, "'x' is not a number", 3),
        ("AU", ["1,0,0,0,2,0,0,1"], None, "'AU12' holds 2", 2),
        ("AU", ["1,0,0,0,1,0,0,1", "", "1,0,0,0,1,0,0,1"], None, "blank line", 3),
        ("AU", ["1,0,0,0,1,0,0,1"], "AU1,AU2,AU4,AU6,AU12,AU15,AU20", "header", 1),
        ("EXPR", ["0", "7"], None, "'expression' holds 7", 3),
        ("EXPR", ["0", "1.5"], None, "holds 1.5", 3),
        ("EXPR", ["0"], "neutral,anger", "header", 1),
        ("VA", ["0.2,0.3", "1.2,0.3"], None, "'valence' holds 1.2", 3),
        ("VA", ["0.2,nan"], None, "not a finite number", 2),
        ("VA", ["0.2;0.3"], None, "expected 2 values, found 1", 2),
    ],
)
def test_malformed_label_files_name_file_and_line(tmp_path, task, lines, header, message, line):
    root = tmp_path / "aw"
    write_images(root, "bad", range(1, len(lines) + 1))
    path = write_labels(root, task, "train", "bad", lines, header=header)
    with pytest.raises(AnnotationError, match=message) as caught:
        load_aff_wild2(root, tasks=[task], splits=["train"])
    assert caught.value.path == path and caught.value.line == line
    assert f"bad.txt, line {line}" in str(caught.value)


def test_label_file_shorter_than_its_images_is_an_error_unless_ignored(tmp_path):
    root = tmp_path / "aw"
    write_images(root, "short", [1, 2, 3, 4])
    write_labels(root, "EXPR", "train", "short", ["1", "2"])
    with pytest.raises(
        AnnotationError, match=r"2 label lines .* holds 2 image\(s\) beyond them, the first 00003\.jpg"
    ):
        load_aff_wild2(root, tasks=["EXPR"], splits=["train"])
    write_labels(root, "VA", "train", "short", ["0.1,0.1", "0.2,0.2"])
    table = load_aff_wild2(root, tasks=["EXPR", "VA"], splits=["train"], extra_images="ignore")
    assert table["expr"].dropna().tolist() == [1, 2]
    assert table.attrs["report"].ignored == {"images beyond the end of their label file": 2}  # once per video


def test_crop_names_that_are_not_plain_frame_numbers(tmp_path):
    # Both crashed the loader: int("²") is a ValueError though "²".isdigit(), and a 24-digit number overflowed
    # the int64 array of frame numbers.
    root = tmp_path / "aw"
    write_images(root, "odd", [1, 2])
    folder = root / "cropped_aligned" / "odd"
    (folder / "²³.jpg").write_bytes(b"not a frame")
    write_labels(root, "EXPR", "train", "odd", ["1", "2"])
    assert load_aff_wild2(root, tasks=["EXPR"], splits=["train"])["expr"].tolist() == [1, 2]
    (folder / f"{10**23}.jpg").write_bytes(b"far beyond")
    with pytest.raises(AnnotationError, match=rf"1 image\(s\) beyond them, the first {10**23}\.jpg;"):
        load_aff_wild2(root, tasks=["EXPR"], splits=["train"])
    table = load_aff_wild2(root, tasks=["EXPR"], splits=["train"], extra_images="ignore")
    assert table.attrs["report"].ignored == {"images beyond the end of their label file": 1}


def test_missing_folders_are_named(tmp_path, corpus):
    with pytest.raises(FileNotFoundError, match="cropped_aligned"):
        load_aff_wild2(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="VA_Set/Training_Set"):
        load_aff_wild2(tmp_path / "absent", check_images=False, tasks=["VA"])
    write_labels(corpus, "AU", "train", "no_crops", ["1,0,0,0,1,0,0,1"])
    with pytest.raises(FileNotFoundError, match="no_crops"):
        load_aff_wild2(corpus, tasks=["AU"])


def test_windows_line_endings_and_trailing_blank_lines_are_read(tmp_path):
    root = tmp_path / "aw"
    write_images(root, "crlf", [1, 2])
    folder = root / "annotations" / "VA_Set" / "Training_Set"
    folder.mkdir(parents=True)
    (folder / "crlf.txt").write_bytes(b"valence,arousal\r\n0.1,0.2\r\n-0.3,0.4\r\n\r\n")
    table = load_aff_wild2(root, tasks=["VA"], splits=["train"])
    np.testing.assert_allclose(table["arousal"], [0.2, 0.4], rtol=1e-6)


def test_cr_only_line_endings_and_a_byte_order_mark_are_read(tmp_path):
    # Before: the CR-only file was one line, and its header error printed the whole file.
    root = tmp_path / "aw"
    write_images(root, "mac", [1, 2])
    folder = root / "annotations" / "VA_Set" / "Training_Set"
    folder.mkdir(parents=True)
    (folder / "mac.txt").write_bytes(b"\xef\xbb\xbfvalence,arousal\r0.1,0.2\r-0.3,0.4\r")
    table = load_aff_wild2(root, tasks=["VA"], splits=["train"])
    np.testing.assert_allclose(table["arousal"], [0.2, 0.4], rtol=1e-6)


def test_a_wrong_header_in_a_cr_only_file_quotes_that_header_alone(tmp_path):
    # The case: with CR-only line endings, a header error quoted every line of the file.
    root = tmp_path / "aw"
    write_images(root, "mac", [1])
    folder = root / "annotations" / "VA_Set" / "Training_Set"
    folder.mkdir(parents=True)
    body = "".join(f"0.{k % 10},0.{k % 7}\r" for k in range(2000))
    (folder / "mac.txt").write_bytes(f"valence;arousal\r{body}".encode())
    with pytest.raises(AnnotationError, match=r"mac\.txt.*line 1.*header 'valence;arousal' is not") as caught:
        load_aff_wild2(root, tasks=["VA"], splits=["train"])
    assert len(str(caught.value)) < 300 and "0.1,0.1" not in str(caught.value)


def test_a_header_error_quotes_a_short_excerpt(tmp_path):
    root = tmp_path / "aw"
    write_images(root, "long", [1])
    write_labels(root, "VA", "train", "long", [], header="v" * 5000)
    with pytest.raises(AnnotationError, match=r"header 'v+'\.\.\. \(5000 characters\) is not") as caught:
        load_aff_wild2(root, tasks=["VA"], splits=["train"])
    assert len(str(caught.value)) < 400


def test_a_label_file_without_lines_warns(tmp_path):
    root = tmp_path / "aw"
    write_images(root, "empty", [])
    write_labels(root, "VA", "train", "empty", [])
    with pytest.warns(EmptyAnnotationWarning, match=r"empty\.txt holds no label line"):
        table = load_aff_wild2(root, tasks=["VA"], splits=["train"])
    assert len(table) == 0


def test_video_names_leading_outside_the_crop_folder_are_refused(tmp_path):
    root = tmp_path / "aw"
    elsewhere = tmp_path / "elsewhere"
    write_images(root, "ok", [1])
    write_images(elsewhere, "out", [1, 2])
    (root / "cropped_aligned" / "linked").symlink_to(elsewhere / "cropped_aligned" / "out")
    (root / "00001.jpg").write_bytes(b"jpeg")  # what video ".." would read
    write_labels(root, "EXPR", "train", "ok", ["1"])
    write_labels(root, "EXPR", "train", "linked", ["2", "3"])
    write_labels(root, "EXPR", "train", "..", ["4"])  # the file "...txt"
    for check_images in (True, False):
        table = load_aff_wild2(root, tasks=["EXPR"], splits=["train"], check_images=check_images)
        report = table.attrs["report"]
        assert table["video"].tolist() == ["ok"]
        assert report.count("outside_root") == 3 and report.rows_read == 4 == len(table) + 3
        assert "video '..'" in report.examples["outside_root"][0]
