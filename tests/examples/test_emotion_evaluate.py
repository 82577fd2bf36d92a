"""The evaluate stage (examples/emotion/evaluate.py): its scores and the run's saved ensemble."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

from emotion.config import load_config  # noqa: E402
from emotion.evaluate import (  # noqa: E402
    ENSEMBLE_FILE,
    load_run_ensemble,
    save_run_ensemble,
    score,
    tune_au_thresholds,
)
from emotion.factory import build_model, load_weights, seeded  # noqa: E402
from emotion.pipeline import StageError  # noqa: E402

from affect_data.prediction import abaw_tasks  # noqa: E402
from mtl_distill.ensemble import average_predictions  # noqa: E402


def test_thresholds_are_tuned_on_completely_labelled_frames_only():
    truth = np.array([[1.0], [1.0], [0.0], [0.0], [np.nan]]).repeat(8, axis=1)
    probabilities = np.array([[0.3], [0.25], [0.2], [0.1], [0.9]]).repeat(8, axis=1)
    thresholds = tune_au_thresholds(truth, probabilities)
    assert np.all(
        (thresholds > 0.2) & (thresholds <= 0.25)
    )  # separates 0.25 from 0.2; the NaN row is ignored
    assert tune_au_thresholds(np.full((3, 8), np.nan), probabilities[:3]).tolist() == [0.5] * 8


def test_scores_use_the_thresholds_and_skip_missing_labels():
    truth = {
        "AU": np.array([[1, 0, 0, 0, 1, 0, 0, 1], [0, 0, 0, 0, 0, 0, 0, 0]], dtype=float),
        "EXPR": np.array([4.0, np.nan]),
        "VA": np.array([[0.5, -0.5], [-0.5, 0.5]]),
    }
    predicted = {
        "AU": np.array([[0.4, 0.1, 0.1, 0.1, 0.4, 0.1, 0.1, 0.4], [0.1] * 8]),
        "EXPR": np.array([[0, 0, 0, 0, 1.0, 0, 0], [1.0, 0, 0, 0, 0, 0, 0]]),
        "VA": np.array([[0.5, -0.5], [-0.5, 0.5]]),
    }
    scores = score(truth, predicted, np.full(8, 0.3))
    assert scores["AU"]["accuracy"] == 1.0  # 0.4 >= 0.3: every decision right
    assert scores["AU@0.5"]["accuracy"] == 13 / 16  # at 0.5 the three positives are missed
    assert scores["EXPR"]["n_frames"] == 1 and scores["EXPR"]["accuracy"] == 1.0
    assert scores["VA"]["score"] == 1.0


@pytest.fixture
def trained_run(tmp_path):
    """The tiny config's run folder with a teacher and two students (random weights), as evaluate reads it."""
    data = yaml.safe_load((ROOT / "examples" / "emotion" / "configs" / "tiny.yaml").read_text())
    data["run_root"] = str(tmp_path)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(data))
    config = load_config(tmp_path / "tiny.yaml", check_paths=False)
    for name in ("teacher", "students/student_0", "students/student_1"):
        (config.run_dir / name).mkdir(parents=True)
        with seeded(len(name)):
            model = build_model(config, pretrained=False)
        torch.save(model.state_dict(), config.run_dir / name / "model.pt")
    return config


def test_the_saved_ensemble_predicts_and_decides_as_its_students_with_its_thresholds(trained_run):
    thresholds = [0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65]
    path = save_run_ensemble(trained_run, thresholds)
    assert path == trained_run.stage_dir("evaluate") / ENSEMBLE_FILE
    assert torch.load(path, weights_only=True)["metadata"] == {"members": ["student_0", "student_1"]}
    ensemble = load_run_ensemble(trained_run)
    assert not ensemble.training and ensemble.thresholds["AU"].tolist() == thresholds

    students = [
        load_weights(build_model(trained_run, pretrained=False), path, "students").eval()
        for path in sorted((trained_run.run_dir / "students").glob("student_*/model.pt"))
    ]
    images = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        each = [
            {task.name: task.predict(model(images)[task.name]).numpy() for task in abaw_tasks()}
            for model in students
        ]
    mean = average_predictions(each)  # what evaluate scores the ensemble with
    predicted = ensemble.predict(images)
    for task in ("AU", "EXPR", "VA"):
        np.testing.assert_allclose(predicted[task].numpy(), mean[task], atol=1e-5)
    decided = ensemble.decide(predicted)["AU"].numpy()
    assert (decided == (predicted["AU"].numpy() >= np.array(thresholds))).all()


def test_a_run_without_students_saves_its_teacher(trained_run):
    for student in (trained_run.run_dir / "students").glob("student_*"):
        (student / "model.pt").unlink()
    save_run_ensemble(trained_run, [0.5] * 8)
    ensemble = load_run_ensemble(trained_run)
    assert len(ensemble.members) == 1 and ensemble.metadata["members"] == ["teacher"]


def test_a_missing_or_damaged_ensemble_file_is_one_line_naming_it(trained_run, tmp_path):
    path = trained_run.stage_dir("evaluate") / ENSEMBLE_FILE
    with pytest.raises(StageError, match=r"ensemble\.pt is missing: run `run\.py evaluate --force`"):
        load_run_ensemble(trained_run)
    saved = save_run_ensemble(trained_run, [0.5] * 8).read_bytes()
    state = torch.load(path, weights_only=True)
    damaged = {
        "truncated": (lambda: path.write_bytes(saved[:2000]), r"cannot be read \(truncated or damaged\)"),
        "not an ensemble": (lambda: torch.save({"model": {}}, path), "holds no ensemble"),
        "other format": (lambda: torch.save({**state, "format": "x"}, path), "is not an ensemble file"),
    }
    for name, (damage, message) in damaged.items():
        damage()
        with pytest.raises(StageError, match=message) as error:
            load_run_ensemble(trained_run)
        assert str(path) in str(error.value) and "run.py evaluate --force" in str(error.value), name
        assert "\n" not in str(error.value), name
