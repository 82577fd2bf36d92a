"""Stages that write into one run folder, each a no-op when its outputs are there and up to date.

A stage's folder ``<run>/<stage>/`` gets a ``DONE.json`` marker once everything in it is written. The marker
records the part of the configuration the stage depends on and the markers of the stages it read, so:

- a finished stage whose configuration and inputs are unchanged is skipped (a no-op);
- a stage whose input stage has been redone since is redone (its outputs would be stale);
- a finished stage whose own configuration changed is an error that names the changed keys - redoing it could
  throw away hours of training, so that takes ``--force``; a setting added to the configuration after a
  marker was written counts as the value that reproduces the former behaviour (``ADDED_SETTINGS``);
- a stage that was interrupted (no marker) runs again and resumes from what it had written (checkpoints) -
  unless its configuration changed since it started (``STARTED.json`` records it): resuming would mix two
  settings, so that is an error naming the changed keys, and ``--force`` starts the stage afresh;
- one run folder is worked on by one process at a time: a stage takes the folder's lock (``.lock``, holding
  the process id) and a second process finds it taken and stops with a message naming the holder;
- a stage that starts or resumes first deletes the temporary files and folders of writes that a killed run
  cut short (an atomic write's ``.<name>....tmp``, a crop cache's ``.crops.tmp-<pid>-<hex>/``);
- a stage that stops on a StageError (it could not run safely) leaves ``STARTED.json`` as it found it, so
  that the settings it was refused under are not recorded as those of the interrupted run;
- a checkpoint that mtl_distill refuses to resume (written under other training settings: when
  ``STARTED.json`` was deleted, the trainer's own check is the last line of defence) is a StageError naming
  the checkpoint and ``--force``, not a traceback.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from affect_data.cache import PARTIAL_FOLDER
from emotion.config import Config
from mtl_distill.checkpoint import write_atomically

__all__ = [
    "EXPERIMENT_STAGES",
    "LOGGERS",
    "MAIN_STAGES",
    "STAGES",
    "Stage",
    "StageError",
    "configure_logging",
    "process_alive",
    "progress_bars",
    "read_marker",
    "run_stage",
    "write_json",
]

MARKER = "DONE.json"
STARTED = "STARTED.json"
LOCK = ".lock"

#: Settings that change how fast a stage runs, not what it produces.
IGNORED_KEYS = frozenset({"data.num_workers", "training.device", "evaluation.batch_size", "run_root"})

#: Settings added after stages were first recorded, each with the value that does what the code did before
#: the setting existed. A marker without such a key was made under that value, so a run made before an
#: upgrade is not redone (or refused) for a key it could not record; any other value is a change.
ADDED_SETTINGS = {
    "training.students.unlabelled_weight": 1.0,  # Eq. 14 as written: unlabelled samples distilled at weight 1
    "training.students.t2_scaling": False,
    "training.students.init": "teacher_initial",
    "training.students.batch_loss_weight": "lam",  # Eq. 14 as written: the CCC term weighted lam
    "training.students.generations": 1,
    "training.students.soft_label_weight": "uniform",  # Eq. 14 as written: every soft label weighted alike
    "training.students.bagging": False,  # every student on all the samples
}


class StageError(RuntimeError):
    """A stage cannot run or be skipped safely; the message says what to do."""


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline.

    Attributes
    ----------
    name : str
        Also the name of its folder in the run folder.
    inputs : tuple of str
        Stages whose outputs it reads (they must be done first).
    config_keys : tuple of str
        Dotted prefixes of the configuration it depends on.
    run : callable
        ``run(config, folder) -> dict``: does the work, writes into ``folder``; the returned summary is kept
        in the marker.
    verify : callable, optional
        ``verify(config, folder)``, called before a finished stage is skipped: raises StageError when its
        outputs are damaged (a marker says they were written, not that they are still intact).
    """

    name: str
    inputs: tuple[str, ...]
    config_keys: tuple[str, ...]
    run: Callable[[Config, Path], dict[str, Any]]
    verify: Callable[[Config, Path], None] | None = None


def _lazy(module: str, function: str) -> Callable[[Config, Path], dict[str, Any]]:
    # Import a stage's module only when it runs: `report` need not import torch's data stack, and so on.
    def run(config: Config, folder: Path) -> dict[str, Any]:
        import importlib

        return getattr(importlib.import_module(f"emotion.{module}"), function)(config, folder)

    return run


_DATA = ("seed", "data")
_MODEL = (*_DATA, "model", "training.batch_per_task", "training.steps_per_epoch", "training.lr")
_TRAINING = (*_MODEL, "training.lr_step_epochs", "training.lr_gamma", "training.weight_decay")

