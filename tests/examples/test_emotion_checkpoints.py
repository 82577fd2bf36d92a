"""Reading back what the emotion stages saved: a damaged or foreign file is a one-line error."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

from emotion.factory import check_resumable, load_weights
from emotion.pipeline import StageError

from affect_data.models import MultitaskCNN
from mtl_distill.checkpoint import save_checkpoint

torch.set_num_threads(1)


def model(hidden: int = 16) -> MultitaskCNN:
    return MultitaskCNN("resnet_tiny", hidden=hidden)


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_saved_weights_load(tmp_path):
    saved = model()
    path = save_checkpoint(saved.state_dict(), tmp_path / "model.pt")
    loaded = load_weights(model(), path, "teacher")
    expected = saved.state_dict()
    assert all(torch.equal(expected[key], value) for key, value in loaded.state_dict().items())


def test_truncated_missing_and_foreign_weights_name_the_file_and_the_stage_to_redo(tmp_path):
    path = save_checkpoint(model().state_dict(), tmp_path / "model.pt")
    truncate(path)
    with pytest.raises(StageError) as error:
        load_weights(model(), path, "teacher")
    assert one_line(error) == (
        f"{path} cannot be read (truncated or damaged): run `run.py teacher --force` to write it again"
    )
    with pytest.raises(StageError, match=r"absent\.pt is missing: run `run\.py teacher --force`"):
        load_weights(model(), tmp_path / "absent.pt", "teacher")
    save_checkpoint(model(hidden=8).state_dict(), path)  # another head size
    with pytest.raises(StageError) as error:
        load_weights(model(), path, "teacher")
    assert "holds the weights of another model (weights " in one_line(error)
    assert "of another shape" in str(error.value) and "`run.py teacher --force`" in str(error.value)
    save_checkpoint({"epoch": 3}, path)  # loads, but is not a state dict of this model
    with pytest.raises(StageError, match=r"another model \(weights \d+ missing, first '.+'; 1 unexpected"):
        load_weights(model(), path, "teacher")


def test_resumable_checkpoints_are_checked_before_training(tmp_path):
    save_checkpoint({"model": model().state_dict(), "epoch": 1}, tmp_path / "checkpoint.pt")
    save_checkpoint({"logits": torch.zeros(2)}, tmp_path / "soft_labels.pt")
    check_resumable(tmp_path, model(), "students")  # intact: no error
    check_resumable(tmp_path / "absent", model(), "students")  # nothing to resume from: no error

    student = tmp_path / "student_1" / "checkpoint.pt"
    save_checkpoint({"model": model(hidden=8).state_dict()}, student)
    with pytest.raises(StageError) as error:
        check_resumable(tmp_path, model(), "students")
    assert one_line(error).startswith(f"{student} holds the weights of another model")
    save_checkpoint(model().state_dict(), student)  # a bare state dict, not a training checkpoint
    with pytest.raises(
        StageError, match=r"student_1/checkpoint\.pt holds no model weights: run `run\.py students"
    ):
        check_resumable(tmp_path, model(), "students")
    student.unlink()

    truncate(tmp_path / "soft_labels.pt")
    with pytest.raises(StageError) as error:
        check_resumable(tmp_path, model(), "students")
    assert "soft_labels.pt cannot be read (truncated or damaged)" in one_line(error)


def test_initial_weights_come_from_the_config_seed_alone():
    """A stage builds the same model whether or not something used torch's generator before it."""
    from emotion.config import load_config
    from emotion.factory import build_model

    tiny = Path(__file__).resolve().parents[2] / "examples" / "emotion" / "configs" / "tiny.yaml"
    config = load_config(tiny, check_paths=False)
    first = build_model(config, pretrained=False).state_dict()
    torch.rand(1000)  # history that must not matter
    state_before = torch.get_rng_state()
    second = build_model(config, pretrained=False).state_dict()
    assert torch.equal(torch.get_rng_state(), state_before)  # building does not disturb the caller's stream
    assert all(torch.equal(first[key], second[key]) for key in first)
