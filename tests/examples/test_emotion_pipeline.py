"""Stage bookkeeping of the emotion pipeline (examples/emotion/pipeline.py): no-op, stale inputs, --force."""

import dataclasses
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

from emotion import pipeline  # noqa: E402
from emotion.config import load_config  # noqa: E402


@pytest.fixture
def counting_stages(monkeypatch):
    """Replace the real stages by two cheap ones that count their runs and write a file."""
    runs = {"a": 0, "b": 0}

    def make(name):
        def run(config, folder):
            runs[name] += 1
            (folder / "out.txt").write_text(f"{name} {runs[name]}")
            return {"runs": runs[name]}

        return run

    stages = {
        "a": pipeline.Stage("a", (), ("training.lr",), make("a")),
        "b": pipeline.Stage("b", ("a",), ("training.lr", "evaluation"), make("b")),
    }
    monkeypatch.setattr(pipeline, "STAGES", stages)
    return runs


def config_in(tmp_path, **changes):
    data = yaml.safe_load((ROOT / "examples" / "emotion" / "configs" / "tiny.yaml").read_text())
    data["run_root"] = str(tmp_path / "runs")
    for key, value in changes.items():
        section, name = key.split("__")
        data[section][name] = value
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_config(path, check_paths=False)


def test_finished_stage_is_a_no_op(tmp_path, counting_stages):
    config = config_in(tmp_path)
    assert pipeline.run_stage("a", config, log=lambda _: None)
    assert not pipeline.run_stage("a", config, log=lambda _: None)
    assert counting_stages["a"] == 1
    marker = pipeline.read_marker(config.run_dir / "a")
    assert marker["summary"] == {"runs": 1}
    assert marker["config"] == {"training.lr": 1e-3}
    assert (config.run_dir / "config.yaml").is_file()


def test_stage_needs_its_inputs(tmp_path, counting_stages):
    with pytest.raises(pipeline.StageError, match=r"needs stage 'a' first"):
        pipeline.run_stage("b", config_in(tmp_path), log=lambda _: None)


def test_force_redoes_a_stage_and_makes_the_next_stale(tmp_path, counting_stages):
    config = config_in(tmp_path)
    messages = []
    pipeline.run_stage("a", config, log=messages.append)
    pipeline.run_stage("b", config, log=messages.append)
    (config.run_dir / "a" / "leftover.tmp").write_text("x")
    assert pipeline.run_stage("a", config, force=True, log=messages.append)
    assert not (config.run_dir / "a" / "leftover.tmp").exists()  # a forced stage starts from an empty folder
    assert pipeline.run_stage("b", config, log=messages.append)
    assert "a changed since b ran" in messages[-3]
    assert counting_stages == {"a": 2, "b": 2}


def test_changed_configuration_needs_force(tmp_path, counting_stages):
    pipeline.run_stage("a", config_in(tmp_path), log=lambda _: None)
    pipeline.run_stage("b", config_in(tmp_path), log=lambda _: None)
    changed = config_in(tmp_path, evaluation__tune_thresholds=False)
    assert not pipeline.run_stage("a", changed, log=lambda _: None)  # a does not read `evaluation`
    with pytest.raises(pipeline.StageError, match=r"changed: evaluation.tune_thresholds.*--force"):
        pipeline.run_stage("b", changed, log=lambda _: None)
    assert pipeline.run_stage("b", changed, force=True, log=lambda _: None)
    # Speed-only settings never invalidate a stage.
    faster = dataclasses.replace(changed, data=dataclasses.replace(changed.data, num_workers=4))
    assert not pipeline.run_stage("b", faster, log=lambda _: None)


def test_a_setting_added_after_a_stage_ran_counts_as_its_former_behaviour(tmp_path, monkeypatch):
    # A run recorded before training.students.unlabelled_weight existed was made with weight 1 (Eq. 14 as
    # written): it stays up to date under that value and is refused under any other.
    monkeypatch.setattr(
        pipeline, "STAGES", {"s": pipeline.Stage("s", (), ("training.students",), lambda config, folder: {})}
    )
    config = config_in(tmp_path, training__students={"count": 1, "epochs": 1, "unlabelled_weight": 1.0})
    pipeline.run_stage("s", config, log=lambda _: None)
    marker_path = config.run_dir / "s" / "DONE.json"
    marker = pipeline.read_marker(config.run_dir / "s")
    del marker["config"]["training.students.unlabelled_weight"]
    pipeline.write_json(marker_path, marker)
    assert not pipeline.run_stage("s", config, log=lambda _: None)
    lighter = config_in(tmp_path, training__students={"count": 1, "epochs": 1, "unlabelled_weight": 0.4})
    with pytest.raises(pipeline.StageError, match=r"changed: training.students.unlabelled_weight"):
        pipeline.run_stage("s", lighter, log=lambda _: None)


def test_an_interrupted_stage_does_not_resume_under_another_configuration(tmp_path, monkeypatch):
    calls = []

    def interrupted(config, folder):
        calls.append(config.training.lr)
        if len(calls) == 1:
            raise KeyboardInterrupt  # killed half-way: checkpoints written, no marker

        return {}

    monkeypatch.setattr(pipeline, "STAGES", {"a": pipeline.Stage("a", (), ("training.lr",), interrupted)})
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_stage("a", config_in(tmp_path), log=lambda _: None)
    changed = config_in(tmp_path, training__lr=0.01)
    with pytest.raises(
        pipeline.StageError, match=r"interrupted run of 'a' made with another configuration .*training\.lr"
    ):
        pipeline.run_stage("a", changed, log=lambda _: None)
    assert pipeline.run_stage("a", changed, force=True, log=lambda _: None)  # starts afresh
    assert calls == [1e-3, 0.01]
    assert pipeline.read_marker(changed.run_dir / "a")["config"] == {"training.lr": 0.01}


def test_a_resumed_stage_deletes_the_temporary_files_of_writes_a_kill_cut_short(tmp_path, counting_stages):
    config = config_in(tmp_path)
    folder = config.run_dir / "a"
    (folder / "student_0").mkdir(parents=True)
    left = [folder / ".checkpoint.pt.0123456789abcdef.tmp", folder / "student_0" / ".metrics.csv.fedcba9.tmp"]
    kept = [folder / "notes.tmp", folder / "student_0" / "checkpoint.pt"]
    for path in left + kept:
        path.write_bytes(b"partial")
    # a crop cache being filled, and the previous one moved aside (affect_data's atomic folder write)
    folders = [folder / f".crops.{kind}-4242-0a1b2c3d" for kind in ("tmp", "old")] + [folder / ".crops.keep"]
    for path in folders:
        path.mkdir()
        (path / "crops.u8").write_bytes(b"partial")
    assert pipeline.run_stage("a", config, log=lambda _: None)
    assert [path.exists() for path in left + kept] == [False, False, True, True]
    assert [path.exists() for path in folders] == [False, False, True]


def test_a_run_folder_is_used_by_one_process_at_a_time(tmp_path, counting_stages):
    import subprocess

    config = config_in(tmp_path)
    config.run_dir.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (config.run_dir / ".lock").write_text(str(holder.pid))
        with pytest.raises(pipeline.StageError, match=f"in use by process {holder.pid}"):
            pipeline.run_stage("a", config, log=lambda _: None)
    finally:
        holder.kill()
        holder.wait()
    assert pipeline.run_stage("a", config, log=lambda _: None)  # a dead holder's lock is taken over
    assert not (config.run_dir / ".lock").exists()  # and released
