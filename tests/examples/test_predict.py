"""``run.py predict`` on a user's own video (examples/emotion/predict.py, inference.py): the command line, the
run's ensemble, the example's models in affect_data.prediction, and the detection-threshold measurement.

The prediction machinery itself (affect_data.prediction, affect_data.video) is tested in
tests/affect_data/test_prediction.py and test_video.py, on the same rendered clips (tests/rendered_faces.py,
tests/conftest.py).
"""

import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from rendered_faces import BLANK, NUM_FRAMES

av = pytest.importorskip("av", reason="PyAV decodes the videos")

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

from emotion.predict import summary  # noqa: E402

from affect_data.models import MultitaskCNN, MultitaskCNNRNN, SlidingCNNRNN  # noqa: E402
from affect_data.prediction import as_ensemble, is_sliding_window_model, sequence_length  # noqa: E402
from affect_data.schema import AU_NAMES  # noqa: E402

torch.set_num_threads(1)


def test_summary_counts_faces_frames_and_unreadable_images():
    # The two-face scene of tests/rendered_faces.py as predicted: 3 faces, 17 of 20 frames with a face.
    ids = [[0, 1]] * 8 + [[1]] * 2 + [[0, 1]] * 2 + [[None]] * 3 + [[1]] * 4 + [[1, 2]]
    rows = [(frame, face_id) for frame, faces in enumerate(ids) for face_id in faces]
    table = pd.DataFrame(rows, columns=["frame", "face_id"]).astype({"face_id": "Int64"})
    assert summary(table) == "3 face(s) tracked; a face in 17 of 20 frame(s)"
    table["unreadable"] = table["frame"] == 13
    assert "1 unreadable image(s)" in summary(table)


def test_the_cnn_gru_members_are_sliding_window_models():
    cnn = MultitaskCNN("resnet_tiny", hidden=16)
    members = [SlidingCNNRNN(MultitaskCNNRNN(cnn, hidden=8), 4) for _ in range(2)]
    assert all(is_sliding_window_model(member) for member in members)
    assert not is_sliding_window_model(cnn)
    assert sequence_length(as_ensemble(members)) == 4 and sequence_length(as_ensemble(cnn)) is None
    with pytest.raises(ValueError, match="a CNN-GRU ensemble needs SlidingWindowModel members only"):
        sequence_length(as_ensemble([members[0], SlidingCNNRNN(members[1].model, 8)]))


def test_a_runs_ensemble_that_does_not_fit_its_config_is_named(tmp_path):
    import yaml
    from emotion.config import load_config
    from emotion.evaluate import load_run_ensemble, save_run_ensemble
    from emotion.inference import run_ensemble
    from emotion.pipeline import StageError, write_json

    data = yaml.safe_load((ROOT / "examples" / "emotion" / "configs" / "tiny.yaml").read_text())
    data["run_root"] = str(tmp_path)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(data))
    config = load_config(tmp_path / "tiny.yaml", check_paths=False)
    with pytest.raises(StageError, match="no evaluate stage"):
        run_ensemble(config)
    write_json(config.run_dir / "evaluate" / "DONE.json", {"id": "x"})
    teacher = config.run_dir / "teacher" / "model.pt"
    teacher.parent.mkdir(parents=True)
    torch.save(MultitaskCNN("resnet_tiny", hidden=data["model"]["hidden"]).state_dict(), teacher)
    save_run_ensemble(config, [0.5] * 8)
    ensemble = load_run_ensemble(config)  # no students: the teacher alone
    assert len(ensemble.members) == 1 and ensemble.metadata["members"] == ["teacher"]
    assert not ensemble.training and not ensemble.members[0].training
    data["model"]["hidden"] *= 2  # the config's model is no longer the one the run saved
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(StageError, match=r"evaluate.ensemble\.pt holds the weights of another model"):
        load_run_ensemble(load_config(tmp_path / "tiny.yaml", check_paths=False))


