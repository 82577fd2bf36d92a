"""save_checkpoint: atomic, and the file gets the user's normal permissions."""

import os
import stat

import pytest
import torch

from mtl_distill import load_checkpoint, save_checkpoint


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_checkpoints_get_the_users_normal_permissions(tmp_path, umask):
    # Before: tempfile.mkstemp's 0600 survived the rename, so a checkpoint shared with a group (or served
    # by another account) was unreadable to it.
    previous = os.umask(umask)
    try:
        path = save_checkpoint({"w": torch.ones(2)}, tmp_path / "run" / "checkpoint.pt")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert load_checkpoint(path)["w"].tolist() == [1.0, 1.0]


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path):
    path = save_checkpoint({"epoch": 1}, tmp_path / "checkpoint.pt")
    with pytest.raises(Exception, match="pickle"):
        save_checkpoint({"epoch": 2, "bad": lambda: None}, path)
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]
