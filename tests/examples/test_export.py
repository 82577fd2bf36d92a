"""The self-contained model file (examples/emotion/export.py) and prediction from it alone (run.py predict).

A tiny run folder is faked (stage markers, two students' and a teacher's weights, tuned thresholds), so that
no training runs; predictions use an injected detector on a small folder of images.
"""

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

from emotion import predict as predict_module  # noqa: E402
from emotion import run  # noqa: E402
from emotion.config import load_config  # noqa: E402
from emotion.evaluate import save_run_ensemble  # noqa: E402
from emotion.export import (  # noqa: E402
    MODEL_FILE,
    ModelFileError,
    config_hash,
    load_model_file,
    synthetic_warning,
)
from emotion.inference import run_ensemble  # noqa: E402
from emotion.models import MultitaskCNN  # noqa: E402
from emotion.pipeline import StageError, write_json  # noqa: E402
from emotion.predict import SyntheticModelWarning, predict_table, predict_video  # noqa: E402
from emotion.video import Face  # noqa: E402

from affect_data.schema import AU_NAMES  # noqa: E402
from mtl_distill import Ensemble  # noqa: E402

torch.set_num_threads(1)

THRESHOLDS = [0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65]


@pytest.fixture
def tiny_run(tmp_path):
    """The tiny config's run folder as `run.py all` leaves it, as far as export and predict read it."""
    data = yaml.safe_load((ROOT / "examples" / "emotion" / "configs" / "tiny.yaml").read_text())
    data["run_root"] = str(tmp_path / "runs")
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(data))
    config = load_config(config_path, check_paths=False)
    for stage in ("prepare", "teacher", "students", "evaluate"):
        write_json(config.run_dir / stage / "DONE.json", {"id": stage})
    write_json(
        config.run_dir / "evaluate" / "thresholds.json",
        {"ensemble": dict(zip(AU_NAMES, THRESHOLDS, strict=True)), "teacher": dict.fromkeys(AU_NAMES, 0.5)},
    )
    torch.manual_seed(3)
    for name in ("teacher", "students/student_0", "students/student_1"):
        (config.run_dir / name).mkdir(parents=True, exist_ok=True)
        model = MultitaskCNN("resnet_tiny", hidden=data["model"]["hidden"], dropout=data["model"]["dropout"])
        torch.save(model.state_dict(), config.run_dir / name / "model.pt")
    save_run_ensemble(config, THRESHOLDS)
    return config_path, config


class OneFace:
    """A detector that finds one face at a fixed place in every image."""

    def detect(self, images):
        points = np.array([[35, 40], [60, 40], [48, 52], [38, 66], [58, 66]], float)
        return [[Face(np.array([25.0, 25, 70, 80]), 0.99, points)] for _ in images]


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def exported(config_path, config) -> Path:
    assert run.main(["export", "--config", str(config_path)]) == 0
    return config.run_dir / "export" / MODEL_FILE


def test_the_model_file_holds_the_run_and_predicts_as_the_run(tiny_run, images):
    config_path, config = tiny_run
    path = exported(config_path, config)
    state = torch.load(path, weights_only=True)  # plain containers and tensors only
    assert len(state["members"]) == 2

    model = load_model_file(path)
    assert not model.training and model.thresholds["AU"].tolist() == THRESHOLDS
    student = torch.load(config.run_dir / "students" / "student_1" / "model.pt", weights_only=True)
    for key, value in student.items():
        assert torch.equal(model.members[1].state_dict()[key], value)
    architecture = model.metadata["architecture"]
    assert (architecture["backbone"], architecture["hidden"], architecture["image_size"]) == (
        "resnet_tiny",
        32,
        32,
    )
    origin = model.metadata["provenance"]
    assert origin["trained_on"] == "synthetic" and origin["synthetic_corpus"]["preset"] == "tiny"
    assert [entry["name"] for entry in origin["data_sets"]] == ["aff_wild2", "disfa", "expw", "afew_va"]
    assert origin["config_sha256"] == config_hash(config) and origin["members"] == ["student_0", "student_1"]
    assert {"python", "torch", "mtl-distill", "affect-data"} <= set(origin["versions"])
    assert origin["created"].startswith("20")
    assert [task.name for task in model.tasks] == ["AU", "EXPR", "VA"]
    assert model.tasks[0].label_names == tuple(AU_NAMES)

    with pytest.warns(SyntheticModelWarning):  # the run's own ensemble knows its provenance too
        from_run = predict_table(
            images, run_ensemble(config), image_size=32, detector=OneFace(), progress=False
        )
    with pytest.warns(SyntheticModelWarning):
        from_file = predict_table(images, model, image_size=32, detector=OneFace(), progress=False)
    assert from_file.equals(from_run)

    assert run.main(["export", "--config", str(config_path)]) == 0  # done: a no-op
    assert torch.load(path, weights_only=True)["metadata"]["provenance"]["created"] == origin["created"]


def test_a_run_without_students_exports_its_teacher(tiny_run):
    config_path, config = tiny_run
    for student in (config.run_dir / "students").glob("student_*"):
        (student / "model.pt").unlink()
    save_run_ensemble(config, [0.5] * 8)  # what evaluate saves for a run without students
    model = load_model_file(exported(config_path, config))
    assert len(model.members) == 1 and model.metadata["provenance"]["members"] == ["teacher"]
    assert model.thresholds["AU"].tolist() == [0.5] * 8


def test_export_needs_a_finished_evaluate_stage(tiny_run, capsys):
    config_path, config = tiny_run
    (config.run_dir / "evaluate" / "DONE.json").unlink()
    assert run.main(["export", "--config", str(config_path)]) == 2
    assert "needs stage 'evaluate' first" in capsys.readouterr().err
    with pytest.raises(StageError, match="no evaluate stage"):
        from emotion.export import export_model

        export_model(config, config.run_dir / "x.pt")


