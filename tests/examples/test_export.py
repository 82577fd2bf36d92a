"""The self-contained model file (examples/emotion/export.py) and prediction from it alone (run.py predict).

A tiny run folder is faked (stage markers, two students' and a teacher's weights, tuned thresholds), so that
no training runs; predictions use an injected detector on a small folder of images.
"""

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

av = pytest.importorskip("av", reason="PyAV decodes the videos")

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

from emotion import run  # noqa: E402
from emotion.config import load_config  # noqa: E402
from emotion.evaluate import save_run_ensemble, tune_au_thresholds  # noqa: E402
from emotion.export import MODEL_FILE, config_hash  # noqa: E402
from emotion.inference import run_ensemble  # noqa: E402
from emotion.pipeline import StageError, write_json  # noqa: E402

from affect_data import prediction  # noqa: E402
from affect_data.model_file import ModelFileError, load_model_file  # noqa: E402
from affect_data.models import MultitaskCNN, MultitaskCNNRNN, SlidingCNNRNN, TemporalHeads  # noqa: E402
from affect_data.prediction import (  # noqa: E402
    SyntheticModelWarning,
    predict_table,
    predict_video,
    synthetic_warning,
)
from affect_data.schema import AU_NAMES  # noqa: E402
from affect_data.transforms import FrameTransform, load_image  # noqa: E402
from affect_data.video import Face  # noqa: E402
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
    assert set(state["metadata"]) == {"kind", "version", "architecture", "provenance"}

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
    assert origin["thresholds"] == "evaluate's ensemble.pt"
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
    plot = prediction.plot_predictions
    monkeypatch.setattr(
        prediction, "plot_predictions", lambda *a, **k: titles.append(k["title"]) or plot(*a, **k)
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


# --- the CNN-GRU: table2's ensemble of one sequence length -------------------------------------------------

LENGTH = 4


@pytest.fixture
def table2_run(tiny_run, tmp_path):
    """The tiny run with what `run.py table2` leaves for length 4 (a teacher's and two students' GRUs over the
    run's teacher CNN) and a validation table of two shuffled videos of 7 and 3 frames."""
    config_path, config = tiny_run
    data = yaml.safe_load(config_path.read_text())
    data["data"]["frame_cache"] = False  # the validation frames are read from their files
    config_path.write_text(yaml.safe_dump(data))
    config = load_config(config_path, check_paths=False)
    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(1)
    rows = []
    for video, count in (("v0", 7), ("v1", 3)):
        for frame in range(count):
            path = frames / f"{video}_{frame}.png"
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(path)
            labels = dict(zip(AU_NAMES, rng.integers(0, 2, len(AU_NAMES)).tolist(), strict=True))
            labels.update(expr=int(rng.integers(7)), valence=rng.uniform(-1, 1), arousal=rng.uniform(-1, 1))
            rows.append({"dataset": "aff_wild2", "video": video, "frame": frame, "path": str(path),
                         "subject": video, "split": "validation", **labels})  # fmt: skip
    table = pd.DataFrame(rows).sample(frac=1.0, random_state=0)  # export puts each video in frame order
    table.to_csv(config.run_dir / "prepare" / "validation.csv", index=False)
    write_json(config.run_dir / "table2" / "DONE.json", {"id": "t2", "inputs": {"teacher": "teacher"}})
    cnn = MultitaskCNN("resnet_tiny", hidden=data["model"]["hidden"])
    folder = config.run_dir / "table2" / f"length_{LENGTH}"
    torch.manual_seed(5)
    for name in ("teacher", "students/student_0", "students/student_1"):
        (folder / name).mkdir(parents=True)
        torch.save(TemporalHeads(MultitaskCNNRNN(cnn)).state_dict(), folder / name / "model.pt")
    return config_path, config


def exported_sequence(config_path, config) -> Path:
    argv = ["export", "--config", str(config_path), "--sequence-length", str(LENGTH)]
    assert run.main(argv) == 0
    return config.run_dir / "table2" / f"length_{LENGTH}" / MODEL_FILE


def test_the_cnn_gru_model_file_holds_table2s_ensemble(table2_run):
    config_path, config = table2_run
    path = exported_sequence(config_path, config)
    state = torch.load(path, weights_only=True)
    key = "model.cnn.backbone.conv1.weight"
    assert state["members"][0][key].untyped_storage().data_ptr() == (
        state["members"][1][key].untyped_storage().data_ptr()
    )  # the shared CNN is in the file once

    model = load_model_file(path)
    assert [type(member) for member in model.members] == [SlidingCNNRNN, SlidingCNNRNN]
    assert model.members[0].cnn is model.members[1].cnn and model.members[0].sequence_length == LENGTH
    teacher = torch.load(config.run_dir / "teacher" / "model.pt", weights_only=True)
    assert all(torch.equal(model.members[0].cnn.state_dict()[k], v) for k, v in teacher.items())
    folder = config.run_dir / "table2" / f"length_{LENGTH}"
    student = torch.load(folder / "students" / "student_1" / "model.pt", weights_only=True)
    heads = TemporalHeads(model.members[1].model).state_dict()
    assert all(torch.equal(heads[k], v) for k, v in student.items())
    architecture = model.metadata["architecture"]
    assert (architecture["model"], architecture["sequence_length"], architecture["rnn_hidden"]) == (
        "MultitaskCNNRNN",
        LENGTH,
        64,
    )
    origin = model.metadata["provenance"]
    assert origin["members"] == [f"table2/length_{LENGTH}/students/student_{k}" for k in (0, 1)]
    assert origin["trained_on"] == "synthetic" and origin["config_sha256"] == config_hash(config)
    assert json.loads(json.dumps(model.metadata)) == model.metadata

    # The AU thresholds: tuned on the validation frames, each predicted from the window of its video's last
    # frames up to it (a video's first frames: the frames so far, the last one repeated).
    table = pd.read_csv(config.run_dir / "prepare" / "validation.csv").sort_values(["video", "frame"])
    transform = FrameTransform(size=32, train=False)
    images = torch.stack([transform(load_image(p, transform.input_size)) for p in table["path"]])
    with torch.inference_mode():
        features = model.members[0].features(images)
        probabilities = []
        for i, frame in enumerate(table["frame"]):
            start = i - min(frame, LENGTH - 1)
            window = [*range(start, i + 1)] + [i] * (LENGTH - 1 - (i - start))
            per_frame = model.predict(features[window][None].half().float())["AU"]
            probabilities.append(per_frame[i - start].double().numpy())
    tuned = tune_au_thresholds(table[list(AU_NAMES)].to_numpy(float), np.array(probabilities))
    np.testing.assert_allclose(model.thresholds["AU"], tuned, atol=1e-6)
    assert not np.allclose(tuned, 0.5)

    resaved = model.save(path.with_name("again.pt"))  # the round trip keeps everything
    again = load_model_file(resaved)
    assert again.metadata == model.metadata and np.array_equal(again.thresholds["AU"], model.thresholds["AU"])
    for mine, theirs in zip(model.members, again.members, strict=True):
        assert all(torch.equal(v, theirs.state_dict()[k]) for k, v in mine.state_dict().items())


class TwoFaces:
    """Two faces at fixed places on every frame (left, then right); a third on the frames in `third`."""

    def __init__(self, frames, third=()):
        self.frames, self.third = frames, third

    @staticmethod
    def face(x):
        points = np.array([[18, 22], [36, 22], [27, 32], [20, 42], [34, 42]], float) + np.array([x, 0])
        return Face(np.array([8.0, 8, 46, 52]) + np.array([x, 0, x, 0]), 0.99, points)

    def detect(self, images):
        found = []
        for image in images:
            index = int(np.argmin([np.abs(image.astype(float) - frame).mean() for frame in self.frames]))
            faces = [self.face(0), self.face(104)]
            found.append(faces + [self.face(52)] * (index in self.third))
        return found


def two_face_frames(rng, count=12):
    return [rng.integers(0, 255, (64, 160, 3), dtype=np.uint8) for _ in range(count)]


def write_frames(folder: Path, frames) -> Path:
    folder.mkdir()
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i:02d}.png")
    return folder