STAGES: dict[str, Stage] = {
    stage.name: stage
    for stage in (
        Stage("prepare", (), _DATA, _lazy("prepare", "run_prepare"), _lazy("prepare", "verify_prepare")),
        Stage("teacher", ("prepare",), (*_TRAINING, "training.teacher"), _lazy("train", "run_teacher")),
        Stage(
            "students",
            ("prepare", "teacher"),
            (*_TRAINING, "training.teacher", "training.students"),
            _lazy("train", "run_students"),
        ),
        Stage(
            "evaluate",
            ("prepare", "teacher", "students"),
            (*_TRAINING, "training.teacher", "training.students", "evaluation"),
            _lazy("evaluate", "run_evaluate"),
        ),
        Stage(
            "export",
            ("teacher", "students", "evaluate"),
            (*_TRAINING, "training.teacher", "training.students", "evaluation"),
            _lazy("export", "run_export"),
        ),
        Stage("report", ("prepare", "teacher", "students", "evaluate"), (), _lazy("report", "run_report")),
        Stage(
            "table1",
            ("prepare",),
            (*_TRAINING, "training.teacher", "experiments.single_task_epochs"),
            _lazy("experiments", "run_table1"),
        ),
        Stage("figure5", ("table1", "evaluate"), (), _lazy("experiments", "run_figure5")),
        Stage(
            "table2",
            ("prepare", "teacher", "evaluate"),
            (*_TRAINING, "training.teacher", "training.students", "experiments"),
            _lazy("experiments", "run_table2"),
        ),
    )
}

#: What ``run.py all`` and ``run.py experiments`` run, in order.
MAIN_STAGES = ("prepare", "teacher", "students", "evaluate", "report", "export")
EXPERIMENT_STAGES = ("table1", "figure5", "table2")


def run_stage(name: str, config: Config, force: bool = False, log: Callable[[str], None] = print) -> bool:
    """Run one stage unless it is done and up to date; return whether it ran.

    Raises
    ------
    StageError
        If an input stage is not done, or the stage is done with a different configuration and ``force`` is
        False.
    """
    stage = STAGES[name]
    run_dir = config.run_dir
    folder = config.stage_dir(name)
    inputs = {}
    for upstream in stage.inputs:
        marker = read_marker(config.stage_dir(upstream))
        if marker is None:
            raise StageError(
                f"stage {name!r} needs stage {upstream!r} first: run `run.py {upstream}` (or `all`)"
            )
        inputs[upstream] = marker["id"]
    settings = _settings(config, stage.config_keys)

    with _locked(run_dir):
        return _run_locked(stage, config, folder, inputs, settings, force, log)


def _run_locked(
    stage: Stage,
    config: Config,
    folder: Path,
    inputs: dict[str, str],
    settings: dict[str, Any],
    force: bool,
    log: Callable[[str], None],
) -> bool:
    name = stage.name
    marker = read_marker(folder)
    started = folder / STARTED
    if marker is None and not force and started.is_file():
        before = json.loads(started.read_text(encoding="utf-8"))["config"]
        changed = _changed_keys(before, settings)
        if changed:
            raise StageError(
                f"{folder} holds an interrupted run of {name!r} made with another configuration (changed: "
                f"{', '.join(changed)}); resuming would mix the two: pass --force to start the stage afresh, "
                "or restore the configuration to resume"
            )
    if marker is not None and not force:
        changed = _changed_keys(marker["config"], settings)
        if changed:
            raise StageError(
                f"{folder} was made with a different configuration (changed: {', '.join(changed)}); "
                "pass --force to redo this stage (later stages are then redone too), or use another run name"
            )
        stale = [
            upstream for upstream, marker_id in inputs.items() if marker["inputs"].get(upstream) != marker_id
        ]
        if not stale:
            if stage.verify is not None:
                stage.verify(config, folder)
            log(f"[{name}] up to date in {folder} (--force redoes it)")
            return False
        log(f"[{name}] {', '.join(stale)} changed since {name} ran: redoing it")
        force = True
    if force and folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _remove_partial_writes(folder)
    _save_config(config, config.run_dir)
    wrote_started = not started.is_file()
    if wrote_started:
        write_json(started, {"stage": name, "config": settings})

    log(f"[{name}] running into {folder}")
    start = time.perf_counter()
    try:
        try:
            summary = stage.run(config, folder)
        except ValueError as error:
            refused = _refused_checkpoint(error, folder, name)
            if refused is None:
                raise
            raise refused from None
    except StageError:
        if wrote_started:  # it could not run safely: the settings it was tried with are not recorded
            started.unlink(missing_ok=True)
        raise
    seconds = time.perf_counter() - start
    write_json(
        folder / MARKER,
        {
            "stage": name,
            "id": uuid.uuid4().hex,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "seconds": round(seconds, 1),
            "config": settings,
            "inputs": inputs,
            "summary": summary,
        },
    )
    log(f"[{name}] done in {seconds:.0f} s")
    return True


