"""load_afew_va on small clips in AFEW-VA's format: per-clip JSON, PNG frames, 68 landmarks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from affect_data import FRAME_TABLE_COLUMNS, AnnotationError, EmptyAnnotationWarning, load_afew_va
from affect_data.faces import CropCache, eye_centers


def landmarks(angle_deg: float, centre=(120.0, 120.0)) -> np.ndarray:
    """68 points: eyes 40 px apart, a face about 110 px tall, rotated by ``angle_deg``."""
    points = np.zeros((68, 2))
    points[0:17] = np.column_stack([np.linspace(-45, 45, 17), 35 - np.abs(np.linspace(-20, 20, 17))])
    points[17:36] = np.column_stack([np.linspace(-30, 30, 19), np.linspace(-30, 10, 19)])
    eye = np.column_stack([np.linspace(-6, 6, 6), np.zeros(6)])
    points[36:42] = eye + np.array([-20, -20])
    points[42:48] = eye + np.array([20, -20])
    points[48:68] = np.column_stack([np.linspace(-15, 15, 20), np.full(20, 25)])
    angle = np.deg2rad(angle_deg)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return points @ rotation.T + centre


def write_clip(root, clip, frames, images=None, actor=None):
    """``frames``: {key: (valence, arousal, angle)}; ``images``: keys that get a PNG (default all)."""
    folder = root / clip
    folder.mkdir(parents=True, exist_ok=True)
    document = {"video_id": clip, "frames": {}}
    if actor:
        document["actor"] = actor
    for key, (valence, arousal, angle) in frames.items():
        points = landmarks(angle)
        document["frames"][key] = {"valence": valence, "arousal": arousal, "landmarks": points.tolist()}
        if images is None or key in images:
            image = Image.new("RGB", (240, 240), "white")
            draw = ImageDraw.Draw(image)
            for eye in eye_centers(points):
                draw.ellipse([*(eye - 5), *(eye + 5)], fill="black")
            image.save(folder / f"{key}.png")
    (folder / f"{clip}.json").write_text(json.dumps(document, indent=1))
    return folder / f"{clip}.json"


@pytest.fixture
def afew(tmp_path):
    root = tmp_path / "afew_va"
    write_clip(
        root,
        "001",
        {"00000": (3, -2, 25.0), "00001": (10, 10, -15.0), "00002": (-10, 0, 0.0)},
        images={"00000", "00002"},
        actor="Someone",
    )
    write_clip(root, "002", {"00000": (0, 5, 0.0), "00001": (1, 1, 0.0)})
    (root / "002" / "00001.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)  # corrupt
    (root / "notes").mkdir()  # not a clip folder: ignored
    return root


def test_values_are_divided_by_10_and_faces_aligned(afew, tmp_path):
    table = load_afew_va(afew, size=64)
    assert list(table.columns)[: len(FRAME_TABLE_COLUMNS)] == list(FRAME_TABLE_COLUMNS)
    assert table["video"].tolist() == ["001", "001", "002"]
    assert table["frame"].tolist() == [0, 2, 0]
    np.testing.assert_allclose(table["valence"], [0.3, -1.0, 0.0], rtol=1e-6)
    np.testing.assert_allclose(table["arousal"], [-0.2, 0.0, 0.5], rtol=1e-6)
    assert table["subject"].tolist() == ["Someone", "Someone", "002"]
    assert table[["AU1", "expr"]].isna().all().all() and set(table["split"]) == {"train"}
    assert table["source"].iloc[0] == str((afew / "001" / "00000.png").absolute())
    assert all(p.startswith(str(tmp_path / "afew_va_crops")) for p in table["path"])
    with Image.open(table["path"].iloc[0]) as crop:  # the face rotated by 25 degrees comes out level
        assert crop.size == (64, 64)
        dark = np.asarray(crop.convert("L")) < 100
    ys_left, _ = np.nonzero(dark[:, :32])
    ys_right, _ = np.nonzero(dark[:, 32:])
    assert abs(ys_left.mean() - ys_right.mean()) < 1.0


def test_missing_and_corrupt_frames_are_skipped_and_counted(afew):
    report = load_afew_va(afew).attrs["report"]
    assert report.count("missing_image") == 1
    assert report.count("corrupt_image") == 1
    assert report.rows_read == 5 == report.rows_kept + report.total_skipped
    assert "00001.png" in report.examples["missing_image"][0]


def test_crops_are_written_once_and_reused(afew, tmp_path, monkeypatch):
    cache = tmp_path / "crops"
    first = load_afew_va(afew, cache_dir=cache)
    stamps = [(cache / p).stat().st_mtime_ns for p in first["path"]]

    def no_write(*args, **kwargs):
        raise AssertionError("a cached crop was written again")

    monkeypatch.setattr(CropCache, "save", no_write)
    second = load_afew_va(afew, cache_dir=cache)
    assert second["path"].tolist() == first["path"].tolist()
    assert [(cache / p).stat().st_mtime_ns for p in second["path"]] == stamps
    monkeypatch.undo()
    resized = load_afew_va(afew, cache_dir=cache, size=32)  # another size is another crop
    assert not set(resized["path"]) & set(first["path"])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["frames"]["00000"].update(valence=11), "frame 00000: valence 11 is outside"),
        (lambda d: d["frames"]["00000"].update(arousal="high"), "frame 00000: arousal is 'high'"),
        (lambda d: d["frames"]["00000"].pop("valence"), "frame 00000: valence is None"),
        (
            lambda d: d["frames"]["00000"].update(landmarks=[[1, 2]] * 67),
            r"68 \[x, y\] pairs of numbers; got 67 pairs",
        ),
        (
            lambda d: d["frames"]["00000"].update(landmarks=[["1", 2]] * 68),
            r"68 \[x, y\] pairs of numbers; pair 0 is \['1', 2\]",
        ),
        (lambda d: d["frames"]["00000"].update(valence=10**400), r"valence 1000.* is outside"),
        (lambda d: d["frames"].update({"²": {}}), "frame key '²'"),
        (lambda d: d.pop("frames"), "'frames' mapping"),
        (lambda d: d["frames"].update(last={}), "frame key 'last'"),
    ],
)
def test_malformed_json_names_file_and_frame(afew, edit, message):
    path = afew / "002" / "002.json"
    document = json.loads(path.read_text())
    edit(document)
    path.write_text(json.dumps(document))
    with pytest.raises(AnnotationError, match=message) as caught:
        load_afew_va(afew)
    assert caught.value.path == path


def test_invalid_json_names_the_line(afew):
    path = afew / "001" / "001.json"
    path.write_text('{\n "frames": {\n  "00000": {"valence": 1,,}\n }\n}\n')
    with pytest.raises(AnnotationError, match="not valid JSON") as caught:
        load_afew_va(afew)
    assert caught.value.line == 3


def test_missing_folders(afew, tmp_path):
    (afew / "002" / "002.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"has no 002\.json"):
        load_afew_va(afew)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_afew_va(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no numbered clip folder"):
        load_afew_va(tmp_path / "empty")


def edit_frame(afew, clip, key, **changes):
    path = afew / clip / f"{clip}.json"
    document = json.loads(path.read_text())
    document["frames"][key].update(changes)
    path.write_text(json.dumps(document))


def test_landmarks_that_give_no_face_are_skipped_with_a_reason(afew):
    nan_points = landmarks(0.0).tolist()
    nan_points[40] = [float("nan"), 3.0]
    edit_frame(afew, "002", "00000", landmarks=nan_points)  # JSON "NaN": a tracker that lost the face
    edit_frame(afew, "001", "00000", landmarks=[[1, 1]] * 68)  # eyes at one point
    table = load_afew_va(afew)
    report = table.attrs["report"]
    assert report.count("bad_landmarks") == 2
    assert report.rows_read == 5 == report.rows_kept + report.total_skipped
    assert "non-finite values" in " ".join(report.examples["bad_landmarks"])
    assert table["video"].tolist() == ["001"]


def test_landmarks_far_outside_the_image_are_skipped_not_cropped_black(afew):
    # Before: a crop of the empty plane beyond the image, all black, was trained on.
    edit_frame(afew, "002", "00000", landmarks=(landmarks(0.0) + 5000).tolist())
    edit_frame(afew, "001", "00002", landmarks=landmarks(0.0, centre=(265.0, 120.0)).tolist())  # 2/3 off
    table = load_afew_va(afew)
    report = table.attrs["report"]
    assert report.count("off_image") == 2
    assert "of the crop on the image" in report.examples["off_image"][0]
    assert table["video"].tolist() == ["001"] and table["frame"].tolist() == [0]


def test_a_clip_folder_leading_outside_the_root_is_refused(afew, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    write_clip(elsewhere, "003", {"00000": (0, 0, 0.0)})
    (afew / "003").symlink_to(elsewhere / "003", target_is_directory=True)
    table = load_afew_va(afew)
    report = table.attrs["report"]
    assert report.count("outside_root") == 1 and "003" not in set(table["video"])
    assert report.rows_read == 6 == report.rows_kept + report.total_skipped


@pytest.mark.parametrize("prefix", [b"", b"\xef\xbb\xbf"])
@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_byte_order_mark_and_line_endings_read_the_same(afew, prefix, newline):
    path = afew / "001" / "001.json"
    path.write_bytes(prefix + path.read_bytes().replace(b"\n", newline))
    assert load_afew_va(afew)["frame"].tolist() == [0, 2, 0]


def test_json_that_is_not_utf8_names_the_line(afew):
    path = afew / "002" / "002.json"
    path.write_bytes(path.read_bytes().replace(b'"video_id"', b'"vid\xe9o_id"'))
    with pytest.raises(AnnotationError, match="is not UTF-8 text") as caught:
        load_afew_va(afew)
    assert caught.value.path == path and caught.value.line == 2


def test_a_clip_without_frames_warns(afew):
    (afew / "002" / "002.json").write_text('{"frames": {}}')
    with pytest.warns(EmptyAnnotationWarning, match=r"002\.json holds no frame"):
        load_afew_va(afew)