def test_the_cnn_gru_predicts_each_face_from_its_own_past(table2_run, tmp_path):
    config_path, config = table2_run
    sequence = load_model_file(exported_sequence(config_path, config))
    cnn = load_model_file(exported(config_path, config))
    frames = two_face_frames(np.random.default_rng(2))
    options = {"image_size": 32, "progress": False, "batch_size": 5}
    with pytest.warns(SyntheticModelWarning):
        table = predict_table(write_frames(tmp_path / "a", frames), sequence,
                              detector=TwoFaces(frames, third=(10, 11)), **options)  # fmt: skip
        by_cnn = predict_table(write_frames(tmp_path / "b", frames), cnn,
                               detector=TwoFaces(frames, third=(10, 11)), **options)  # fmt: skip
    assert list(table.columns) == list(by_cnn.columns)
    described = ["frame", "face_id", "face_found", "box_left", "box_right", "face_score"]
    assert table[described].equals(by_cnn[described])  # the same rows and face ids as the CNN's
    assert table["face_id"].tolist()[-6:] == [0, 1, 2, 0, 1, 2]  # face 2: a track shorter than the window
    assert table.notna().all().all()  # every face row is predicted, a track's first frames too
    assert not np.allclose(table["AU1_prob"], by_cnn["AU1_prob"])

    # Change the right face (id 1) in frame 5 only: its rows 5-8 change (their windows of 4 hold frame 5),
    # no other row does - neither its earlier nor its later rows, nor any row of the left face.
    changed = [frame.copy() for frame in frames]
    changed[5][:, 100:] = np.random.default_rng(3).integers(0, 255, (64, 60, 3), dtype=np.uint8)
    with pytest.warns(SyntheticModelWarning):
        other = predict_table(write_frames(tmp_path / "c", changed), sequence,
                              detector=TwoFaces(changed, third=(10, 11)), **options)  # fmt: skip
    probabilities = [c for c in table.columns if c.endswith("_prob")] + ["valence", "arousal"]
    same = np.isclose(table[probabilities].to_numpy(float), other[probabilities].to_numpy(float))
    differs = ~same.all(axis=1)
    expected = (table["face_id"] == 1) & table["frame"].between(5, 5 + LENGTH - 1)
    assert differs.tolist() == expected.tolist()