def _remove_partial_writes(folder: Path) -> None:
    """Delete what writes cut short by a killed run left in ``folder``: the hidden temporary files
    (``.<name>....tmp``) of mtl_distill's ``write_atomically`` and metrics logger, a checkpoint's as large as
    the checkpoint, and the hidden folders of a crop cache build (affect_data's ``PARTIAL_FOLDER``: the
    cache being filled, as large as the cache, and the previous one moved aside). Safe: the folder's lock
    says that no other process is writing them."""
    for path in sorted(folder.rglob(".*")):
        if path.is_dir() and PARTIAL_FOLDER.fullmatch(path.name):
            shutil.rmtree(path, ignore_errors=True)
        elif path.name.endswith(".tmp") and path.is_file():
            path.unlink(missing_ok=True)


def _refused_checkpoint(error: ValueError, folder: Path, name: str) -> StageError | None:
    """mtl_distill's refusal to resume a ``checkpoint.pt`` of ``folder`` (its message starts with the
    checkpoint's path: written under other training settings, or with another epoch length) as a one-line
    StageError naming the checkpoint and ``--force``; None for any other ValueError."""
    message = " ".join(str(error).split())
    for checkpoint in sorted(folder.rglob("checkpoint.pt")):
        prefix = f"{checkpoint} was written "
        if message.startswith(prefix):
            # What differs, without the library's remedy (TrainConfig(resume=False), ...): ours is --force.
            what = message[len(prefix) :].split(": resum", 1)[0]
            return StageError(
                f"{checkpoint} was written {what}: resuming it would mix the two; pass --force to start "
                f"the stage afresh (run `run.py {name} --force`), or restore the settings it was made with"
            )
    return None


@contextlib.contextmanager
def _locked(run_dir: Path) -> Iterator[None]:
    """Hold ``<run_dir>/.lock`` (created exclusively, holding our pid) for the block.

    A lock whose process is gone (a killed run) is taken over; one whose process is alive is a StageError
    naming it: two processes writing one run folder would corrupt each other's checkpoints and markers.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK
    while True:
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _lock_holder(path)
            if holder is not None and holder != os.getpid() and process_alive(holder):
                raise StageError(
                    f"{run_dir} is in use by process {holder} (see {path}): wait for it to finish or stop "
                    f"it; if process {holder} is not a run of this pipeline, delete {path}"
                ) from None
            if holder == os.getpid():  # a stage run from within a stage of this process: already ours
                yield
                return
            path.unlink(missing_ok=True)  # left by a process that no longer runs
            continue
        with os.fdopen(descriptor, "w") as handle:
            handle.write(str(os.getpid()))
        break
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def _lock_holder(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):  # being written, or damaged: treat as stale
        return None


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


#: The loggers of this repository, whose level the command line sets (other libraries stay at WARNING).
LOGGERS = ("emotion", "mtl_distill", "affect_data", "imbalance")


def configure_logging(level: int, prefix: str = "") -> None:
    """Show this repository's log records at ``level`` and above on stdout, where the stages print, each line
    after ``prefix`` (a study's worker marks its lines with its seed).

    Progress bars follow: :func:`progress_bars` draws them while INFO records show.
    """
    verbose = level <= logging.DEBUG
    # force: a second main() in one process (the tests) writes to the sys.stdout of its own call.
    logging.basicConfig(
        level=logging.WARNING,
        format=prefix + ("%(levelname)s %(name)s: %(message)s" if verbose else "%(message)s"),
        stream=sys.stdout,
        force=True,
    )
    for name in LOGGERS:
        logging.getLogger(name).setLevel(level)


def progress_bars() -> bool:
    """Whether the stages draw progress bars: while the ``emotion`` logger shows INFO records.

    So ``run.py`` draws them by default and not under ``-q``; code that leaves logging unconfigured (the
    tests, a notebook) gets no bars. ``TQDM_DISABLE=1`` turns them off in any case.
    """
    return logging.getLogger("emotion").isEnabledFor(logging.INFO)


def read_marker(folder: Path) -> dict[str, Any] | None:
    """The ``DONE.json`` of a stage folder, or None when the stage has not finished."""
    path = folder / MARKER
    if not path.is_file():
        return None
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (``mtl_distill.checkpoint.write_atomically``)."""
    write_atomically(path, json.dumps(data, indent=2, sort_keys=False))


def _settings(config: Config, prefixes: tuple[str, ...]) -> dict[str, Any]:
    flat = _flatten(config.to_dict())
    return {
        key: value
        for key, value in flat.items()
        if key not in IGNORED_KEYS and any(key == p or key.startswith(p + ".") for p in prefixes)
    }


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def _changed_keys(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    recorded = {key: ADDED_SETTINGS[key] for key in after.keys() - before.keys() if key in ADDED_SETTINGS}
    before = {**before, **recorded}
    return sorted(key for key in before.keys() | after.keys() if before.get(key) != after.get(key))


def _save_config(config: Config, run_dir: Path) -> None:
    write_atomically(run_dir / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))
