"""load_disfa on small fixtures in DISFA's label format with OpenFace-style aligned frames."""

from __future__ import annotations

import pytest

from affect_data import AU_NAMES, FRAME_TABLE_COLUMNS, AnnotationError, EmptyAnnotationWarning, load_disfa
from affect_data.loaders.disfa import DISFA_AUS


def write_subject(root, subject, intensities, images=None, pattern=None):
    """``intensities``: {au: [values per frame]}; AUs not given are all 0. ``images``: 1-based frames."""
    n = len(next(iter(intensities.values())))
    folder = root / "ActionUnit_Labels" / subject
    folder.mkdir(parents=True, exist_ok=True)
    for au in DISFA_AUS:
        values = intensities.get(au, [0] * n)
        (folder / f"{subject}_au{au}.txt").write_text("".join(f"{k},{v}\n" for k, v in enumerate(values, 1)))
    aligned = root / f"LeftVideo{subject}_comp" / f"LeftVideo{subject}_comp_aligned"
    aligned.mkdir(parents=True, exist_ok=True)
    for k in range(1, n + 1) if images is None else images:
        (aligned / f"frame_det_00_{k:06d}.bmp").write_bytes(b"BM")
    return folder


def test_reads_the_8_shared_aus_with_the_threshold_and_frames_from_the_files(tmp_path):
    write_subject(tmp_path, "SN001", {1: [0, 2, 5, 1], 5: [5, 5, 5, 5], 12: [3, 0, 0, 2], 25: [1, 1, 4, 0]})
    write_subject(tmp_path, "SN002", {20: [2, 0], 26: [4, 4]})
    table = load_disfa(tmp_path)
    assert list(table.columns) == list(FRAME_TABLE_COLUMNS)
    assert table["video"].tolist() == ["SN001"] * 4 + ["SN002"] * 2
    assert (table["subject"] == table["video"]).all() and set(table["split"]) == {"train"}
    assert table["frame"].tolist() == [0, 1, 2, 3, 0, 1]
    sn1 = table[table["video"] == "SN001"]
    assert sn1["AU1"].tolist() == [0, 1, 1, 0]
    assert sn1["AU12"].tolist() == [1, 0, 0, 1]
    assert sn1["AU25"].tolist() == [0, 0, 1, 0]
    assert table[table["video"] == "SN002"]["AU20"].tolist() == [1, 0]
    assert table[list(AU_NAMES)].notna().all().all()
    assert table[["expr", "valence", "arousal"]].isna().all().all()
    assert (
        table["path"]
        .iloc[2]
        .endswith("LeftVideoSN001_comp/LeftVideoSN001_comp_aligned/frame_det_00_000003.bmp")
    )
    high = load_disfa(tmp_path, threshold=4)
    assert high[high["video"] == "SN001"]["AU1"].tolist() == [0, 0, 1, 0]


def test_missing_images_are_dropped_and_counted(tmp_path):
    write_subject(tmp_path, "SN003", {1: [3, 3, 3, 3, 3]}, images=[1, 2, 4])
    table = load_disfa(tmp_path)
    assert table["frame"].tolist() == [0, 1, 3]
    report = table.attrs["report"]
    assert report.count("missing_image") == 2
    assert report.rows_read == 5 == report.rows_kept + report.total_skipped
    assert len(load_disfa(tmp_path, check_images=False)) == 5


def test_image_pattern_and_root_are_parameters(tmp_path):
    write_subject(tmp_path, "SN001", {1: [3, 0]})
    faces = tmp_path / "faces" / "SN001"
    faces.mkdir(parents=True)
    (faces / "0002.png").write_bytes(b"png")
    table = load_disfa(tmp_path, image_root=tmp_path / "faces", image_pattern="{subject}/{frame:04d}.png")
    assert table["path"].tolist() == [str(faces / "0002.png")]
    with pytest.raises(FileNotFoundError, match=r"image folder .*SN001"):
        load_disfa(tmp_path, image_pattern="elsewhere/{subject}/{frame}.png")