def test_run_py_predict_with_the_cnn_gru_on_a_video_of_two_faces(table2_run, tmp_path, monkeypatch, capsys):
    config_path, config = table2_run
    model = exported_sequence(config_path, config)
    frames = [np.repeat(np.repeat(frame[::8, ::8], 8, axis=0), 8, axis=1) for frame in two_face_frames(
        np.random.default_rng(4), count=8)]  # fmt: skip  # coarse blocks survive video compression
    video = tmp_path / "two.mp4"
    with av.open(str(video), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt, stream.bit_rate = 160, 64, "yuv420p", 2_000_000
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    monkeypatch.setattr(prediction, "MTCNNDetector", lambda **_: TwoFaces(frames))
    monkeypatch.chdir(tmp_path)
    assert run.main(["predict", "--model", str(model), "--source", str(video), "--device", "cpu"]) == 0
    assert "2 face(s) tracked; a face in 8 of 8 frame(s)" in capsys.readouterr().out
    table = pd.read_csv(tmp_path / "predict" / "two" / "predictions.csv")
    assert table["frame"].tolist() == [f for f in range(8) for _ in (0, 1)]
    assert table["face_id"].tolist() == [0, 1] * 8 and table["valence"].notna().all()


def test_cnn_gru_export_errors_say_what_to_run(table2_run, tmp_path, capsys):
    config_path, config = table2_run
    argv = ["export", "--config", str(config_path), "--sequence-length"]
    table2 = config.run_dir / "table2"
    assert run.main([*argv, "16"]) == 2  # table2 ran for 4 only
    error = capsys.readouterr().err
    assert f"{table2 / 'length_16'} does not exist" in error and "(it has for [4])" in error
    assert "run `run.py table2` with 16 in experiments.sequence_lengths" in error and error.count("\n") == 1

    (table2 / "DONE.json").unlink()
    assert run.main([*argv, "4"]) == 2
    assert "holds an unfinished table2: run `run.py table2`" in capsys.readouterr().err
    write_json(table2 / "DONE.json", {"id": "t2", "inputs": {"teacher": "an earlier teacher"}})
    assert run.main([*argv, "4"]) == 2
    assert "was made from another teacher" in capsys.readouterr().err
    write_json(table2 / "DONE.json", {"id": "t2", "inputs": {"teacher": "teacher"}})
    (table2 / "length_4" / "students" / "student_1" / "model.pt").write_bytes(b"damaged")
    assert run.main([*argv, "4"]) == 2
    assert "student_1/model.pt cannot be read" in capsys.readouterr().err

    import shutil

    shutil.rmtree(table2)  # table2 never ran
    assert run.main([*argv, "4"]) == 2
    error = capsys.readouterr().err
    assert f"{table2 / 'length_4'} does not exist: table2 has not run for sequence length 4" in error
    assert "(it has for none)" in error


def test_cnn_gru_model_file_errors_name_the_file(table2_run, tmp_path):
    config_path, config = table2_run
    path = exported_sequence(config_path, config)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:3000])
    cases = [
        (truncated, r"model file .*truncated\.pt is unreadable"),
        (
            resave(path, lambda s: s["metadata"]["architecture"].pop("sequence_length"), "nolength.pt"),
            r"nolength\.pt: .* no 'sequence_length'",
        ),
        (
            resave(path, lambda s: s["metadata"]["architecture"].update(model="Transformer"), "kind.pt"),
            r"kind\.pt: its architecture 'Transformer' is unknown",
        ),
        (
            resave(path, lambda s: s["metadata"]["architecture"].update(rnn_hidden=5), "rnn.pt"),
            r"rnn\.pt is damaged: member 0 does not fit its architecture",
        ),
        (
            resave(path, lambda s: s["metadata"]["architecture"].update(sequence_length=0), "zero.pt"),
            r"zero\.pt is damaged: sequence_length must be >= 1",
        ),
    ]
    for bad, message in cases:
        with pytest.raises(ModelFileError, match=message) as error:
            load_model_file(bad)
        assert "\n" not in str(error.value), bad
