"""load_expw on a small label.lst in ExpW's format with real JPEG source images."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from affect_data import FRAME_TABLE_COLUMNS, AnnotationError, EmptyAnnotationWarning, load_expw
from affect_data.faces import CropCache

RED, BLUE, GREY = (220, 30, 30), (30, 30, 220), (128, 128, 128)


def jpeg(path, size=(100, 80), boxes=()):
    """A grey image with solid rectangles ``(left, top, right, bottom, colour)``."""
    image = Image.new("RGB", size, GREY)
    for left, top, right, bottom, colour in boxes:
        image.paste(colour, (left, top, right, bottom))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, quality=95)


def write_expw(root, lines):
    (root / "label").mkdir(parents=True, exist_ok=True)
    (root / "label" / "label.lst").write_text("\n".join(lines) + "\n")


@pytest.fixture
def expw(tmp_path):
    root = tmp_path / "expw"
    origin = root / "image" / "origin"
    jpeg(origin / "happy_1.jpg", boxes=[(10, 20, 50, 60, RED), (60, 10, 90, 30, BLUE)])
    jpeg(origin / "sad_2.jpg", size=(64, 64))
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), RED).save(buffer, format="JPEG")
    (origin / "broken_3.jpg").write_bytes(buffer.getvalue()[:200])  # truncated
    write_expw(
        root,
        [
            # image_name face_id top left right bottom confidence label
            "happy_1.jpg 0 20 10 50 60 93.5 3",
            "happy_1.jpg 1 10 60 90 30 41.0 6",
            "happy_1.jpg 0 20 10 50 60 93.5 3",  # duplicate line
            "happy_1.jpg 1 10 60 90 30 41.0 5",  # contradicts the line above it for the same face: dropped
            "sad_2.jpg 0 -5 -5 30 40 70.2 4",  # box overhangs the image: clipped
            "sad_2.jpg 1 100 100 120 120 60.0 0",  # box entirely outside
            "absent_9.jpg 0 0 0 10 10 80.0 1",
            "broken_3.jpg 0 0 0 10 10 80.0 2",
            "",
        ],
    )
    return root


def test_faces_keyed_by_image_and_face_id_with_remapped_labels(expw, tmp_path):
    table = load_expw(expw)
    assert list(table.columns)[: len(FRAME_TABLE_COLUMNS)] == list(FRAME_TABLE_COLUMNS)
    assert table["video"].tolist() == ["happy_1.jpg#0", "happy_1.jpg#1", "sad_2.jpg#0"]
    assert (table["frame"] == 0).all() and (table["subject"] == table["video"]).all()
    assert table["expr"].tolist() == [4, 0, 5]  # happy -> Happiness, neutral -> Neutral, sad -> Sadness
    assert table["confidence"].tolist() == [93.5, 41.0, 70.2]
    assert table["face_id"].tolist() == [0, 1, 0]
    assert table[["box_left", "box_top", "box_right", "box_bottom"]].iloc[0].tolist() == [10, 20, 50, 60]
    assert table["source"].iloc[0] == str((expw / "image" / "origin" / "happy_1.jpg").absolute())
    assert table[["AU1", "valence"]].isna().all().all()
    assert len(set(table["path"])) == 3  # two faces of one image never share a crop
    assert all(p.startswith(str(tmp_path / "expw_crops")) for p in table["path"])  # default: next to root


def test_crop_is_the_pil_box(expw):
    table = load_expw(expw)
    with Image.open(expw / "image" / "origin" / "happy_1.jpg") as source:
        for i, (box, colour) in enumerate([((10, 20, 50, 60), RED), ((60, 10, 90, 30), BLUE)]):
            with Image.open(table["path"].iloc[i]) as crop:
                pixels = np.asarray(crop, dtype=float)
            assert crop.size == (box[2] - box[0], box[3] - box[1])
            assert np.abs(pixels - np.asarray(source.crop(box), dtype=float)).mean() < 3  # JPEG noise only
            np.testing.assert_allclose(pixels[4:-4, 4:-4].reshape(-1, 3).mean(axis=0), colour, atol=4)
    with Image.open(table["path"].iloc[2]) as clipped:
        assert clipped.size == (30, 40)  # (-5, -5, 30, 40) clipped to (0, 0, 30, 40)


def test_report_counts_every_skipped_line(expw):
    report = load_expw(expw).attrs["report"]
    assert report.count("duplicate") == 1
    assert report.count("conflicting") == 1
    assert report.count("empty_box") == 1
    assert report.count("missing_image") == 1
    assert report.count("corrupt_image") == 1
    assert report.rows_read == 8 == report.rows_kept + report.total_skipped
    assert "line 4 contradicts line 2" in report.examples["conflicting"][0]
    assert "broken_3.jpg" in report.examples["corrupt_image"][0]


def test_min_confidence(expw):
    table = load_expw(expw, min_confidence=50)
    assert table["video"].tolist() == ["happy_1.jpg#0", "sad_2.jpg#0"]
    assert table.attrs["report"].count("low_confidence") == 1


def test_crops_are_written_once_and_reused(expw, tmp_path, monkeypatch):
    cache = tmp_path / "crops"
    first = load_expw(expw, cache_dir=cache)
    stamps = {p: (cache / p).stat().st_mtime_ns for p in first["path"]}

    def no_write(*args, **kwargs):
        raise AssertionError("a cached crop was written again")

    monkeypatch.setattr(CropCache, "save", no_write)
    (expw / "image" / "origin" / "happy_1.jpg").unlink()  # the cache no longer needs its source
    second = load_expw(expw, cache_dir=cache)
    assert second["path"].tolist() == first["path"].tolist()
    assert {p: (cache / p).stat().st_mtime_ns for p in second["path"]} == stamps
    assert not list(cache.rglob(".*"))  # no temporary file left behind


def test_a_changed_box_gets_a_new_crop(expw, tmp_path):
    cache = tmp_path / "crops"
    before = load_expw(expw, cache_dir=cache)["path"].iloc[0]
    lines = (expw / "label" / "label.lst").read_text().splitlines()
    lines[0] = "happy_1.jpg 0 20 10 40 60 93.5 3"
    lines[2] = lines[0]
    write_expw(expw, lines)
    after = load_expw(expw, cache_dir=cache)["path"].iloc[0]
    assert after != before
    with Image.open(after) as crop:
        assert crop.size == (30, 40)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("happy_1.jpg 0 20 10 50 60 93.5", "expected 8 fields"),
        ("happy_1.jpg 0 20 10 50 60 93.5 3 extra", "expected 8 fields"),
        ("happy_1.jpg zero 20 10 50 60 93.5 3", "must be integers"),
        ("happy_1.jpg 0 20 10 50 60 high 3", "confidence 'high' is not a finite number"),
        ("happy_1.jpg 0 20 10 50 60 nan 3", "confidence 'nan' is not a finite number"),
        ("happy_1.jpg 0 20 10 50 60 93.5 7", "label 7 is outside 0..6"),
        ("happy_1.jpg 0 60 10 50 20 93.5 3", "empty face box"),
        ("happy_1.jpg -1 20 10 50 60 93.5 3", "face id -1"),
        ("happy_1.jpg 0 20 10 " + "1" * 400 + " 60 93.5 3", "face box coordinate beyond"),
    ],
)
def test_malformed_lines_name_file_and_line(expw, line, message):
    write_expw(expw, ["sad_2.jpg 0 0 0 30 40 70.2 4", line])
    with pytest.raises(AnnotationError, match=message) as caught:
        load_expw(expw)
    assert caught.value.line == 2 and caught.value.path.name == "label.lst"


def test_missing_label_file_or_image_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"label\.lst"):
        load_expw(tmp_path)
    write_expw(tmp_path, ["a.jpg 0 0 0 1 1 1 1"])
    with pytest.raises(FileNotFoundError, match="image/origin"):
        load_expw(tmp_path)


def test_a_byte_order_mark_does_not_drop_the_first_face(expw):
    # Before: the first name was read as "\ufeffhappy_1.jpg", a missing image, and its face was lost.
    label = expw / "label" / "label.lst"
    label.write_bytes(b"\xef\xbb\xbf" + label.read_bytes())
    table = load_expw(expw)
    assert table["video"].tolist() == ["happy_1.jpg#0", "happy_1.jpg#1", "sad_2.jpg#0"]
    assert table.attrs["report"].count("missing_image") == 1  # absent_9.jpg only


@pytest.mark.parametrize("newline", [b"\r\n", b"\r"])
def test_crlf_and_cr_only_line_endings_read_as_lines(expw, newline):
    label = expw / "label" / "label.lst"
    label.write_bytes(label.read_bytes().replace(b"\n", newline))
    assert load_expw(expw)["video"].tolist() == ["happy_1.jpg#0", "happy_1.jpg#1", "sad_2.jpg#0"]


def test_image_names_leading_outside_the_image_folder_are_never_opened(expw, tmp_path, monkeypatch):
    secret = tmp_path / "secret.jpg"  # a readable image outside the data set
    jpeg(secret, boxes=[(0, 0, 100, 80, RED)])
    (expw / "image" / "origin" / "link.jpg").symlink_to(secret)
    write_expw(
        expw,
        [
            "sad_2.jpg 0 0 0 30 40 70.2 4",
            "../../../secret.jpg 0 0 0 50 50 90.0 3",
            f"{secret} 0 0 0 50 50 90.0 3",  # an absolute name
            "link.jpg 0 0 0 50 50 90.0 3",  # a symlink out of the folder
            "./../origin/sad_2.jpg 1 0 0 30 40 70.2 4",  # leaves and comes back: inside, allowed
        ],
    )
    opened = []
    real_open = Image.open
    monkeypatch.setattr(
        Image, "open", lambda path, *a, **k: opened.append(str(path)) or real_open(path, *a, **k)
    )
    table = load_expw(expw)
    report = table.attrs["report"]
    assert report.count("outside_root") == 3
    assert "label.lst line 2: '../../../secret.jpg'" in report.examples["outside_root"][0]
    assert table["video"].tolist() == ["sad_2.jpg#0", "./../origin/sad_2.jpg#1"]
    assert not any("secret" in p or "link" in p for p in opened)
    assert report.rows_read == 5 == report.rows_kept + report.total_skipped


def test_boxes_mostly_off_the_image_are_skipped(expw):
    write_expw(
        expw,
        [
            "sad_2.jpg 0 0 0 30 40 70.2 4",  # inside
            "sad_2.jpg 1 50 50 90 90 70.2 4",  # a 40 x 40 box, 14 x 14 of it on the 64 x 64 image
            "sad_2.jpg 2 0 -10 30 30 70.2 4",  # a quarter above the image: clipped, kept
        ],
    )
    table = load_expw(expw)
    assert table["face_id"].tolist() == [0, 2]
    report = table.attrs["report"]
    assert report.count("off_image") == 1 and "line 2" in report.examples["off_image"][0]


def test_an_empty_label_file_warns(expw):
    write_expw(expw, [""])
    with pytest.warns(EmptyAnnotationWarning, match=r"label\.lst holds no face line"):
        table = load_expw(expw)
    assert len(table) == 0


def test_a_name_too_long_for_the_file_system_is_a_missing_image(expw):
    write_expw(expw, ["sad_2.jpg 0 0 0 30 40 70.2 4", f"{'x' * 300}.jpg 0 0 0 30 40 70.2 4"])
    table = load_expw(expw)
    assert len(table) == 1 and table.attrs["report"].count("missing_image") == 1


@pytest.mark.parametrize(
    ("data", "line", "message"),
    [
        (
            b"sad_2.jpg 0 0 0 30 40 70.2 4\nsad_\xe9.jpg 0 0 0 30 40 70.2 4\n",
            2,
            r"not UTF-8 text: byte b'\\xe9'",
        ),
        (b"sad_2.jpg 0 0 0 30 40 70.2 4\nsad\x00.jpg 0 0 0 30 40 70.2 4\n", 2, "NUL byte"),
        ("sad_2.jpg 0 0 0 30 40 70.2 4\n".encode("utf-16"), 1, "UTF-16"),
    ],
)
def test_text_that_is_not_utf8_names_the_line(expw, data, line, message):
    (expw / "label" / "label.lst").write_bytes(data)
    with pytest.raises(AnnotationError, match=message) as caught:
        load_expw(expw)
    assert caught.value.line == line