@pytest.mark.parametrize(
    ("content", "message", "line"),
    [
        ("1,0\n2,0\n3\n", "expected 2 values, found 1", 3),
        ("1,0\n2,x\n3,0\n", "'x' is not a number", 2),
        ("1,0\n2,6\n3,0\n", "'intensity' holds 6", 2),
        ("1,0\n3,0\n2,0\n", "'frame' holds 3", 2),
        ("1,0\n2,0.5\n3,0\n", "'intensity' holds 0.5", 2),
    ],
)
def test_malformed_label_files_name_file_and_line(tmp_path, content, message, line):
    folder = write_subject(tmp_path, "SN001", {1: [0, 0, 0]})
    bad = folder / "SN001_au4.txt"
    bad.write_text(content)
    with pytest.raises(AnnotationError, match=message) as caught:
        load_disfa(tmp_path)
    assert caught.value.path == bad and caught.value.line == line


def test_frame_counts_must_agree_and_every_au_file_exist(tmp_path):
    folder = write_subject(tmp_path, "SN001", {1: [0, 0, 0]})
    (folder / "SN001_au9.txt").write_text("1,0\n2,0\n")
    with pytest.raises(AnnotationError, match=r"SN001_au9\.txt: holds 2 frames but SN001_au1\.txt holds 3"):
        load_disfa(tmp_path)
    (folder / "SN001_au9.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"SN001_au9\.txt"):
        load_disfa(tmp_path)


def test_bad_arguments_and_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="ActionUnit_Labels"):
        load_disfa(tmp_path)
    with pytest.raises(ValueError, match=r"image_pattern '\{subj\}/\{frame\}\.bmp' must be"):
        load_disfa(tmp_path, image_pattern="{subj}/{frame}.bmp")
    with pytest.raises(ValueError, match="threshold"):
        load_disfa(tmp_path, threshold=0)


def test_a_byte_order_mark_and_cr_only_line_endings_are_read(tmp_path):
    folder = write_subject(tmp_path, "SN001", {1: [3, 0, 4]})
    (folder / "SN001_au1.txt").write_bytes(b"\xef\xbb\xbf1,3\r2,0\r3,4\r")
    assert load_disfa(tmp_path)["AU1"].tolist() == [1, 0, 1]


def test_a_subject_without_frames_warns(tmp_path):
    write_subject(tmp_path, "SN001", {1: [3]})
    folder = write_subject(tmp_path, "SN002", {1: []})
    with pytest.warns(EmptyAnnotationWarning, match=r"SN002 holds no frame in its AU files"):
        table = load_disfa(tmp_path)
    assert table["video"].tolist() == ["SN001"]
    assert folder.is_dir()


def test_image_folders_leading_outside_the_image_root_are_refused(tmp_path):
    root, elsewhere = tmp_path / "disfa", tmp_path / "elsewhere"
    write_subject(root, "SN001", {1: [3, 0]})
    write_subject(elsewhere, "SN002", {1: [3, 3, 3]})
    write_subject(root, "SN002", {1: [3, 3, 3]}, images=[])
    aligned = root / "LeftVideoSN002_comp" / "LeftVideoSN002_comp_aligned"
    aligned.rmdir()
    aligned.symlink_to(elsewhere / "LeftVideoSN002_comp" / "LeftVideoSN002_comp_aligned")
    for check_images in (True, False):
        table = load_disfa(root, check_images=check_images)
        report = table.attrs["report"]
        assert table["video"].tolist() == ["SN001"] * 2
        assert report.count("outside_root") == 3 and report.rows_read == 5
    for pattern in ("../{subject}/{frame}.bmp", "/faces/{subject}/{frame}.bmp", "a/../../{frame}.bmp"):
        with pytest.raises(ValueError, match="leaves image_root"):
            load_disfa(root, image_pattern=pattern)