def resave(path: Path, edit, name: str) -> Path:
    state = torch.load(path, weights_only=True)
    edit(state)
    target = path.with_name(name)
    torch.save(state, target)
    return target


def test_model_file_errors_name_the_file_in_one_line(tiny_run, tmp_path):
    config_path, config = tiny_run
    path = exported(config_path, config)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:5000])
    plain = Ensemble([MultitaskCNN("resnet_tiny")], load_model_file(path).tasks).save(tmp_path / "plain.pt")
    cases = [
        (tmp_path / "absent.pt", r"model file .*absent\.pt does not exist"),
        (truncated, r"model file .*truncated\.pt is unreadable"),
        (plain, r"plain\.pt is not an emotion model file"),
        (
            resave(path, lambda s: s["metadata"].update(version=99), "v99.pt"),
            r"v99\.pt .* of version 99; this",
        ),
        (
            resave(path, lambda s: s["metadata"]["architecture"].pop("hidden"), "nohidden.pt"),
            r"nohidden\.pt: .* no 'hidden'",
        ),
        (
            resave(path, lambda s: s["tasks"][0].update(num_labels=9), "tasks.pt"),
            r"tasks\.pt: its tasks AU, EXPR, VA differ",
        ),
        (
            resave(path, lambda s: s["metadata"]["architecture"].update(hidden=7), "h7.pt"),
            r"h7\.pt is damaged: member 0 does not fit its architecture",
        ),
        (
            resave(path, lambda s: s.pop("thresholds"), "nothr.pt"),
            r"nothr\.pt is damaged: no thresholds",
        ),
    ]
    for bad, message in cases:
        with pytest.raises(ModelFileError, match=message) as error:
            load_model_file(bad)
        assert "\n" not in str(error.value), bad


def test_the_synthetic_warning_is_for_synthetic_models_only():
    assert "only seen synthetic faces" in synthetic_warning({"trained_on": "synthetic"})
    assert synthetic_warning({"trained_on": "real"}) is None and synthetic_warning(None) is None


def test_the_model_file_is_plain_json_able_metadata(tiny_run):
    config_path, config = tiny_run
    metadata = torch.load(exported(config_path, config), weights_only=True)["metadata"]
    assert json.loads(json.dumps(metadata)) == metadata


def test_run_py_predict_with_the_model_file_alone(tiny_run, images, tmp_path, monkeypatch, capsys):
    config_path, config = tiny_run
    model = exported(config_path, config)
    monkeypatch.chdir(tmp_path)
    argv = ["predict", "--model", str(model), "--source", str(images), "--device", "cpu"]
    assert run.main(argv) == 0  # no config, no run folder needed: written to predict/<source name>
    table = (tmp_path / "predict" / "images" / "predictions.csv").read_text().splitlines()
    assert len(table) == 3 and table[0].startswith("frame,file,unreadable")
    warning = capsys.readouterr().err.splitlines()[-1]
    assert warning == f"warning: {synthetic_warning({'trained_on': 'synthetic'})}"
    assert "only seen synthetic faces; its predictions on real faces are meaningless" in warning
    record = json.loads((tmp_path / "predict" / "images" / "predictions.json").read_text())
    assert record["model"] == str(model) and record["warning"] in warning
    assert record["provenance"] == load_model_file(model).metadata["provenance"]
    assert record["options"]["device"] == "cpu" and record["options"]["min_score"] == 0.9
    assert set(record["counts"]) == {"frames", "frames_with_face", "face_rows", "faces", "unreadable"}
    assert record["counts"]["frames"] == 2

    broken = tmp_path / "broken.pt"
    broken.write_bytes(model.read_bytes()[:100])
    assert run.main([*argv[:2], str(broken), *argv[3:]]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: model file") and "broken.pt" in error and error.count("\n") == 1
    for wrong in (
        ["predict", "--model", str(model), "--config", str(config_path), "--source", str(images)],
        ["export", "--model", str(model)],
        ["predict", "--source", str(images)],
        ["export"],
    ):
        with pytest.raises(SystemExit):
            run.main(wrong)
    assert "needs --config (or --model)" in capsys.readouterr().err


def test_a_synthetic_model_says_so_in_the_table_plot_and_json(tiny_run, images, tmp_path, monkeypatch):
    config_path, config = tiny_run
    model = load_model_file(exported(config_path, config))
    titles = []
    plot = predict_module.plot_predictions
    monkeypatch.setattr(
        predict_module, "plot_predictions", lambda *a, **k: titles.append(k["title"]) or plot(*a, **k)
    )
    options = {"image_size": 32, "detector": OneFace(), "progress": False}
    with pytest.warns(SyntheticModelWarning, match="only seen synthetic faces"):
        table = predict_video(images, model, None, tmp_path / "out", model_name="m.pt", **options)
    assert titles == ["images - model trained on synthetic faces only: meaningless on real faces"]
    record = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert record["counts"] == {
        "frames": 2,
        "frames_with_face": 2,
        "face_rows": 2,
        "faces": 1,
        "unreadable": 0,
    }
    assert record["options"]["detector"] == "OneFace" and record["model"] == "m.pt"
    assert record["warning"] == table.attrs["warning"] and record["provenance"]["trained_on"] == "synthetic"

    model.metadata["provenance"]["trained_on"] = "real"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning for a model trained on real faces
        table = predict_video(images, model, None, tmp_path / "real", **options)
    assert titles[-1] == "images" and table.attrs["warning"] is None
    assert json.loads((tmp_path / "real" / "predictions.json").read_text())["warning"] is None
