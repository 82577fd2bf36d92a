"""Faults a real run meets, injected into `run.py` on the tiny synthetic corpus.

- A stage killed with SIGKILL part-way and run again ends with the outputs of an uninterrupted run, bit for
  bit (real `run.py` processes): `prepare` (while the corpus is written, then while the crop cache is built),
  the teacher, the students with online and with cached soft labels, `evaluate` (some predictions saved) and
  `table1` (in the training of a single-task CNN).
- A configuration changed between the kill and the re-run is refused, naming the changed key: the half-done
  stage is neither resumed under the new settings nor passed off as done. With the stage's STARTED.json
  deleted too, the trainer's own check of a checkpoint's settings refuses it, in one line naming the
  checkpoint and `--force`.
- A truncated checkpoint, or one of another model, is one line naming the file and `--force`, whichever
  stage reaches it.

The kill points are drawn from ``SEED``, so that a failure reproduces: the moment a file the stage writes
part-way appears or grows (a metrics.csv its N-th epoch, the soft-label cache, a saved prediction, the
corpus's or the crop cache's temporary folder).
"""

import contextlib
import glob
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

import numpy as np
import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

from emotion import run  # noqa: E402
from emotion.config import load_config  # noqa: E402
from emotion.pipeline import read_marker  # noqa: E402

from affect_data.cache import FrameCache  # noqa: E402
from affect_data.models import MultitaskCNN  # noqa: E402
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


@pytest.fixture(scope="module")
def evaluated(corpus):
    """``runs/reference/evaluate``: the reference run evaluated, uninterrupted."""
    assert run.main(["evaluate", "--config", str(write_config(corpus, "reference"))]) == 0
    return corpus / "runs" / "reference" / "evaluate"


@pytest.fixture
def points():
    """The draws of the kill points (an epoch, a student), fixed by SEED."""
    return random.Random(SEED)


