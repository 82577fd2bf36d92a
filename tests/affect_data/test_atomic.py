"""affect_data's atomic folder write: a reader finds the old folder or the new one whole, never a mix."""

import os

import pytest

from affect_data._atomic import atomic_folder
from affect_data.cache import PARTIAL_FOLDER


def test_a_new_folder_appears_only_when_the_block_ends(tmp_path):
    target = tmp_path / "deep" / "corpus"
    with atomic_folder(target, replace=False) as temporary:
        (temporary / "a.txt").write_text("a")
        assert not target.exists()
        match = PARTIAL_FOLDER.fullmatch(temporary.name)
        assert match and match.groups() == ("corpus", str(os.getpid()))
    assert (target / "a.txt").read_text() == "a"
    assert sorted(p.name for p in target.parent.iterdir()) == ["corpus"]  # nothing hidden left


def test_replacing_moves_the_old_folder_aside_and_deletes_it(tmp_path):
    target = tmp_path / "cache"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_folder(target, replace=True) as temporary:
        (temporary / "new.txt").write_text("new")
        assert (target / "old.txt").is_file()  # readers still see the old folder while the new one is filled
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["cache"]


def test_an_empty_folder_is_replaced_and_a_full_one_is_kept_without_replace(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with atomic_folder(empty, replace=False) as temporary:
        (temporary / "x").write_text("x")
    assert (empty / "x").is_file()
    full = tmp_path / "full"
    with pytest.raises(FileExistsError, match="full appeared, not empty"), atomic_folder(full, replace=False):
        full.mkdir()  # another writer got there first
        (full / "theirs").write_text("theirs")
    assert [p.name for p in full.iterdir()] == ["theirs"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "full"]


def test_a_failed_block_leaves_the_old_folder_and_no_temporary(tmp_path):
    target = tmp_path / "cache"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError, match="disk full"), atomic_folder(target, replace=True) as temporary:
        (temporary / "half").write_text("half")
        raise RuntimeError("disk full")
    assert [p.name for p in target.iterdir()] == ["old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["cache"]


def test_two_writers_of_one_folder_in_one_process_get_their_own_temporaries(tmp_path):
    target = tmp_path / "corpus"
    with atomic_folder(target, replace=True) as first, atomic_folder(target, replace=True) as second:
        assert first != second
        (first / "one").write_text("1")
        (second / "two").write_text("2")
    assert [p.name for p in target.iterdir()] == ["one"]  # the outer block ended last
    assert [p.name for p in tmp_path.iterdir()] == ["corpus"]
