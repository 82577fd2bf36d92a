import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from affect_data.cache import FrameCache, build_frame_cache
from affect_data.transforms import load_image

SIDE = 20


def write_images(folder, n=6):
    """JPEGs of differing sizes (so resizing is exercised) and a table that lists one of them twice."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        side = 24 + 3 * i
        path = folder / f"{i:05d}.jpg"
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return pd.DataFrame({"path": [*paths, paths[2]], "frame": range(n + 1)})


def test_round_trip_equals_decoded_images(tmp_path):
    table = write_images(tmp_path / "img")
    cache = build_frame_cache(table, tmp_path / "cache", size=SIDE)
    assert len(cache) == 6 and cache.size == SIDE and cache.skipped == []
    rows = cache.rows_for(table)
    assert rows.tolist() == [0, 1, 2, 3, 4, 5, 2]
    for path, row in zip(table["path"], rows, strict=True):
        np.testing.assert_array_equal(cache[row], load_image(path, SIDE))
    reopened = FrameCache(tmp_path / "cache", size=SIDE)
    np.testing.assert_array_equal(reopened.array, cache.array)
    assert not list(tmp_path.glob(".cache.tmp-*"))  # the temporary folder was renamed into place


def test_parallel_build_equals_serial_build(tmp_path):
    table = write_images(tmp_path / "img", n=9)
    serial = build_frame_cache(table, tmp_path / "serial", size=SIDE)
    parallel = build_frame_cache(table, tmp_path / "parallel", size=SIDE, num_workers=2, chunk_size=2)
    np.testing.assert_array_equal(serial.array, parallel.array)
    assert serial.paths == parallel.paths


def test_pickling_does_not_carry_the_pixels(tmp_path):
    cache = build_frame_cache(write_images(tmp_path / "img"), tmp_path / "cache", size=SIDE)
    cache.array  # noqa: B018 - maps the file
    clone = pickle.loads(pickle.dumps(cache))
    assert clone._array is None
    np.testing.assert_array_equal(clone[3], cache[3])


def test_unreadable_images_are_skipped_counted_and_named(tmp_path):
    table = write_images(tmp_path / "img")
    broken = table["path"].iloc[1]
    with open(broken, "r+b") as file:
        file.truncate(file.seek(0, 2) // 2)  # a truncated JPEG
    missing = str(tmp_path / "img" / "gone.jpg")
    table = pd.concat([table, pd.DataFrame({"path": [missing], "frame": [99]})], ignore_index=True)

    with pytest.warns(UserWarning, match="skipped 2 unreadable image"):
        cache = build_frame_cache(table, tmp_path / "cache", size=SIDE)
    assert [entry["path"] for entry in cache.skipped] == [broken, missing]
    meta = json.loads((tmp_path / "cache" / "meta.json").read_text())
    assert len(meta["skipped"]) == 2 and "truncated" in meta["skipped"][0]["error"].lower()
    assert cache.covers(table).tolist() == [True, False, True, True, True, True, True, False]
    with pytest.raises(KeyError, match=r"2 image\(s\) are not in the crop cache .*00001.jpg \(skipped"):
        cache.rows_for(table)
    assert cache.rows_for(table[cache.covers(table)]).tolist() == [0, 2, 3, 4, 5, 2]


def test_raise_policy_names_the_file_and_leaves_nothing(tmp_path):
    table = write_images(tmp_path / "img")
    broken = table["path"].iloc[3]
    Path(broken).write_bytes(b"not an image")
    with pytest.raises(OSError, match=r"cannot read image .*00003\.jpg"):
        build_frame_cache(table, tmp_path / "cache", size=SIDE, on_error="raise")
    assert not (tmp_path / "cache").exists()
    assert not list(tmp_path.glob(".cache.*"))


def test_existing_folder_needs_overwrite(tmp_path):
    table = write_images(tmp_path / "img")
    build_frame_cache(table, tmp_path / "cache", size=SIDE)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        build_frame_cache(table, tmp_path / "cache", size=SIDE)
    cache = build_frame_cache(table.iloc[:2], tmp_path / "cache", size=SIDE, overwrite=True)
    assert len(cache) == 2
    assert not list(tmp_path.glob(".cache.*"))


def test_mismatches_are_clear_errors(tmp_path):
    folder = tmp_path / "cache"
    build_frame_cache(write_images(tmp_path / "img"), folder, size=SIDE)
    with pytest.raises(ValueError, match=f"holds {SIDE} px crops; 32 px were asked for"):
        FrameCache(folder, size=32)

    array = folder / "crops.u8"
    data = array.read_bytes()
    array.write_bytes(data[:-10])
    with pytest.raises(ValueError, match=r"crops.u8 holds .* bytes; .*\(6, 20, 20, 3\)"):
        FrameCache(folder)
    array.write_bytes(data)

    index = folder / "index.csv"
    lines = index.read_text().splitlines()
    index.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(ValueError, match=r"index\.csv lists 5 images; meta\.json says 6"):
        FrameCache(folder)
    index.write_text("\n".join(lines) + "\n")

    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps(meta | {"format": 99}))
    with pytest.raises(ValueError, match="cache format 99"):
        FrameCache(folder)
    (folder / "meta.json").unlink()
    with pytest.raises(FileNotFoundError, match="not a finished crop cache"):
        FrameCache(folder)

    with pytest.raises(ValueError, match="on_error"):
        build_frame_cache([], tmp_path / "other", size=SIDE, on_error="ignore")


def test_paths_that_pandas_would_read_as_missing_round_trip(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("NA", "null"):
        Image.new("RGB", (30, 30), (200, 10, 10)).save(name, format="PNG")
    cache = build_frame_cache(["NA", "null"], tmp_path / "cache", size=SIDE)
    reopened = FrameCache(tmp_path / "cache")
    assert reopened.paths == ["NA", "null"] == cache.paths
    assert reopened.rows_for(["null", "NA"]).tolist() == [1, 0]


def test_damaged_meta_or_index_is_a_clear_error(tmp_path):
    folder = tmp_path / "cache"
    build_frame_cache(write_images(tmp_path / "img"), folder, size=SIDE)
    meta_path = folder / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text('{"format": 1, "size": ')
    with pytest.raises(ValueError, match=r"meta\.json: not valid JSON"):
        FrameCache(folder)
    meta_path.write_text(json.dumps({k: v for k, v in meta.items() if k != "n_rows"}))
    with pytest.raises(ValueError, match=r"meta\.json lacks key\(s\) \['n_rows'\]"):
        FrameCache(folder)
    meta_path.write_text(json.dumps(meta))
    index = folder / "index.csv"
    index.write_text(index.read_text().replace("\n5,", "\n6,"))
    with pytest.raises(ValueError, match=r"index\.csv refers to row 6 outside the 6 rows"):
        FrameCache(folder)