def write_config(
    folder: Path, name: str, corpus: str = "corpus", sections: dict[str, dict] | None = None, **training
) -> Path:
    """The tiny config with run ``name`` under ``folder/runs`` and the synthetic corpus ``folder/<corpus>``
    (its face crops in ``folder/crops``, ``folder/<corpus>-crops`` for another corpus); ``training`` overrides
    ``training`` keys (``students`` merged into ``training.students``), ``sections`` the keys of the other
    sections (``{"evaluation": {...}}``)."""
    data = yaml.safe_load((ROOT / "examples" / "emotion" / "configs" / "tiny.yaml").read_text())
    data.update(name=name, run_root=str(folder / "runs"))
    data["data"]["synthetic"]["root"] = str(folder / corpus)
    data["data"]["crop_cache"] = str(folder / ("crops" if corpus == "corpus" else f"{corpus}-crops"))
    # A little longer than tiny.yaml, so that every kill point leaves at least an epoch of the stage to run.
    data["training"]["teacher"]["epochs"] = 3
    data["training"]["students"].update(count=2, epochs=2, **training.pop("students", {}))
    data["training"].update(training)
    for section, values in (sections or {}).items():
        data[section].update(values)
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
    DONE.json. ``trigger`` may be a glob, or an absolute path (outside the stage folder).

    Killed at once, not after a delay: the stage is only seconds long, and a kill that came after its end
    would test nothing. Where in the next steps the kill lands still varies by a few milliseconds. The whole
    process group is killed: the corpus's rendering processes die with the run, as under a real `kill -9` of
    the job, and none outlives the test."""
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
            start_new_session=True,
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
        # The group of the process started here, and nothing else; gone already when it ended by itself.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    assert read_marker(folder) is None, f"run.py {command} finished {stage} before the kill"


def lines(path: Path) -> int:
    """Lines of a text file (metrics.csv: the header and one per finished epoch), of the first file that
    matches when ``path`` is a glob; -1 when there is none."""
    for match in sorted(glob.glob(str(path))):
        try:
            return 0 if Path(match).is_dir() else Path(match).read_bytes().count(b"\n")
        except FileNotFoundError:
            continue
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


def assert_same_files(reference: Path, resumed: Path, *names: str) -> None:
    """The files ``names`` of two folders (all their files, DONE.json and STARTED.json aside, without
    ``names``) hold the same bytes; ``resumed`` holds no hidden file or folder (a write cut short)."""
    if not names:
        names = tuple(
            str(p.relative_to(reference))
            for p in sorted(reference.rglob("*"))
            if p.is_file() and p.name not in ("DONE.json", "STARTED.json")
        )
        found = sorted(
            str(p.relative_to(resumed))
            for p in resumed.rglob("*")
            if p.is_file() and p.name not in ("DONE.json", "STARTED.json")
        )
        assert found == sorted(names)
    assert not list(resumed.rglob(".*")), "a write cut short by the kill was left behind"
    for name in names:
        assert (resumed / name).read_bytes() == (reference / name).read_bytes(), name


def assert_equal(expected: Any, actual: Any, where: Any) -> None:
    """Exact equality of nested dicts, lists, tensors, arrays and numbers."""
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
    elif isinstance(expected, np.ndarray):  # bit for bit, NaN included
        assert (expected.dtype, expected.shape) == (actual.dtype, actual.shape), where
        assert expected.tobytes() == actual.tobytes(), where
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


def test_an_interrupted_evaluation_predicts_a_damaged_saved_prediction_again(corpus, evaluated):
    runs = corpus / "runs"
    config = write_config(corpus, "evaluated")
    copy_stages(runs / "reference", runs / "evaluated", "prepare", "teacher", "students", "evaluate")
    evaluate = runs / "evaluated" / "evaluate"
    scores = (evaluated / "scores.json").read_bytes()

    # Interrupted after the predictions were saved, one of them cut short (the evaluation resumes from them).
    (evaluate / "DONE.json").unlink()
    saved = evaluate / "predictions" / "validation" / "student_1.npz"
    saved.write_bytes(saved.read_bytes()[:100])
    assert run.main(["evaluate", "--config", str(config)]) == 0
    assert (evaluate / "scores.json").read_bytes() == scores


def test_prepare_killed_writing_the_corpus_then_the_crop_cache_then_rerun_equals_an_uninterrupted_run(
    corpus, capsys
):
    runs = corpus / "runs"
    # A corpus of its own (corpus_2, the same preset and seed), so that its writing can be cut short.
    config = write_config(corpus, "prepare_killed", corpus="corpus_2")
    prepared = runs / "prepare_killed" / "prepare"

    # Killed as the corpus starts rendering into its temporary folder beside data.synthetic.root.
    kill_when("prepare", config, str(corpus / ".corpus_2.tmp-*"), -1)
    assert not (corpus / "corpus_2").exists()
    # Killed again, the corpus written, as the crop cache starts filling its temporary folder.
    kill_when("prepare", config, ".crops.tmp-*/crops.u8", -1)
    assert (corpus / "corpus_2" / "corpus.json").is_file()
    assert not (prepared / "crops").exists() and list(prepared.glob(".crops.tmp-*")), "not killed mid-cache"
    assert not list(corpus.glob(".corpus_2.tmp-*")), "the corpus write cut short was left behind"

    # Not "up to date" over the half-built cache: built again, and the same as an uninterrupted prepare's.
    capsys.readouterr()
    assert run.main(["prepare", "--config", str(config)]) == 0
    log = capsys.readouterr().out
    assert f"[prepare] running into {prepared}" in log and "up to date" not in log, log
    reference = write_config(corpus, "prepare_reference", corpus="corpus_2")
    assert run.main(["prepare", "--config", str(reference)]) == 0
    assert_same_files(runs / "prepare_reference" / "prepare", prepared)
    assert (prepared / "crops" / "crops.u8").stat().st_size > 0
    FrameCache(prepared / "crops").verify(full=True)
    # The corpus is the one an uninterrupted write gives (the reference run's, written by the fixture).
    written = sorted(p.relative_to(corpus / "corpus") for p in (corpus / "corpus").rglob("*") if p.is_file())
    assert_same_files(corpus / "corpus", corpus / "corpus_2", *map(str, written))

    # A configuration changed after an interruption is refused, as for the training stages.
    (prepared / "DONE.json").unlink()
    changed = write_config(corpus, "prepare_killed", corpus="corpus_2", sections={"data": {"image_size": 40}})
    assert "(changed: data.image_size)" in refused(changed, "prepare", capsys)


def test_evaluate_killed_after_some_predictions_then_rerun_equals_an_uninterrupted_run(
    corpus, evaluated, points, capsys
):
    runs = corpus / "runs"
    config = write_config(corpus, "evaluate_killed")
    copy_stages(runs / "reference", runs / "evaluate_killed", "prepare", "teacher", "students")
    evaluate = runs / "evaluate_killed" / "evaluate"

    # Killed once one of the first five of the six predictions is saved (validation then test, teacher first).
    saved = [
        "validation/teacher",
        "validation/student_0",
        "validation/student_1",
        "test/teacher",
        "test/student_0",
    ]
    kill_when("evaluate", config, f"predictions/{points.choice(saved)}.npz", -1)
    assert not (evaluate / "scores.json").exists()
    changed = write_config(corpus, "evaluate_killed", sections={"evaluation": {"tune_thresholds": False}})
    assert "(changed: evaluation.tune_thresholds)" in refused(changed, "evaluate", capsys)

    assert run.main(["evaluate", "--config", str(config)]) == 0
    assert_same_files(evaluated, evaluate, "scores.json", "thresholds.json")
    for path in sorted((evaluated / "predictions").rglob("*.npz")):
        with np.load(path) as expected, np.load(evaluate / path.relative_to(evaluated)) as actual:
            assert_equal(dict(expected), dict(actual), path.relative_to(evaluated))


#: table1's single-task CNNs, in the order it trains them.
TABLE1_MODELS = [
    f"{task}_{variant}"
    for task in ("AU", "EXPR", "VA")
    for variant in ("baseline", "external_data", "balancing")
]


def test_table1_killed_in_a_single_task_cnn_then_rerun_equals_an_uninterrupted_run(corpus, points, capsys):
    runs = corpus / "runs"
    # Nine CNNs of two short epochs each: a kill after epoch 1 leaves one to resume.
    short = {"sections": {"experiments": {"single_task_epochs": 2}}, "steps_per_epoch": 2}
    for name in ("table1", "table1_killed"):
        copy_stages(runs / "reference", runs / name, "prepare")
    assert run.main(["table1", "--config", str(write_config(corpus, "table1", **short))]) == 0
    config = write_config(corpus, "table1_killed", **short)
    table1 = runs / "table1_killed" / "table1"

    # Killed once epoch 1 of a CNN after the first is logged: the first is finished, with its checkpoint.
    model = points.choice(TABLE1_MODELS[1:])
    kill_when("table1", config, f"{model}/metrics.csv", 1)
    assert (table1 / TABLE1_MODELS[0] / "checkpoint.pt").is_file() and not (table1 / "scores.json").exists()
    changed = write_config(corpus, "table1_killed", **short, lr=2e-3)
    assert "(changed: training.lr)" in refused(changed, "table1", capsys)

    # STARTED.json lost as well: the trainer's check of the checkpoints' settings refuses, in one line.
    (table1 / "STARTED.json").unlink()
    error = refused(changed, "table1", capsys)
    first = table1 / TABLE1_MODELS[0] / "checkpoint.pt"
    assert f"{first} was written by a run with other settings (lr 0.001 -> 0.002)" in error, error
    assert "run `run.py table1 --force`" in error
    assert not (table1 / "STARTED.json").exists(), "the refused settings were recorded as the run's"

    assert run.main(["table1", "--config", str(config)]) == 0
    assert_same_outputs(runs / "table1" / "table1", table1)
    assert_same_files(runs / "table1" / "table1", table1, "scores.json", "table1.md")
