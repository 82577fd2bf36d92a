"""The pipeline's YAML configuration (examples/emotion/config.py)."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

from emotion import run  # noqa: E402
from emotion.config import ConfigError, check_device, load_config  # noqa: E402

CONFIGS = ROOT / "examples" / "emotion" / "configs"


def write(tmp_path, data, name="config.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def tiny():
    return yaml.safe_load((CONFIGS / "tiny.yaml").read_text())


@pytest.mark.parametrize("name", ["paper", "demo", "tiny", "study", "study_large", "study_long"])
def test_shipped_configs_parse(name):
    config = load_config(CONFIGS / f"{name}.yaml", check_paths=False)
    assert config.name == name


def test_paper_config_holds_the_papers_settings():
    config = load_config(CONFIGS / "paper.yaml", check_paths=False)
    training = config.training
    assert (config.model.backbone, config.data.image_size) == ("resnet50", 112)
    assert (training.lr, training.lr_step_epochs, training.lr_gamma) == (1e-4, 3, 0.1)
    assert (training.teacher.epochs, training.students.count, training.students.epochs) == (8, 5, 3)
    assert (training.students.lam, training.students.temperature) == (0.6, 1.5)


def test_unknown_key_is_named_with_its_path(tmp_path):
    data = tiny()
    data["training"]["teacher"]["epohcs"] = 3
    path = write(tmp_path, data)
    with pytest.raises(ConfigError, match=r"config\.yaml: unknown key 'training\.teacher\.epohcs'.*epochs"):
        load_config(path)


def test_unknown_top_level_key(tmp_path):
    data = tiny()
    data["modle"] = {}
    with pytest.raises(ConfigError, match=r"unknown key 'modle'"):
        load_config(write(tmp_path, data))


def test_wrong_type_and_bad_choice_are_named(tmp_path):
    data = tiny()
    data["training"]["batch_per_task"] = "eight"
    with pytest.raises(ConfigError, match=r"training.batch_per_task must be int, got 'eight'"):
        load_config(write(tmp_path, data))
    data = tiny()
    data["model"]["backbone"] = "vgg16"
    with pytest.raises(ConfigError, match=r"model.backbone must be one of .*'resnet50'.*got 'vgg16'"):
        load_config(write(tmp_path, data))


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        (("training", "students"), "temperature", 0, r"training\.students\.temperature must be > 0, got 0"),
        (("training", "students"), "lam", 1.5, r"training\.students\.lam must be in \[0, 1\], got 1\.5"),
        (("evaluation",), "batch_size", 0, r"evaluation\.batch_size must be >= 1, got 0"),
        (("training", "students"), "epochs", 0, r"training\.students\.epochs must be >= 1, got 0"),
        (("training", "students"), "generations", 0, r"training\.students\.generations must be >= 1.*got 0"),
        (
            ("study", "variants"),
            "again",
            {"generations": 2, "count": 0},
            r"study\.variants\.again\.generations .*got 2 with count 0",
        ),
        ((), "name", "../elsewhere", r"name must be a folder name inside run_root .*got '\.\./elsewhere'"),
        (("study",), "seeds", [1, 1], r"study\.seeds must be distinct seeds, got \[1, 1\]"),
        (("study", "variants"), "hot", {"temprature": 2}, r"unknown key 'study\.variants\.hot\.temprature'"),
        (("study", "variants"), "cold", {"lam": 2.0}, r"study\.variants\.cold\.lam must be in \[0, 1\]"),
        (("training",), "lr", -1e-3, r"training\.lr must be a finite number > 0, got -0\.001"),
        (("training",), "lr", 0, r"training\.lr must be a finite number > 0, got 0"),
        (("training",), "lr", float("nan"), r"training\.lr must be a finite number > 0, got nan"),
        (("training",), "steps_per_epoch", 0, r"training\.steps_per_epoch must be >= 1 or null, got 0"),
        (("training",), "steps_per_epoch", -3, r"training\.steps_per_epoch must be >= 1 or null, got -3"),
        (
            ("experiments",),
            "sequence_steps_per_epoch",
            0,
            r"experiments\.sequence_steps_per_epoch must be >= 1 or null, got 0",
        ),
        (("experiments",), "sequence_epochs", 0, r"experiments\.sequence_epochs must be >= 1 or null, got 0"),
        (
            ("training",),
            "device",
            "gpu",
            r"training\.device must be auto, cpu, cuda, cuda:N or mps, got 'gpu'",
        ),
        (("training",), "device", "cuda:x", r"training\.device must be .* got 'cuda:x'"),
        (("data",), "num_workers", -1, r"data\.num_workers must be >= 0, got -1"),
        (("training",), "lr_gamma", 0, r"training\.lr_gamma must be in \(0, 1\], got 0"),
        (("training",), "lr_gamma", 1.5, r"training\.lr_gamma must be in \(0, 1\], got 1\.5"),
        (("training",), "weight_decay", -0.1, r"training\.weight_decay must be a finite number >= 0"),
        (("model",), "dropout", 1.0, r"model\.dropout must be in \[0, 1\), got 1\.0"),
        (("model",), "hidden", 0, r"model\.hidden must be >= 1, got 0"),
        (
            ("data", "synthetic"),
            "preset",
            "huge",
            r"data\.synthetic\.preset must be one of demo, .*tiny.*, got 'huge'",
        ),
    ],
)
def test_out_of_range_values_are_named(tmp_path, section, key, value, message):
    data = tiny()
    place = data
    for name in section:
        place = place.setdefault(name, {})
    place[key] = value
    with pytest.raises(ConfigError, match=r"config\.yaml: " + message):
        load_config(write(tmp_path, data), check_paths=False)


def test_missing_data_paths_are_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "affwild").mkdir()
    data = tiny()
    data["data"] = {"aff_wild2": "affwild", "disfa": "no/disfa", "expw": "no/expw"}
    path = write(tmp_path, data)
    with pytest.raises(ConfigError, match=r"data.disfa = 'no/disfa'; data.expw = 'no/expw'") as error:
        load_config(path)
    assert "aff_wild2" not in str(error.value)
    data["data"] = {"disfa": "affwild"}
    with pytest.raises(ConfigError, match=r"data.aff_wild2 is required"):
        load_config(write(tmp_path, data))


def test_synthetic_root_may_be_missing_but_excludes_real_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = tiny()
    config = load_config(write(tmp_path, data))
    assert config.data.roots()["expw"] == Path("data/synthetic-tiny/expw")
    data["data"]["expw"] = "somewhere"
    with pytest.raises(ConfigError, match=r"data.expw must be null"):
        load_config(write(tmp_path, data))


def test_required_key_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"missing required key 'name'"):
        load_config(write(tmp_path, {"data": {"aff_wild2": "x"}}))
    with pytest.raises(ConfigError, match=r"does not exist"):
        load_config(tmp_path / "absent.yaml")


def test_soft_labels_may_be_chosen_per_task_naming_each_task(tmp_path):
    data = tiny()
    data["training"]["students"]["soft_labels"] = {"AU": "cached", "EXPR": "cached", "VA": "online"}
    config = load_config(write(tmp_path, data), check_paths=False)
    assert config.training.students.soft_labels == {"AU": "cached", "EXPR": "cached", "VA": "online"}
    data["training"]["students"]["soft_labels"]["VA"] = "soft"
    with pytest.raises(ConfigError, match=r"training\.students\.soft_labels\.VA must be one of .*got 'soft'"):
        load_config(write(tmp_path, data), check_paths=False)
    del data["training"]["students"]["soft_labels"]["VA"]
    with pytest.raises(
        ConfigError, match=r"soft_labels must be by_task, online, cached, or name each of the tasks AU, EXPR"
    ):
        load_config(write(tmp_path, data), check_paths=False)


def test_values_the_pipeline_takes_still_load(tmp_path):
    data = tiny()
    data["training"].update(
        steps_per_epoch=None, lr_gamma=1.0, device="cuda:1"
    )  # cuda:1: checked at run time
    data["experiments"]["sequence_steps_per_epoch"] = None
    data["data"]["num_workers"] = 0
    config = load_config(write(tmp_path, data), check_paths=False)
    assert (config.training.steps_per_epoch, config.training.device) == (None, "cuda:1")


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("cuda", r"training\.device is 'cuda', but CUDA is not available on this machine; use auto or cpu"),
        ("cuda:1", r"training\.device is 'cuda:1', but CUDA is not available on this machine"),
    ],
)
def test_a_cuda_device_on_a_machine_without_cuda_is_named(tmp_path, monkeypatch, device, message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    data = tiny()
    data["training"]["device"] = device
    path = write(tmp_path, data)
    config = load_config(path, check_paths=False)  # loads: the config may be meant for another machine
    with pytest.raises(ConfigError, match=r"config\.yaml: " + message):
        check_device(config, path)


def test_mps_on_a_machine_without_it_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    data = tiny()
    data["training"]["device"] = "mps"
    path = write(tmp_path, data)
    with pytest.raises(
        ConfigError, match=r"training\.device is 'mps', but MPS is not available on this machine"
    ):
        check_device(load_config(path, check_paths=False), path)


def test_a_cuda_index_beyond_the_devices_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    data = tiny()
    data["training"]["device"] = "cuda:2"
    path = write(tmp_path, data)
    with pytest.raises(
        ConfigError, match=r"'cuda:2', but this machine has 2 CUDA device\(s\) \(cuda:0 to cuda:1\)"
    ):
        check_device(load_config(path, check_paths=False), path)
    data["training"]["device"] = "cuda:1"
    check_device(load_config(write(tmp_path, data), check_paths=False))


def test_run_py_names_a_missing_cuda_in_one_line_before_any_stage(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    data = tiny()
    data["run_root"] = str(tmp_path / "runs")
    data["training"]["device"] = "cuda"
    path = write(tmp_path, data)
    assert run.main(["teacher", "--config", str(path)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "CUDA is not available on this machine" in error
    assert not (tmp_path / "runs").exists()  # refused before the run folder was touched


@pytest.mark.parametrize(
    "command",
    [["prepare"], ["report"], ["export"], ["figure5"], ["predict", "--device", "cpu", "--source", "absent"]],
)
def test_commands_that_do_not_compute_on_the_configured_device_do_not_check_it(
    tmp_path, monkeypatch, capsys, command
):
    # A config written for the GPU machine must still prepare the data and write the report elsewhere.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(run, "run_stage", lambda *args, **kwargs: True)
    monkeypatch.setattr(run, "_predict", lambda *args: 0)
    data = tiny()
    data["run_root"] = str(tmp_path / "runs")
    data["training"]["device"] = "cuda"
    assert run.main([*command, "--config", str(write(tmp_path, data))]) == 0
    assert "CUDA" not in capsys.readouterr().err


def test_loading_a_synthetic_config_does_not_import_scipy():
    # The preset check looks up affect_data.synthetic.PRESETS; scipy is for rendering the corpus only.
    code = (
        "import sys; sys.path.insert(0, 'examples'); from emotion.config import load_config; "
        "load_config('examples/emotion/configs/tiny.yaml', check_paths=False); "
        "print('scipy' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
