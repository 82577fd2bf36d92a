"""run.py's command line: a subcommand per command with its own options and help, --set, -q / -v."""

import dataclasses
import logging
import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

from emotion import pipeline, run  # noqa: E402
from emotion.config import ConfigError, load_config  # noqa: E402

TINY = ROOT / "examples" / "emotion" / "configs" / "tiny.yaml"
PREDICT_ONLY = ("--model", "--source", "--out", "--every", "--fps", "--device", "--save-crops", "--video-out")
OVER_SEEDS = ("--seeds", "--variants", "--jobs")


@pytest.fixture
def config(tmp_path):
    data = yaml.safe_load(TINY.read_text())
    data["run_root"] = str(tmp_path / "runs")
    data["data"]["synthetic"]["root"] = str(tmp_path / "corpus")
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(autouse=True)
def restore_logging():
    # run.main configures logging for the process; leave it as the other tests expect it.
    levels = {name: logging.getLogger(name).level for name in pipeline.LOGGERS}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    logging.basicConfig(force=True, level=logging.WARNING)


def help_text(capsys, *argv):
    with pytest.raises(SystemExit) as exit_:
        run.main([*argv, "--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", list(run.COMMANDS))
def test_each_command_says_what_it_reads_and_writes_and_lists_only_its_options(capsys, command):
    text = help_text(capsys, command)
    assert f"usage: run.py {command}" in text
    assert "Reads:" in text and "Writes:" in text
    options = set(re.findall(r"(?<![\w-])--?[a-z][a-z-]*", text.partition("options:")[2]))
    for option in ("--config", "--set", "-q", "-v"):
        assert option in options
    for option in PREDICT_ONLY:
        assert (option in options) == (command == "predict"), option
    for option in OVER_SEEDS:
        assert (option in options) == (command in run.OVER_SEEDS), option
    assert ("--force" in options) == (command != "predict")


def test_the_overview_lists_every_command(capsys):
    text = help_text(capsys)
    for command, (summary, _) in run.COMMANDS.items():
        assert command in text and summary.split()[0] in text
    assert "--set" in text and "--help" in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["teacher", "--source", "video.mp4"], "teacher does not take --source video.mp4"),
        (["report", "--seeds", "7"], "report does not take --seeds 7"),
        (["export", "--every", "2"], "export does not take --every 2"),
        (["table1", "--jobs", "2"], "--jobs goes with --seeds"),
        (["figure5", "--variants", "main"], "--variants goes with --seeds"),
        (["prepare", "-q", "-v"], "argument -v/--verbose: not allowed with argument -q/--quiet"),
        (["-q", "prepare", "-v"], "-q/--quiet and -v/--verbose exclude each other"),
    ],
)
def test_an_option_a_command_does_not_take_is_an_error(config, capsys, monkeypatch, argv, message):
    monkeypatch.setattr(run, "run_stage", lambda *args, **kwargs: pytest.fail("a stage ran"))
    with pytest.raises(SystemExit) as exit_:
        run.main([*argv, "--config", str(config)])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_predict_takes_config_or_model_and_set_only_with_config(config, tmp_path, capsys):
    for argv, message in (
        (["predict", "--source", "x"], "predict needs --config (or --model)"),
        (["predict", "--model", "m.pt", "--config", str(config)], "not allowed with argument"),
        (["predict", "--model", "m.pt", "--set", "seed=1"], "--set changes the config"),
    ):
        with pytest.raises(SystemExit):
            run.main(argv)
        assert message in capsys.readouterr().err


