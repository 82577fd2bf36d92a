"""The emotion pipeline end to end on the tiny synthetic corpus: every stage, re-runs, the report."""

import json
import sys
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

from emotion import run  # noqa: E402
from emotion.pipeline import read_marker  # noqa: E402

pytestmark = pytest.mark.slow

STAGES = ("prepare", "teacher", "students", "evaluate", "report", "export")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One complete `run.py all` on the tiny config, in a temporary folder."""
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("emotion")
    data = yaml.safe_load((ROOT / "examples" / "emotion" / "configs" / "tiny.yaml").read_text())
    data["run_root"] = str(folder / "runs")
    data["data"]["synthetic"]["root"] = str(folder / "corpus")
    data["data"]["crop_cache"] = str(folder / "crops")
    config = folder / "tiny.yaml"
    config.write_text(yaml.safe_dump(data))
    assert run.main(["all", "--config", str(config)]) == 0
    return config, folder / "runs" / "tiny"


def test_every_stage_finished(finished_run):
    _, run_dir = finished_run
    for stage in STAGES:
        assert read_marker(run_dir / stage) is not None, stage
    assert (run_dir / "teacher" / "model.pt").is_file()
    assert sorted(p.name for p in (run_dir / "students").glob("student_*")) == ["student_0", "student_1"]


def test_rerun_is_a_no_op(finished_run, capsys):
    config, run_dir = finished_run
    before = {stage: read_marker(run_dir / stage)["id"] for stage in STAGES}
    assert run.main(["all", "--config", str(config)]) == 0
    assert {stage: read_marker(run_dir / stage)["id"] for stage in STAGES} == before
    assert capsys.readouterr().out.count("up to date") == len(STAGES)


def test_report_holds_the_evaluated_numbers(finished_run):
    _, run_dir = finished_run
    scores = json.loads((run_dir / "evaluate" / "scores.json").read_text())
    assert set(scores["models"]) == {"teacher", "student_0", "student_1", "ensemble"}
    report = (run_dir / "report" / "report.md").read_text()
    results = (run_dir / "report" / "results.md").read_text()
    for name in ("teacher", "student_0", "student_1", "ensemble"):
        model = scores["models"][name]
        for value in (model["AU"]["score"], model["EXPR"]["score"], model["VA"]["ccc"]["arousal"]):
            assert f"{value:.4f}" in results
            assert f"{value:.4f}" in report
    for figure in ("figure5", "figure2_AU", "figure2_EXPR", "figure2_VA", "per_au_f1", "training_curves"):
        path = run_dir / "report" / f"{figure}.png"
        assert path.stat().st_size > 1000, figure
        assert f"({figure}.png)" in report


def test_the_saved_ensemble_is_the_one_evaluate_scored(finished_run):
    import numpy as np
    from emotion.config import load_config
    from emotion.evaluate import evaluation_tables, load_run_ensemble, score
    from emotion.factory import frame_dataset, truth_arrays

    from mtl_distill.ensemble import average_predictions
    from mtl_distill.evaluation import predict

    config_path, run_dir = finished_run
    config = load_config(config_path)
    ensemble = load_run_ensemble(config)
    thresholds = json.loads((run_dir / "evaluate" / "thresholds.json").read_text())["ensemble"]
    assert ensemble.thresholds["AU"].tolist() == list(thresholds.values())
    scores = json.loads((run_dir / "evaluate" / "scores.json").read_text())
    table = evaluation_tables(config)[scores["split"]]
    saved = [
        np.load(path)
        for path in sorted((run_dir / "evaluate" / "predictions" / scores["split"]).glob("student_*.npz"))
    ]
    averaged = average_predictions([dict(s) for s in saved])  # what evaluate scored the ensemble with
    predicted = predict(ensemble, ensemble.tasks, frame_dataset(table, config, train=False)).outputs
    for task, values in averaged.items():
        np.testing.assert_allclose(predicted[task], values, atol=1e-5)
    rescored = score(truth_arrays(table), averaged, ensemble.thresholds["AU"])
    assert rescored["AU"] == scores["models"]["ensemble"]["AU"]


def test_evaluation_scores_every_validation_frame_on_every_task(finished_run):
    _, run_dir = finished_run
    scores = json.loads((run_dir / "evaluate" / "scores.json").read_text())
    n = scores["n_frames"]
    teacher = scores["models"]["teacher"]
    assert teacher["AU"]["n_frames"] == teacher["EXPR"]["n_frames"] == teacher["VA"]["n_frames"] == n


def test_experiments_write_tables_with_the_scores(finished_run):
    config, run_dir = finished_run
    data = yaml.safe_load(config.read_text())
    data["training"]["steps_per_epoch"] = 2
    data["experiments"] = {
        "single_task_epochs": 1,
        "sequence_lengths": [4],
        "sequence_batch_per_task": 4,
        "sequence_steps_per_epoch": 2,
        "sequence_epochs": 1,
        "sequence_student_epochs": 1,
    }
    quick = config.with_name("experiments.yaml")
    quick.write_text(yaml.safe_dump(data))
    assert run.main(["experiments", "--config", str(quick)]) == 0

    table1 = (run_dir / "table1" / "table1.md").read_text()
    single = json.loads((run_dir / "table1" / "scores.json").read_text())
    assert set(single) == {"baseline", "+ external data", "+ balancing"}
    for variant, scores in single.items():
        assert f"| {variant} | {scores['AU']['score']:.4f} | {scores['EXPR']['score']:.4f} |" in table1
    figure5 = (run_dir / "figure5" / "figure5.md").read_text()
    assert f"| single-task CNN | {single['+ balancing']['AU']['score']:.4f} |" in figure5
    table2 = (run_dir / "table2" / "table2.md").read_text()
    sequences = json.loads((run_dir / "table2" / "scores.json").read_text())["4"]
    assert set(sequences) == {"teacher", "student_0", "student_1", "ensemble"}
    assert f"| CNN-RNN L=4 teacher | {sequences['teacher']['AU']['score']:.4f} |" in table2
    evaluated = json.loads((run_dir / "evaluate" / "scores.json").read_text())
    assert sequences["teacher"]["VA"]["n_frames"] == evaluated["n_frames"]  # the clips cover every frame once
    for name in ("table1/table1.png", "figure5/figure5.png", "table2/table2.png"):
        assert (run_dir / name).stat().st_size > 1000

    # Table II's CNN-GRU of the length table2 ran, as one model file.
    from affect_data.model_file import load_model_file
    from affect_data.models import SlidingCNNRNN

    assert run.main(["export", "--config", str(quick), "--sequence-length", "4"]) == 0
    model = load_model_file(run_dir / "table2" / "length_4" / "emotion_model.pt")
    architecture = model.metadata["architecture"]
    assert (architecture["model"], architecture["sequence_length"]) == ("MultitaskCNNRNN", 4)
    assert all(isinstance(member, SlidingCNNRNN) and member.sequence_length == 4 for member in model.members)
    students = [f"table2/length_4/students/student_{k}" for k in (0, 1)]
    assert model.metadata["provenance"]["members"] == students


def test_predict_runs_the_ensemble_on_a_folder_of_frames(finished_run, tmp_path, capsys):
    import numpy as np
    from emotion.config import load_config
    from emotion.evaluate import load_run_ensemble
    from emotion.inference import predict_run

    from affect_data.prediction import SyntheticModelWarning
    from affect_data.video import Face

    config_path, _ = finished_run
    config = load_config(config_path)
    ensemble = load_run_ensemble(config)
    assert len(ensemble.members) == 2 and ensemble.metadata["members"] == ["student_0", "student_1"]

    class EveryOtherFrame:  # a stand-in detector: a face in the even frames of each batch it is given
        def detect(self, images):
            points = np.array([[38, 45], [74, 45], [56, 62], [42, 80], [70, 80]], float)
            face = Face(np.array([20.0, 20, 92, 100]), 0.99, points)
            return [[face] if i % 2 == 0 else [] for i in range(len(images))]

    frames = sorted(Path(config.data.synthetic.root, "aff_wild2", "cropped_aligned").iterdir())[0]
    with pytest.warns(SyntheticModelWarning, match="only seen synthetic faces"):
        table = predict_run(config, frames, tmp_path / "out", detector=EveryOtherFrame(), progress=False)
    assert len(table) == len(list(frames.iterdir()))
    assert table["face_found"].tolist()[:4] == [True, False, True, False]
    assert table.loc[~table["face_found"], "valence"].isna().all()
    assert table.loc[table["face_found"], "valence"].between(-1, 1).all()
    assert (tmp_path / "out" / "predictions.csv").is_file()

    assert run.main(["predict", "--config", str(config_path)]) == 2
    assert "needs --source" in capsys.readouterr().err


def test_study_runs_every_seed_and_variant_and_compares_them_seed_by_seed(finished_run, capsys):
    config, run_dir = finished_run
    data = yaml.safe_load(config.read_text())
    data["study"] = {
        "seeds": [5, 6],
        "variants": {
            "paper": {},
            # Soft labels per task (unused at lam 1; both sources are built): the mapping reaches mtl_distill.
            "control": {
                "lam": 1.0,
                "unlabelled_weight": 0.0,
                "count": 1,
                "soft_labels": {"AU": "cached", "EXPR": "online", "VA": "online"},
            },
        },
    }
    study_config = config.with_name("study.yaml")
    study_config.write_text(yaml.safe_dump(data))
    assert run.main(["study", "--config", str(study_config), "--jobs", "2"]) == 0  # a process per seed
    printed = capsys.readouterr().out

    study = run_dir / "study"
    for seed in (5, 6):
        assert (study / f"seed_{seed}" / "teacher" / "model.pt").is_file()  # one teacher per seed
        assert len(list((study / f"seed_{seed}" / "paper" / "students").glob("student_*/model.pt"))) == 2
        assert len(list((study / f"seed_{seed}" / "control" / "students").glob("student_*/model.pt"))) == 1
        saved = yaml.safe_load((study / f"seed_{seed}" / "control" / "config.yaml").read_text())
        assert (saved["seed"], saved["training"]["students"]["lam"]) == (seed, 1.0)
        assert (study / f"seed_{seed}" / "control" / "students" / "soft_labels.pt").is_file()  # AU's cache
        assert not (study / f"seed_{seed}" / "paper" / "students" / "soft_labels.pt").exists()  # online
    # Both variants of a seed learned from the same teacher, which differs between seeds.
    evaluated = {
        (s, v): json.loads((study / f"seed_{s}" / v / "evaluate" / "scores.json").read_text())
        for s in (5, 6)
        for v in ("paper", "control")
    }
    teachers = [evaluated[key]["models"]["teacher"] for key in sorted(evaluated)]
    assert teachers[0] == teachers[1] and teachers[2] == teachers[3] and teachers[0] != teachers[2]

    scores = json.loads((study / "scores.json").read_text())["scores"]
    paper = [
        json.loads((study / f"seed_{s}" / "paper" / "evaluate" / "scores.json").read_text()) for s in (5, 6)
    ]
    for seed, evaluated in zip(("5", "6"), paper, strict=True):
        students = [evaluated["models"][f"student_{k}"]["AU"]["score"] for k in range(2)]
        assert scores[seed]["paper: students (mean)"]["AU"] == pytest.approx(sum(students) / 2)
    difference = scores["5"]["paper: ensemble"]["VA"] - scores["5"]["teacher"]["VA"]
    difference += scores["6"]["paper: ensemble"]["VA"] - scores["6"]["teacher"]["VA"]
    summary = (study / "summary.md").read_text()
    assert "over 2 seeds (5, 6)" in summary and summary in printed
    assert "| AU cached, EXPR online, VA online |" in summary
    row = next(line for line in summary.splitlines() if line.startswith("| paper: ensemble − teacher"))
    assert row.split("|")[4].strip().startswith(f"{difference / 2:+.3f}")  # VA, the third metric
    assert (study / "summary.png").stat().st_size > 1000
    # One table per question, a row per variant; the lam = 1 variant is the control of the others.
    questions = summary[summary.index("## By question") :]
    assert questions.count("| paper | ") == 5 and questions.count("| control | ") == 3
    assert "students' mean − control's:" in questions and "ensemble − control's:" in questions

    # Everything is done: running the study again trains nothing.
    assert run.main(["study", "--config", str(study_config)]) == 0
    assert "running into" not in capsys.readouterr().out


def test_each_generation_of_students_is_taught_by_the_one_before(finished_run, tmp_path, monkeypatch):
    from emotion import train
    from emotion.config import load_config

    from mtl_distill import distillation
    from mtl_distill.soft_labels import EnsembleTeacher
    from mtl_distill.trainer import TrainResult

    config_path, _ = finished_run
    config = load_config(config_path)
    config.training.students.generations = 3
    config.training.students.count = 2
    calls = []

    def fake_train_students(initial, teacher, *args, generation, out_dir, num_students, **kwargs):
        calls.append((teacher, generation, out_dir))
        return [TrainResult(initial, [], 0, 0.0) for _ in range(num_students)]

    monkeypatch.setattr(distillation, "train_students", fake_train_students)
    train.run_students(config, tmp_path / "students")
    assert [(generation, out_dir) for _, generation, out_dir in calls] == [
        (1, tmp_path / "students" / "generation_1"),
        (2, tmp_path / "students" / "generation_2"),
        (3, tmp_path / "students"),  # the last generation is the run's students
    ]
    assert not isinstance(calls[0][0], EnsembleTeacher)  # the trained teacher
    for teacher, *_ in calls[1:]:  # the generation before, as an ensemble
        assert isinstance(teacher, EnsembleTeacher) and len(teacher.members) == 2


def test_experiments_over_seeds_are_summarised_with_intervals(finished_run, capsys):
    config, run_dir = finished_run
    data = yaml.safe_load(config.read_text())
    data["study"] = {"seeds": [5, 6], "variants": {}}
    study_config = config.with_name("study_experiments.yaml")
    study_config.write_text(yaml.safe_dump(data))
    assert run.main(["figure5", "--config", str(study_config), "--seeds", "7-8"]) == 0
    printed = capsys.readouterr().out

    study = run_dir / "study"
    for seed in (7, 8):
        assert read_marker(study / f"seed_{seed}" / "table1") is not None  # once per seed
        assert read_marker(study / f"seed_{seed}" / "main" / "figure5") is not None
    table1, figure5 = (study / "table1.md").read_text(), (study / "figure5.md").read_text()
    assert table1 in printed and figure5 in printed
    assert "| + balancing − baseline |" in table1 and "### EXPR F1 per class" in table1
    assert "| students (mean) − multitask teacher |" in figure5
    rows = [read_marker(study / f"seed_{s}" / "main" / "figure5")["summary"]["rows"] for s in (7, 8)]
    mean = (rows[0]["multitask teacher"]["AU"] + rows[1]["multitask teacher"]["AU"]) / 2
    teacher_row = next(line for line in figure5.splitlines() if line.startswith("| multitask teacher |"))
    assert teacher_row.split("|")[2].strip().startswith(f"{mean:.3f}")

    with pytest.raises(SystemExit):  # report does not run over seeds: it takes no --seeds
        run.main(["report", "--config", str(study_config), "--seeds", "7"])


def test_prepare_is_not_up_to_date_over_a_damaged_crop_cache(finished_run, capsys):
    config, run_dir = finished_run
    crops = run_dir / "prepare" / "crops" / "crops.u8"
    intact = crops.read_bytes()
    try:
        crops.write_bytes(intact[: len(intact) // 2])  # truncated
        assert run.main(["prepare", "--config", str(config)]) == 2
        error = capsys.readouterr().err
        assert "crop cache" in error and "damaged" in error and "prepare --force" in error
    finally:
        crops.write_bytes(intact)
    assert run.main(["prepare", "--config", str(config)]) == 0
    assert "up to date" in capsys.readouterr().out
