"""Exact resume: a training process killed with SIGKILL and started again ends with the same weights.

The script ``toy_training.py`` runs Algorithm 1 (teacher, then two students with online soft labels) with
dropout and random input noise, so model RNG, data-augmentation RNG, optimiser and schedule state all have
to be restored for the weights to match bit for bit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import toy_training as toy

from mtl_distill.checkpoint import load_checkpoint, save_checkpoint
from mtl_distill.soft_labels import OnlineSoftLabels
from mtl_distill.trainer import TrainConfig, Trainer

SCRIPT = Path(toy.__file__)


def _run_until_paused(out_dir: Path, pause_after: int) -> str:
    """Start the script, wait for its PAUSED line, kill it with SIGKILL; return the line."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(SCRIPT), "--out", str(out_dir), "--pause-after", str(pause_after)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        for line in process.stdout:
            if line.startswith("PAUSED"):
                return line.strip()
        raise AssertionError(f"the script ended without pausing: {process.stderr.read()[-2000:]}")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        process.stdout.close()
        process.stderr.close()


@pytest.mark.slow
def test_killed_and_resumed_run_ends_with_the_same_weights(tmp_path):
    torch.set_num_threads(1)
    reference = toy.run(tmp_path / "reference")

    interrupted = tmp_path / "interrupted"
    # 6 steps per epoch, checkpoints every 2 steps and at epoch ends. Kill 1: teacher epoch 0 after step 5
    # (last checkpoint at step 4). Kill 2 (counting afresh from the resumed step 5): teacher steps 5-12,
    # then student 0 epoch 0 (6 steps), then its epoch 1 step 1 - between checkpoints again.
    first = _run_until_paused(interrupted, pause_after=5)
    assert first == "PAUSED teacher epoch 0 step 5"
    assert load_checkpoint(interrupted / "teacher" / "checkpoint.pt")["global_step"] == 4
    second = _run_until_paused(interrupted, pause_after=8 + 6 + 1)
    assert second.startswith("PAUSED generation 1 student 1/2 epoch 1 step 1")
    assert load_checkpoint(interrupted / "generation_1" / "student_0" / "checkpoint.pt")["epoch"] == 1

    finished = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(interrupted)],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=300,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    resumed = load_checkpoint(interrupted / "final.pt")

    assert sorted(resumed) == sorted(reference) == ["student_0", "student_1", "teacher"]
    for model_name, state in reference.items():
        for key, value in state.items():
            assert torch.equal(resumed[model_name][key], value), f"{model_name}.{key} differs after resume"
    # the per-epoch CSV has exactly one row per epoch despite the kills
    rows = (interrupted / "teacher" / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + 2


def test_resume_in_process_from_a_mid_epoch_checkpoint(tmp_path):
    """The same property without subprocesses: stop after a checkpoint, continue in a new Trainer."""
    torch.set_num_threads(1)
    train, sources, val = toy.make_data(noise=0.1)
    sampler = toy.MultiTaskBatchSampler(sources, batch_size=4, steps_per_epoch=5)
    config = TrainConfig(epochs=2, lr=3e-3, checkpoint_every=3, progress=False)

    whole = Trainer(toy.make_model(dropout=0.3), toy.make_tasks(), config, seed=3, out_dir=tmp_path / "a")
    expected = whole.fit(train, sampler, val).model.state_dict()

    class Stop(Exception):
        pass

    first = Trainer(toy.make_model(dropout=0.3), toy.make_tasks(), config, seed=3, out_dir=tmp_path / "b")
    original = first.train_step

    def train_step_then_stop(batch):
        loss = original(batch)
        if first.global_step + 1 == 7:  # the 7th step: after the checkpoint at step 6 (epoch 1, step 1)
            raise Stop
        return loss

    first.train_step = train_step_then_stop
    with pytest.raises(Stop):
        first.fit(train, sampler, val)
    state = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert (state["epoch"], state["step"], state["global_step"]) == (1, 1, 6)

    # other initial weights: everything must come from the checkpoint
    second_model = toy.make_model(dropout=0.3, seed=99)
    second = Trainer(second_model, toy.make_tasks(), config, seed=3, out_dir=tmp_path / "b")
    resumed = second.fit(train, sampler, val).model.state_dict()
    for key, value in expected.items():
        assert torch.equal(resumed[key], value), key
    assert second.history == whole.history


def test_a_resumed_run_sends_each_epoch_to_tensorboard_once(tmp_path, monkeypatch):
    import mtl_distill.logging_utils as logging_utils

    sent = []

    class Recorder:
        def add_scalar(self, key, value, step):
            sent.append((key, step))

        def flush(self) -> None:
            pass

        def close(self) -> None:
            pass

    monkeypatch.setattr(logging_utils, "_tensorboard_writer", lambda folder: Recorder())
    train, sources, _ = toy.make_data()
    sampler = toy.MultiTaskBatchSampler(sources, batch_size=4, steps_per_epoch=2)
    for epochs in (2, 3):  # the second run resumes from the first one's checkpoint after epoch 2
        config = TrainConfig(epochs=epochs, progress=False)
        Trainer(toy.make_model(), toy.make_tasks(), config, out_dir=tmp_path).fit(train, sampler)
    assert [step for key, step in sent if key == "train_loss"] == [0, 1, 2]
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["0", "1", "2"]


def test_resume_rejects_a_checkpoint_from_other_data_settings(tmp_path):
    train, sources, _ = toy.make_data()
    config = TrainConfig(epochs=1, progress=False)
    sampler = toy.MultiTaskBatchSampler(sources, batch_size=4, steps_per_epoch=2)
    Trainer(toy.make_model(), toy.make_tasks(), config, out_dir=tmp_path).fit(train, sampler)
    longer = toy.MultiTaskBatchSampler(sources, batch_size=4, steps_per_epoch=3)
    with pytest.raises(ValueError, match="2 steps per epoch but the batch sampler has 3"):
        Trainer(toy.make_model(), toy.make_tasks(), config, out_dir=tmp_path).fit(train, longer)


def test_resume_rejects_a_checkpoint_written_under_other_training_settings(tmp_path):
    train, sources, _ = toy.make_data()
    sampler = toy.MultiTaskBatchSampler(sources, batch_size=4, steps_per_epoch=2)
    first = TrainConfig(epochs=2, lr=1e-3, progress=False, checkpoint_every=1)
    Trainer(toy.make_model(), toy.make_tasks(), first, out_dir=tmp_path).fit(train, sampler)
    changed = TrainConfig(epochs=3, lr=1e-2, lam=0.9, progress=False, checkpoint_every=1)
    # A teacher (no soft labels) does not read lam: only the learning rate counts.
    with pytest.raises(ValueError, match=r"other settings \(lr 0\.001 -> 0\.01\)"):
        Trainer(toy.make_model(), toy.make_tasks(), changed, out_dir=tmp_path).fit(train, sampler)
    # What only changes where or how fast it runs does not count.
    again = TrainConfig(
        epochs=2, lr=1e-3, progress=False, checkpoint_every=1, eval_batch_size=7, device="cpu"
    )
    Trainer(toy.make_model(), toy.make_tasks(), again, out_dir=tmp_path).fit(train, sampler)
    fresh = TrainConfig(epochs=3, lr=1e-2, progress=False, resume=False)
    assert (
        len(Trainer(toy.make_model(), toy.make_tasks(), fresh, out_dir=tmp_path).fit(train, sampler).history)
        == 3
    )


@pytest.mark.parametrize(
    ("added", "before"), [("batch_loss_weight", "lam"), ("soft_label_weight", "uniform")]
)
def test_a_checkpoint_from_before_a_setting_existed_resumes_under_the_value_it_ran_with(
    tmp_path, added, before
):
    # A student run under the value the code had before the setting existed; its checkpoint loses the key.
    train, sources, _ = toy.make_data()
    sampler = toy.MultiTaskBatchSampler(sources, batch_size=4, steps_per_epoch=2)

    def student(config):
        soft = OnlineSoftLabels(toy.make_model(seed=3))
        return Trainer(toy.make_model(), toy.make_tasks(), config, soft_labels=soft, out_dir=tmp_path)

    student(TrainConfig(epochs=1, progress=False, **{added: before})).fit(train, sampler)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["settings"].pop(added) == before
    save_checkpoint(state, tmp_path / "checkpoint.pt")
    other = {"batch_loss_weight": "teacher_share", "soft_label_weight": "confidence"}[added]
    with pytest.raises(ValueError, match=f"{added} '{before}' -> '{other}'"):
        student(TrainConfig(epochs=2, progress=False, **{added: other})).fit(train, sampler)
    resumed = student(TrainConfig(epochs=2, progress=False, **{added: before})).fit(train, sampler)
    assert len(resumed.history) == 2


def test_a_teacher_resumes_whatever_the_student_loss_settings(tmp_path):
    # A teacher's loss reads none of them: a finished teacher stays usable when their defaults change.
    train, sources, _ = toy.make_data()
    sampler = toy.MultiTaskBatchSampler(sources, batch_size=4, steps_per_epoch=2)
    before = TrainConfig(epochs=1, progress=False, batch_loss_weight="lam", lam=0.6)
    Trainer(toy.make_model(), toy.make_tasks(), before, out_dir=tmp_path).fit(train, sampler)
    after = TrainConfig(
        epochs=2, progress=False, batch_loss_weight="teacher_share", lam=0.9, soft_label_weight="confidence"
    )
    resumed = Trainer(toy.make_model(), toy.make_tasks(), after, out_dir=tmp_path).fit(train, sampler)
    assert len(resumed.history) == 2


def test_checkpoints_load_with_weights_only_and_bad_files_are_named(tmp_path):
    train, sources, _ = toy.make_data()
    config = TrainConfig(epochs=1, progress=False)
    sampler = toy.MultiTaskBatchSampler(sources, batch_size=4, steps_per_epoch=2)
    Trainer(toy.make_model(), toy.make_tasks(), config, out_dir=tmp_path).fit(train, sampler)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert {"model", "optimizer", "scheduler", "rng", "epoch", "step"} <= set(state)
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary files

    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"broken\.pt"):
        load_checkpoint(tmp_path / "broken.pt")
    with pytest.raises(FileNotFoundError, match=r"missing\.pt"):
        load_checkpoint(tmp_path / "missing.pt")
    save_checkpoint({"weights": torch.ones(1)}, tmp_path / "other.pt")
    trainer = Trainer(toy.make_model(), toy.make_tasks(), config)
    with pytest.raises(ValueError, match="not a Trainer checkpoint"):
        trainer.load_state_dict(load_checkpoint(tmp_path / "other.pt"))
