import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from affect_data import cache as cache_module
from affect_data.cache import CacheError, FrameCache, build_frame_cache, unreadable_images
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
    with pytest.raises(CacheError, match=r"crops.u8: holds 7190 bytes; meta.json records 7200"):
        FrameCache(folder)
    array.write_bytes(data)

    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps(meta | {"n_rows": 5}))
    with pytest.raises(CacheError, match=r"records 7200 bytes for crops.u8, but its shape \(5, 20, 20, 3\)"):
        FrameCache(folder)
    (folder / "meta.json").write_text(json.dumps(meta | {"format": 99}))
    with pytest.raises(ValueError, match=r"cache format 99, expected 2; .* rebuild it"):
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
    with pytest.raises(ValueError, match=r"meta\.json: lacks key\(s\) \['n_rows'\]"):
        FrameCache(folder)
    meta_path.write_text(json.dumps(meta | {"files": {"crops.u8": {}}}))
    with pytest.raises(CacheError, match="lacks the byte sizes and checksums"):
        FrameCache(folder)
    meta_path.write_text(json.dumps(meta))
    index = folder / "index.csv"
    index.write_text(index.read_text().replace("\n5,", "\n6,"))
    with pytest.raises(ValueError, match=r"index\.csv: refers to row 6 outside the 6 rows"):
        FrameCache(folder)


# ------------------------------------------------------------------ damage is detected and named


@pytest.fixture
def built(tmp_path):
    folder = tmp_path / "cache"
    build_frame_cache(write_images(tmp_path / "img"), folder, size=SIDE)
    return folder


def test_a_healthy_cache_verifies(built):
    cache = FrameCache(built)
    cache.verify()
    cache.verify(full=True)
    meta = json.loads((built / "meta.json").read_text())
    assert meta["files"]["crops.u8"]["bytes"] == 6 * SIDE * SIDE * 3
    assert meta["files"]["index.csv"]["bytes"] == (built / "index.csv").stat().st_size


def test_a_deleted_array_file_is_named_on_open(built):
    (built / "crops.u8").unlink()
    with pytest.raises(CacheError, match=r"crops\.u8: is missing; .* rebuild it") as caught:
        FrameCache(built)
    assert caught.value.path == built / "crops.u8"


def test_missing_index_lines_are_named_on_open(built):
    index = built / "index.csv"
    lines = index.read_text().splitlines()
    index.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(CacheError, match=r"index\.csv: holds \d+ bytes; meta\.json records \d+"):
        FrameCache(built)


def test_a_file_damaged_after_opening_fails_verify(built):
    cache = FrameCache(built)
    with open(built / "crops.u8", "r+b") as file:
        file.truncate(100)
    with pytest.raises(CacheError, match=r"crops\.u8: holds 100 bytes"):
        cache.verify()


def test_a_file_zeroed_at_the_same_size_fails_verify(built):
    # Before: the sizes matched, the cache opened, and training read black images without a word.
    array = built / "crops.u8"
    array.write_bytes(bytes(array.stat().st_size))
    cache = FrameCache(built)  # opening checks sizes only: they match
    with pytest.raises(
        CacheError, match=r"crops\.u8: block 0 \(bytes 0 to 7200, rows 0 to 5\) does not match"
    ):
        cache.verify()


def test_an_edited_index_fails_verify(built):
    index = built / "index.csv"
    index.write_text(index.read_text().replace("00001.jpg", "00009.jpg"))
    with pytest.raises(CacheError, match=r"index\.csv: does not match its checksum"):
        FrameCache(built).verify()


def test_sampled_verify_reads_some_blocks_and_full_verify_reads_all(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_module, "BLOCK_BYTES", SIDE * SIDE * 3)  # one image per block: 9 blocks
    folder = tmp_path / "cache"
    build_frame_cache(write_images(tmp_path / "img", n=9), folder, size=SIDE)
    monkeypatch.undo()  # the block size is read from meta.json, not from the module
    array = folder / "crops.u8"
    data = bytearray(array.read_bytes())
    data[SIDE * SIDE * 3 + 7] ^= 0xFF  # one byte of block 1, which 2 samples (blocks 0, 3, 5, 8) skip
    array.write_bytes(bytes(data))
    cache = FrameCache(folder)
    cache.verify(samples=2)
    with pytest.raises(CacheError, match=r"block 1 \(bytes 1200 to 2400, rows 1 to 1\)"):
        cache.verify(full=True)
    data[-1] ^= 0xFF  # the last block is always read
    array.write_bytes(bytes(data))
    with pytest.raises(CacheError, match=r"block 8 "):
        cache.verify(samples=2)


def test_a_cache_of_the_previous_format_is_refused(built):
    meta = json.loads((built / "meta.json").read_text())
    del meta["files"]
    (built / "meta.json").write_text(json.dumps(meta | {"format": 1}))
    with pytest.raises(CacheError, match=r"cache format 1, expected 2; the crop cache .* rebuild it"):
        FrameCache(built)


def test_unreadable_images_names_what_the_cache_would_skip(tmp_path):
    table = write_images(tmp_path / "img")
    Path(table["path"].iloc[1]).write_bytes(b"")  # zero bytes
    with open(table["path"].iloc[4], "r+b") as file:
        file.truncate(file.seek(0, 2) // 2)  # opens, fails when decoded
    missing = str(tmp_path / "img" / "gone.jpg")
    paths = [*table["path"], missing]
    found = unreadable_images(paths)
    assert list(found) == [table["path"].iloc[1], table["path"].iloc[4], missing]
    assert "cannot identify image file" in found[table["path"].iloc[1]]
    assert unreadable_images(paths, num_workers=2, chunk_size=2) == found
    with pytest.warns(UserWarning, match="skipped 3"):
        cache = build_frame_cache(paths, tmp_path / "cache", size=SIDE)
    assert {entry["path"] for entry in cache.skipped} == set(found)
