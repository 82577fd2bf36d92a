"""Faults a real run meets, injected into `run.py` on the tiny synthetic corpus.

- A stage killed with SIGKILL part-way and run again ends with the outputs of an uninterrupted run, bit for
  bit: the teacher, and the students with online and with cached soft labels (real `run.py` processes).
- A configuration changed between the kill and the re-run is refused, naming the changed key: the half-done
  stage is neither resumed under the new settings nor passed off as done.
- A truncated checkpoint, or one of another model, is one line naming the file and `--force`, whichever
  stage reaches it.

The kill points are drawn from ``SEED``, so that a failure reproduces: the moment a file the stage writes
part-way appears or grows (a metrics.csv its N-th epoch, the soft-label cache).
"""

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

from emotion import run  # noqa: E402
from emotion.config import load_config  # noqa: E402
from emotion.models import MultitaskCNN  # noqa: E402
from emotion.pipeline import read_marker  # noqa: E402

from mtl_distill.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402

pytestmark = pytest.mark.slow

RUN_PY = ROOT / "examples" / "emotion" / "run.py"
SEED = 0
#: One thread everywhere: the reference and the resumed runs must do the same arithmetic.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The folder holding the tiny corpus and ``runs/reference``: prepare, teacher and (online) students,
    uninterrupted. Run in this process: the same code and arithmetic as a `run.py` process, without the
    seconds of importing torch again."""
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("faults")
    config = write_config(folder, "reference")
    for stage in ("prepare", "teacher", "students"):
        assert run.main([stage, "--config", str(config)]) == 0
    return folder


@pytest.fixture
def points():
    """The draws of the kill points (an epoch, a student), fixed by SEED."""
    return random.Random(SEED)


def write_config(folder: Path, name: str, **training) -> Path:
    """The tiny config with run ``name`` under ``folder/runs``; ``training`` overrides ``training`` keys
    (``students`` merged into ``training.students``)."""
    data = yaml.safe_load((ROOT / "examples" / "emotion" / "configs" / "tiny.yaml").read_text())
    data.update(name=name, run_root=str(folder / "runs"))
    data["data"]["synthetic"]["root"] = str(folder / "corpus")
    data["data"]["crop_cache"] = str(folder / "crops")
    # A little longer than tiny.yaml, so that every kill point leaves at least an epoch of the stage to run.
    data["training"]["teacher"]["epochs"] = 3
    data["training"]["students"].update(count=2, epochs=2, **training.pop("students", {}))
    data["training"].update(training)
    text = yaml.safe_dump(data)
    path = folder / f"{name}-{hashlib.sha1(text.encode()).hexdigest()[:8]}.yaml"
    path.write_text(text)
    return path


def run_py(stage: str, config: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(RUN_PY), stage, "--config", str(config)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def kill_when(command: str, config: Path, trigger: str, rows: int, stage: str = "") -> None:
    """Start `run.py command`, SIGKILL it as soon as the file ``trigger`` in the folder of ``stage`` (default
    ``command``) exists and has more than ``rows`` lines, and check that it died part-way: that stage has no
    DONE.json.

    Killed at once, not after a delay: the stage is only seconds long, and a kill that came after its end
    would test nothing. Where in the next steps the kill lands still varies by a few milliseconds."""
    stage = stage or command
    folder = load_config(config).stage_dir(stage)
    # A file, not a pipe: unread, the progress bars would fill a pipe and stall the run before the trigger.
    log = config.with_suffix(".stderr")
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, str(RUN_PY), command, "--config", str(config)],
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + 300
        while lines(folder / trigger) <= rows:
            if process.poll() is not None:
                pytest.fail(
                    f"run.py {command} ended before {trigger} had {rows + 1} lines: {log.read_text()}"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"{folder / trigger} did not get {rows + 1} lines")
            time.sleep(0.002)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    assert read_marker(folder) is None, f"run.py {command} finished {stage} before the kill"


def lines(path: Path) -> int:
    """Lines of a text file (metrics.csv: the header and one per finished epoch); -1 when it is missing."""
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return -1


def refused(config: Path, stage: str, capsys) -> str:
    """`run.py stage` in this process (it stops before training): its exit status must be 2 and its error
    one line, which is returned."""
    capsys.readouterr()
    assert run.main([stage, "--config", str(config)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1, error
    return error


def copy_stages(source: Path, target: Path, *stages: str) -> None:
    for stage in stages:
        shutil.copytree(source / stage, target / stage)


def assert_same_outputs(reference: Path, resumed: Path) -> None:
    """The same weight (``.pt``) and metrics (``.csv``) files in both stage folders, holding equal tensors
    and equal bytes."""

    def outputs(folder: Path) -> list[Path]:
        # DONE.json and STARTED.json hold ids and times.
        return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.suffix in (".pt", ".csv"))

    assert outputs(resumed) == outputs(reference)
    assert not list(resumed.rglob(".*.tmp")), "a write cut short by the kill was left behind"
    for name in outputs(reference):
        if name.suffix == ".csv":
            assert (resumed / name).read_bytes() == (reference / name).read_bytes(), name
        elif name.name == "checkpoint.pt":  # the trainer's whole state: compare the weights it trained
            assert_equal(
                load_checkpoint(reference / name)["model"], load_checkpoint(resumed / name)["model"], name
            )
        else:
            assert_equal(load_checkpoint(reference / name), load_checkpoint(resumed / name), name)


def assert_equal(expected: Any, actual: Any, where: Any) -> None:
    """Exact equality of nested dicts, lists, tensors and numbers."""
    if isinstance(expected, dict):
        assert expected.keys() == actual.keys(), where
        for key, value in expected.items():
            assert_equal(value, actual[key], f"{where}: {key}")
    elif isinstance(expected, list | tuple):
        assert len(expected) == len(actual), where
        for index, (a, b) in enumerate(zip(expected, actual, strict=True)):
            assert_equal(a, b, f"{where}[{index}]")
    elif isinstance(expected, torch.Tensor):
        assert torch.equal(expected, actual), where
    else:
        assert expected == actual, where


def test_teacher_and_online_students_killed_then_rerun_equal_an_uninterrupted_run(corpus, points, capsys):
    runs = corpus / "runs"
    config = write_config(corpus, "killed")
    copy_stages(runs / "reference", runs / "killed", "prepare")

    # Killed once epoch 1 or 2 of 3 is logged: while its checkpoint is written, or just after.
    kill_when("teacher", config, "metrics.csv", points.randint(1, 2))
    error = refused(write_config(corpus, "killed", lr=2e-3), "teacher", capsys)
    assert "interrupted run of 'teacher'" in error and "(changed: training.lr)" in error
    assert "--force" in error

    # `run.py all` resumes and finishes the teacher, starts the students, and is killed in student 0 or 1.
    kill_when("all", config, f"student_{points.randint(0, 1)}/metrics.csv", 1, stage="students")
    assert_same_outputs(runs / "reference" / "teacher", runs / "killed" / "teacher")
    error = refused(write_config(corpus, "killed", students={"lam": 0.9}), "students", capsys)
    assert "(changed: training.students.lam)" in error
    run_py("students", config)
    assert_same_outputs(runs / "reference" / "students", runs / "killed" / "students")


def test_cached_soft_labels_students_killed_then_rerun_equal_an_uninterrupted_run(corpus, points, capsys):
    runs = corpus / "runs"
    cached = {"students": {"soft_labels": "cached"}}
    for name in ("cached", "cached_killed"):
        copy_stages(runs / "reference", runs / name, "prepare", "teacher")
    assert run.main(["students", "--config", str(write_config(corpus, "cached", **cached))]) == 0

    config = write_config(corpus, "cached_killed", **cached)
    # Killed right after the soft labels are cached, or in student 0 or 1.
    trigger, rows = points.choice(
        [("soft_labels.pt", -1), ("student_0/metrics.csv", 1), ("student_1/metrics.csv", 1)]
    )
    kill_when("students", config, trigger, rows)
    online = write_config(corpus, "cached_killed", students={"soft_labels": "online"})
    assert "(changed: training.students.soft_labels)" in refused(online, "students", capsys)
    run_py("students", config)
    assert_same_outputs(runs / "cached" / "students", runs / "cached_killed" / "students")


def test_a_damaged_or_foreign_checkpoint_is_one_line_naming_the_file_and_force(corpus, capsys):
    runs = corpus / "runs"
    config = write_config(corpus, "damaged")
    copy_stages(runs / "reference", runs / "damaged", "prepare", "teacher", "students")
    teacher = runs / "damaged" / "teacher"
    other = MultitaskCNN("resnet_tiny", hidden=8).state_dict()  # the tiny config's model has hidden 32

    # An interrupted teacher (no DONE.json) whose checkpoint was cut short, then one of another model.
    (teacher / "DONE.json").rename(teacher / "DONE.json.kept")
    intact = (teacher / "checkpoint.pt").read_bytes()
    (teacher / "checkpoint.pt").write_bytes(intact[: len(intact) // 3])
    error = refused(config, "teacher", capsys)
    assert f"{teacher / 'checkpoint.pt'} cannot be read (truncated or damaged)" in error
    assert "run `run.py teacher --force`" in error
    save_checkpoint({"model": other}, teacher / "checkpoint.pt")
    assert "checkpoint.pt holds the weights of another model" in refused(config, "teacher", capsys)
    (teacher / "DONE.json.kept").rename(teacher / "DONE.json")

    # A finished teacher whose weights another stage reads: evaluate (students done), then students.
    save_checkpoint(other, teacher / "model.pt")
    error = refused(config, "evaluate", capsys)
    assert f"{teacher / 'model.pt'} holds the weights of another model" in error
    assert "run `run.py teacher --force`" in error
    (teacher / "model.pt").write_bytes(b"PK\x03\x04" + bytes(1000))  # cut short after the zip header
    students = runs / "damaged" / "students"
    (students / "DONE.json").unlink()  # interrupted: `run.py students` resumes, reading the teacher's weights
    error = refused(config, "students", capsys)
    assert f"{teacher / 'model.pt'} cannot be read" in error and "run `run.py teacher --force`" in error

    # What the message says to do works: the teacher is trained afresh, as in the reference run.
    assert run.main(["teacher", "--config", str(config), "--force"]) == 0
    assert_same_outputs(runs / "reference" / "teacher", teacher)


def test_an_interrupted_evaluation_predicts_a_damaged_saved_prediction_again(corpus):
    runs = corpus / "runs"
    config = write_config(corpus, "evaluated")
    copy_stages(runs / "reference", runs / "evaluated", "prepare", "teacher", "students")
    assert run.main(["evaluate", "--config", str(config)]) == 0
    evaluate = runs / "evaluated" / "evaluate"
    scores = (evaluate / "scores.json").read_bytes()

    # Interrupted after the predictions were saved, one of them cut short (the evaluation resumes from them).
    (evaluate / "DONE.json").unlink()
    saved = evaluate / "predictions" / "validation" / "student_1.npz"
    saved.write_bytes(saved.read_bytes()[:100])
    assert run.main(["evaluate", "--config", str(config)]) == 0
    assert (evaluate / "scores.json").read_bytes() == scores