def test_set_values_are_typed_like_yaml():
    config = load_config(
        TINY,
        check_paths=False,
        overrides=["training.lr=3e-4", "training.students.soft_labels=cached", "data.recipe=null", "seed=5"],
    )
    assert config.training.lr == 3e-4 and isinstance(config.training.lr, float)
    assert config.training.students.soft_labels == "cached"
    assert config.data.recipe is None and config.seed == 5
    # A section the file leaves out is created; a later --set wins.
    config = load_config(TINY, check_paths=False, overrides=["study.seeds=[1, 2]", "study.seeds=[3]"])
    assert config.study.seeds == [3]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("training.teacher.epohcs=3", "epohcs=3: unknown key 'training.teacher.epohcs'"),
        ("trainng.lr=1", "--set trainng.lr=1: unknown key 'trainng'"),
        ("training.lr=0", "--set training.lr=0: training.lr must be a finite number > 0, got 0.0"),
        ("training.lr=fast", "--set training.lr=fast: training.lr must be float, got 'fast'"),
        ("training.students.soft_labels=onlin", "training.students.soft_labels must be one of"),
        ("model.dropout=1.5", "--set model.dropout=1.5: model.dropout must be in [0, 1)"),
        ("name.x=1", "--set name.x=1: name is 'tiny', not a section with keys"),
        ("training.lr", "--set training.lr: expected KEY.PATH=VALUE"),
        ("model.hidden=[1", "--set model.hidden=[1: the value '[1' is not valid YAML"),
    ],
)
def test_a_bad_set_is_named_like_a_bad_key_in_the_file(override, message):
    with pytest.raises(ConfigError) as error:
        load_config(TINY, check_paths=False, overrides=[override])
    assert message in str(error.value) and str(error.value).startswith(str(TINY))
    assert "\n" not in str(error.value)


def test_set_reaches_the_stage_and_its_changed_config_check(config, capsys, monkeypatch):
    seen = []

    def prepare(stage_config, folder):
        seen.append(stage_config)
        return {}

    monkeypatch.setitem(
        pipeline.STAGES, "prepare", dataclasses.replace(pipeline.STAGES["prepare"], run=prepare, verify=None)
    )
    argv = ["prepare", "--config", str(config), "--set", "seed=3", "--set", "data.image_size=48"]
    assert run.main(argv) == 0
    assert (seen[0].seed, seen[0].data.image_size) == (3, 48)
    saved = yaml.safe_load((seen[0].run_dir / "config.yaml").read_text())
    assert saved["seed"] == 3  # the run folder records the configuration the stage ran with
    assert run.main(argv) == 0 and len(seen) == 1  # done, same settings: a no-op
    capsys.readouterr()
    assert run.main(["prepare", "--config", str(config)]) == 2  # the file's seed: a changed configuration
    error = capsys.readouterr().err
    assert "different configuration (changed: data.image_size, seed)" in error

    assert run.main(["prepare", "--config", str(config), "--set", "training.lr=-1"]) == 2
    assert "--set training.lr=-1: training.lr must be a finite number > 0" in capsys.readouterr().err


def noisy_stage(config, force=False, log=print):
    log("[stage] running")
    logging.getLogger("mtl_distill.trainer").info("epoch 1 loss 0.5")
    logging.getLogger("affect_data.loaders").debug("read 3 files")
    logging.getLogger("emotion.prepare").warning("dropping 2 rows")
    log(f"bars {pipeline.progress_bars()}")
    return True


@pytest.mark.parametrize(
    ("flags", "shown", "hidden"),
    [
        ([], ["[stage] running", "epoch 1 loss 0.5", "dropping 2 rows", "bars True"], ["read 3 files"]),
        (["-q"], ["dropping 2 rows"], ["[stage] running", "epoch 1", "read 3 files", "bars"]),
        (["-v"], ["INFO mtl_distill.trainer: epoch 1", "DEBUG affect_data.loaders: read 3 files"], []),
    ],
)
def test_quiet_and_verbose_set_what_the_log_shows(config, capsys, monkeypatch, flags, shown, hidden):
    monkeypatch.setattr(run, "run_stage", lambda name, config, force, log: noisy_stage(config, force, log))
    assert run.main(["prepare", "--config", str(config), *flags]) == 0
    out = capsys.readouterr().out
    for line in shown:
        assert line in out
    for line in hidden:
        assert line not in out


def test_quiet_before_the_command_turns_off_progress_bars(config, monkeypatch):
    bars = []
    monkeypatch.setattr(run, "run_stage", lambda *args, **kwargs: bars.append(pipeline.progress_bars()))
    assert run.main(["-q", "report", "--config", str(config)]) == 0
    assert run.main(["report", "--config", str(config)]) == 0
    assert bars == [False, True]