# --- the command line: run.py predict, with the real detector ---------------------------------------------


@pytest.fixture
def finished_tiny_run(tmp_path):
    """The tiny config's run folder with what predict reads: evaluate's marker and ensemble, students."""
    import yaml
    from emotion.config import load_config
    from emotion.evaluate import save_run_ensemble
    from emotion.pipeline import write_json

    data = yaml.safe_load((ROOT / "examples" / "emotion" / "configs" / "tiny.yaml").read_text())
    data["run_root"] = str(tmp_path)
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(data))
    run_dir = tmp_path / data["name"]
    write_json(run_dir / "evaluate" / "DONE.json", {"id": "x"})
    torch.manual_seed(1)
    for name in ("teacher", "students/student_0", "students/student_1"):
        (run_dir / name).mkdir(parents=True)
        torch.save(
            MultitaskCNN("resnet_tiny", hidden=data["model"]["hidden"]).state_dict(),
            run_dir / name / "model.pt",
        )
    save_run_ensemble(load_config(config_path, check_paths=False), [0.4] * 8)
    return config_path, data


def test_run_py_predict_tracks_the_face_with_mtcnn(finished_tiny_run, video, tmp_path, capsys):
    sys.path.insert(0, str(ROOT / "examples" / "emotion"))
    import run

    config_path, _ = finished_tiny_run
    out = tmp_path / "out"
    argv = ["predict", "--config", str(config_path), "--source", str(video), "--out", str(out)]
    options = ["--device", "cpu", "--batch-size", "4", "--save-crops", "--every", "2", "--min-score", "0.7"]
    assert run.main([*argv, *options]) == 0  # the rendered faces score 0.75-0.99
    table = pd.read_csv(out / "predictions.csv")
    assert table["frame"].tolist() == list(range(0, NUM_FRAMES, 2))  # one face at most per frame
    assert not table.loc[table["frame"].isin(BLANK), "face_found"].any()
    found = table[table["face_found"]]
    assert len(found) >= 3 and (found["face_id"] == 0).all()  # one face, back 0.6 s after the last sighting
    assert (found[[f"{au}_prob" for au in AU_NAMES]].to_numpy() >= 0.4).astype(int).tolist() == found[
        list(AU_NAMES)
    ].to_numpy().tolist()  # the run's tuned thresholds
    assert sorted(p.name for p in (out / "crops").iterdir()) == [f"{f:06d}_0.jpg" for f in found["frame"]]
    assert (out / "predictions.png").is_file()
    assert "1 face(s) tracked" in capsys.readouterr().out

    assert run.main([*argv, "--min-score", "0.99999"]) == 0  # nothing passes: every frame is a no-face row
    assert not pd.read_csv(out / "predictions.csv")["face_found"].any()
    with pytest.raises(SystemExit):  # argparse: --every and --fps exclude each other
        run.main([*argv, "--every", "2", "--fps", "3"])
    capsys.readouterr()
    argv[argv.index("--source") + 1] = str(tmp_path / "missing.mp4")
    assert run.main(argv) == 2
    assert "missing.mp4" in capsys.readouterr().err


# --- the measurement behind the detection thresholds ------------------------------------------------------


def test_the_detection_threshold_measurement_prints_its_tables(capsys):
    import importlib.util

    path = ROOT / "benchmarks" / "detection_thresholds.py"
    spec = importlib.util.spec_from_file_location("detection_thresholds", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.main(["--frames", "1"])
    out = capsys.readouterr().out
    assert "Frames with nobody in view: 6 frames" in out and "Frames with one synthetic face: 6 frames" in out
    for kind in (*script.NOBODY, *script.ONE_FACE):  # its line of counts and its line of kept faces
        assert sum(line.startswith(f"{kind} ") for line in out.splitlines()) >= 2, kind
    assert "0.9/24" in out and "0.85/24" in out
    assert out.rstrip().endswith("predict's defaults: least score 0.9, least size 24 px")
