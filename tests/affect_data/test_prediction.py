"""affect_data.prediction: the per-face, per-frame prediction table of a video or folder of images, the
ensemble of multitask models behind it, the CNN-GRU's sliding windows, the plot and the overlay video.

Rendered synthetic faces (tests/rendered_faces.py, tests/conftest.py) and detectors that know where they are
test the pipeline exactly; small torch models stand in for trained ones. ``run.py predict`` (the emotion
example's command line over this module) is tested in tests/examples/test_predict.py.
"""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from rendered_faces import BLANK, FPS, HEIGHT, NUM_FRAMES, SCENE, WIDTH, KnownFaces, TrueFaces, five_points
from torch import nn

from affect_data import prediction
from affect_data.faces import align_crop
from affect_data.prediction import (
    as_ensemble,
    counts,
    ensemble_predict,
    plot_predictions,
    predict_table,
    predict_video,
    prediction_columns,
    sequence_length,
    sequence_predictions,
    sliding_windows,
    synthetic_warning,
)
from affect_data.schema import AU_NAMES, EXPR_NAMES
from affect_data.video import FrameReader, write_overlay_video
from mtl_distill import Ensemble, MultiClassTask

av = pytest.importorskip("av", reason="PyAV decodes the videos")

torch.set_num_threads(1)


class Constant(nn.Module):
    """A model with fixed logits, for exact checks of the averaging."""

    def __init__(self, au, expr, va):
        super().__init__()
        self.logits = {"AU": torch.tensor(au), "EXPR": torch.tensor(expr), "VA": torch.tensor(va)}

    def forward(self, images):
        return {task: value.float().expand(len(images), -1) for task, value in self.logits.items()}


class Features(nn.Module):
    """A small per-frame CNN: images ``[B, 3, S, S]`` -> features ``[B, 16]``."""

    def __init__(self, hidden=16):
        super().__init__()
        convolution = nn.Conv2d(3, hidden, 3, stride=2)
        self.layers = nn.Sequential(convolution, nn.BatchNorm2d(hidden), nn.ReLU(), nn.AdaptiveAvgPool2d(1))

    def forward(self, images):
        return self.layers(images).flatten(1)


class TinyMultitask(nn.Module):
    """Stands in for a trained multitask model: images -> ``AU`` [B, 8], ``EXPR`` [B, 7], ``VA`` [B, 40]."""

    def __init__(self, hidden=16):
        super().__init__()
        self.body = Features(hidden)
        self.heads = nn.ModuleDict(
            {"AU": nn.Linear(hidden, 8), "EXPR": nn.Linear(hidden, 7), "VA": nn.Linear(hidden, 40)}
        )

    def forward(self, images):
        features = self.body(images)
        return {task: head(features) for task, head in self.heads.items()}


class Windowed(nn.Module):
    """A SlidingWindowModel: a GRU over windows of the features of a per-frame network ``cnn`` (shared)."""

    def __init__(self, cnn, sequence_length, hidden=8):
        super().__init__()
        self.cnn, self.sequence_length = cnn, sequence_length  # cnn: a registered submodule
        self.gru = nn.GRU(16, hidden, batch_first=True)
        self.heads = nn.ModuleDict(
            {"AU": nn.Linear(hidden, 8), "EXPR": nn.Linear(hidden, 7), "VA": nn.Linear(hidden, 40)}
        )

    def features(self, images):
        return self.cnn(images)

    def forward(self, windows):
        sequence, _ = self.gru(windows)
        return {task: head(sequence).flatten(0, 1) for task, head in self.heads.items()}


@pytest.fixture(scope="module")
def tiny_models():
    torch.manual_seed(0)
    return [TinyMultitask().eval() for _ in range(2)]


# --- the ensemble -------------------------------------------------------------------------------------------


def test_ensemble_averages_probabilities_and_expected_values():
    va_low = [10.0 if k == 0 else 0.0 for k in range(20)]  # nearly all mass on bin 0 (centre -0.95)
    va_high = [10.0 if k == 19 else 0.0 for k in range(20)]  # bin 19 (centre 0.95)
    first = Constant([0.0] * 8, [0.0] * 7, va_low + va_high)
    second = Constant([50.0] * 8, [50.0] + [0.0] * 6, va_high + va_low)
    out = ensemble_predict([first, second], torch.zeros(2, 3, 8, 8))
    np.testing.assert_allclose(out["AU"], 0.75)
    np.testing.assert_allclose(out["EXPR"][0], [(1 / 7 + 1) / 2] + [1 / 14] * 6, atol=1e-9)
    np.testing.assert_allclose(out["VA"], 0.0, atol=1e-3)
    alone = ensemble_predict([first], torch.zeros(1, 3, 8, 8))["VA"]
    assert alone[0, 0] < -0.94 and alone[0, 1] > 0.94  # valence from the first 20 logits

    class Wrong(nn.Module):
        def forward(self, images):
            return {"AU": torch.zeros(len(images), 12), "EXPR": torch.zeros(len(images), 7)}

    with pytest.raises(ValueError, match=r"'AU' logits of shape \(2, 8\)"):
        ensemble_predict([Wrong()], torch.zeros(2, 3, 8, 8))


def test_thresholds_are_8_numbers_or_none(tiny_models):
    values = np.linspace(0.2, 0.9, 8)
    np.testing.assert_allclose(as_ensemble(tiny_models, values).thresholds["AU"], values)
    np.testing.assert_allclose(as_ensemble(tiny_models, values.tolist()).thresholds["AU"], values)
    np.testing.assert_allclose(as_ensemble(tiny_models).thresholds["AU"], 0.5)
    for wrong in ([0.5, 1.5] * 4, [0.5] * 7):
        with pytest.raises(ValueError, match=r"thresholds\['AU'\] must be 8 values in \[0, 1\]"):
            as_ensemble(tiny_models, wrong)


def test_ensemble_and_plot_errors_name_the_values(tiny_models, tmp_path):
    from mtl_distill import Ensemble

    ensemble = as_ensemble(tiny_models, [0.4] * 8)
    assert isinstance(ensemble, Ensemble) and as_ensemble(ensemble) is ensemble
    with pytest.raises(ValueError, match="brings its own AU thresholds"):
        as_ensemble(ensemble, [0.5] * 8)
    with pytest.raises(ValueError, match="at least one model"):
        as_ensemble([])
    rows = pd.DataFrame({"frame": [0], "time_s": [0.0], "face_id": pd.array([3], dtype="Int64")})
    with pytest.raises(ValueError, match=r"no face 7 in the table; its faces are \[3\]"):
        plot_predictions(rows, tmp_path / "p.png", face_id=7)


def test_the_synthetic_warning_is_for_synthetic_models_only():
    assert "only seen synthetic faces" in synthetic_warning({"trained_on": "synthetic"})
    assert synthetic_warning({"trained_on": "real"}) is None and synthetic_warning(None) is None


def test_an_ensemble_of_other_tasks_is_named():
    au, _, va = prediction.abaw_tasks()
    eight_classes = Ensemble([nn.Identity()], [au, MultiClassTask("EXPR", num_classes=8), va])
    with pytest.raises(ValueError, match=r"tasks must include .*'EXPR': 'MultiClassTask\(7\)'.* got .*\(8\)"):
        as_ensemble(eight_classes)
    coarse = Ensemble([nn.Identity()], prediction.abaw_tasks(va_bins=10))  # any number of VA bins will do
    assert as_ensemble(coarse) is coarse


# --- the table ----------------------------------------------------------------------------------------------


def test_crops_reach_the_models_as_training_crops_do(clip, tmp_path):
    # Training reads a crop file with affect_data's load_image at 1.2 x image_size, then the eval view.
    from affect_data.transforms import FrameTransform, load_image

    crop = align_crop(clip[0][0], five_points(clip[1][0]), size=112)
    Image.fromarray(crop).save(tmp_path / "crop.png")
    transform = FrameTransform(size=64, train=False)
    expected = transform(load_image(tmp_path / "crop.png", transform.input_size))
    actual = transform(prediction._model_view(crop, transform.input_size))
    torch.testing.assert_close(actual, expected)


def test_predict_video_writes_one_row_per_frame(video, clip, tiny_models, tmp_path):
    thresholds = np.linspace(0.3, 0.7, 8)
    table = predict_video(
        video,
        tiny_models,
        thresholds,
        tmp_path / "out",
        image_size=32,
        detector=KnownFaces(clip),
        batch_size=4,
        save_crops=True,
        progress=False,
    )
    assert list(table.columns) == prediction_columns()
    assert table["frame"].tolist() == list(range(NUM_FRAMES))  # the less confident decoy face is dropped
    assert table["face_found"].tolist() == [i not in BLANK for i in range(NUM_FRAMES)]
    assert table["face_id"].tolist() == [pd.NA if i in BLANK else 0 for i in range(NUM_FRAMES)]  # 0.4 s gap
    face, blank = table[table["face_found"]], table[~table["face_found"]]
    predicted = [c for c in prediction_columns() if c not in ("frame", "time_s", "face_found", "face_id")]
    assert blank[predicted].isna().all().all()  # never filled in
    assert face[predicted].notna().all().all()
    probs = face[[f"{au}_prob" for au in AU_NAMES]].to_numpy()
    np.testing.assert_array_equal(face[list(AU_NAMES)].to_numpy(dtype=int), probs >= thresholds)
    expr_probs = face[[f"{name}_prob" for name in EXPR_NAMES]].to_numpy()
    np.testing.assert_allclose(expr_probs.sum(axis=1), 1.0, rtol=1e-6)  # float32 softmax
    assert face["expr"].tolist() == expr_probs.argmax(axis=1).tolist()
    assert face["expr_name"].tolist() == [EXPR_NAMES[i] for i in expr_probs.argmax(axis=1)]
    assert face[["valence", "arousal"]].abs().le(1).all().all()

    # The CSV holds the same table; empty cells where no face was found.
    saved = pd.read_csv(table.attrs["csv"])
    assert list(saved.columns) == prediction_columns() and len(saved) == NUM_FRAMES
    assert saved.loc[list(BLANK), predicted].isna().all().all()
    np.testing.assert_allclose(saved["valence"], table["valence"].astype(float), rtol=1e-5, atol=1e-6)
    assert Path(table.attrs["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "out" / "crops").iterdir()) == [
        f"{i:06d}_0.jpg" for i in range(NUM_FRAMES) if i not in BLANK
    ]

    # The ensemble is the mean of its members, and the models keep their mode.
    tiny_models[1].train()
    single = predict_video(
        video,
        tiny_models[:1],
        thresholds,
        tmp_path / "one",
        image_size=32,
        detector=KnownFaces(clip),
        plot=False,
        progress=False,
    )
    assert tiny_models[1].training
    tiny_models[1].eval()
    assert not np.allclose(single["AU1_prob"].dropna(), face["AU1_prob"])


def test_folder_input_and_68_point_detectors(image_folder, clip, tiny_models, tmp_path):
    table = predict_video(
        image_folder,
        tiny_models[0],
        None,
        tmp_path,
        image_size=32,
        every=2,
        image_fps=5,
        detector=KnownFaces(clip, points=68),
        progress=False,
    )
    assert list(table.columns) == prediction_columns(folder=True)
    assert table["frame"].tolist() == list(range(0, NUM_FRAMES, 2))
    assert table["file"].tolist() == [f"img_{i + 1}.png" for i in range(0, NUM_FRAMES, 2)]
    assert not table["unreadable"].any()
    np.testing.assert_allclose(table["time_s"], np.arange(0, NUM_FRAMES, 2) / 5)
    assert table["face_found"].tolist() == [i not in BLANK for i in range(0, NUM_FRAMES, 2)]
    found = table[table["face_found"]]
    np.testing.assert_array_equal(
        found[list(AU_NAMES)].to_numpy(dtype=int), found[[f"{a}_prob" for a in AU_NAMES]] >= 0.5
    )


def test_errors_name_the_source(tmp_path, tiny_models, clip):
    with pytest.raises(FileNotFoundError, match=r"nothing.mp4"):
        predict_video(tmp_path / "nothing.mp4", tiny_models, None, tmp_path, detector=KnownFaces(clip))
    corrupt = tmp_path / "broken.avi"
    corrupt.write_bytes(b"RIFF" + bytes(3000))
    with pytest.raises(ValueError, match=r"broken.avi"):
        predict_video(corrupt, tiny_models, None, tmp_path, detector=KnownFaces(clip))


def test_every_face_gets_a_row_and_keeps_its_id_while_in_view(two_faces, tiny_models):
    path, frames, marks = two_faces
    table = predict_table(
        path,
        tiny_models,
        None,
        image_size=32,
        detector=TrueFaces(frames, marks),
        track_gap_s=0.5,
        progress=False,
    )
    # A is face 0 (on the left in frame 0), B face 1; A's return after 0.8 s is a new face, 2.
    expected = {"AB": [0, 1], "B": [1], "": [pd.NA]}
    rows = [(i, face_id) for i, present in enumerate(SCENE) for face_id in expected[present]]
    rows[-2:] = [(19, 1), (19, 2)]
    assert list(zip(table["frame"], table["face_id"], strict=True)) == rows
    assert table["face_found"].tolist() == [face_id is not pd.NA for _, face_id in rows]
    np.testing.assert_allclose(table["time_s"], [i / FPS for i, _ in rows], atol=1e-6)
    # Boxes are the detector's, and each face's predictions are its own.
    a_box = np.concatenate([marks[0][0].min(axis=0), marks[0][0].max(axis=0)])
    np.testing.assert_allclose(table.loc[0, ["box_left", "box_top", "box_right", "box_bottom"]], a_box)
    blank = table[~table["face_found"]]
    assert blank["AU1_prob"].isna().all() and blank["expr"].isna().all() and blank["box_left"].isna().all()
    assert table.loc[0, "AU1_prob"] != table.loc[1, "AU1_prob"]
    assert table.attrs["faces"] == 3
    assert counts(table) == {
        "frames": 20,
        "frames_with_face": 17,
        "face_rows": 28,
        "faces": 3,
        "unreadable": 0,
    }


def test_an_unreadable_image_is_a_flagged_row_and_the_rest_is_predicted(
    image_folder, clip, tiny_models, tmp_path
):
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("img_1.png", "img_2.png", "img_4.png"):
        (folder / name).write_bytes((image_folder / name).read_bytes())
    (folder / "img_3.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    table = predict_video(folder, tiny_models, None, tmp_path / "out", image_size=32,
                          detector=KnownFaces(clip), progress=False)  # fmt: skip
    assert table["file"].tolist() == ["img_1.png", "img_2.png", "img_3.png", "img_4.png"]
    assert table["unreadable"].tolist() == [False, False, True, False]
    assert table["face_found"].tolist() == [True, True, False, True]
    assert table.loc[2, "AU1_prob"] != table.loc[2, "AU1_prob"]  # NaN: nothing predicted
    assert table.attrs["unreadable"] == 1
    assert counts(table)["unreadable"] == 1
    saved = pd.read_csv(table.attrs["csv"])
    assert saved["unreadable"].tolist() == [False, False, True, False]
    with pytest.raises(ValueError, match=r"img_3.png"):
        list(FrameReader(folder))  # reading alone still stops at it, by default
    with pytest.raises(ValueError, match="unreadable must be"):
        FrameReader(folder, unreadable="skip")


def test_video_out_draws_each_face_on_every_frame(video, clip, image_folder, tiny_models, tmp_path):
    options = {"image_size": 32, "detector": KnownFaces(clip), "every": 2, "progress": False}
    table = predict_video(video, tiny_models, None, tmp_path, video_out=tmp_path / "drawn.mp4", **options)
    assert table.attrs["video"] == str(tmp_path / "drawn.mp4")
    assert json.loads((tmp_path / "predictions.json").read_text())["files"]["video"] == table.attrs["video"]
    with av.open(str(tmp_path / "drawn.mp4")) as container:
        drawn = [frame.to_ndarray(format="rgb24").astype(float) for frame in container.decode(video=0)]
    assert len(drawn) == NUM_FRAMES and drawn[0].shape == (HEIGHT, WIDTH, 3)  # every frame, not every 2nd
    face = table[table["face_found"]].iloc[0]
    left, top, right = (int(face[name]) for name in ("box_left", "box_top", "box_right"))
    source = [frame.image.astype(float) for frame in FrameReader(video)]
    for index in (0, 1):  # predicted, and held from frame 0 on the frame between
        edge = np.abs(
            drawn[index][top - 1 : top + 2, left:right] - source[index][top - 1 : top + 2, left:right]
        )
        assert edge.mean() > 40, index
    for index in (6, 7):  # no face on frame 6, so none drawn there nor on frame 7
        assert np.abs(drawn[index] - source[index]).mean() < 3, index
    with pytest.raises(ValueError, match=r"video_out needs a video source; .* is a folder of images"):
        predict_video(image_folder, tiny_models, None, tmp_path, video_out=tmp_path / "x.mp4", **options)


def test_the_readme_example_runs(video, tmp_path, monkeypatch, capsys):
    readme = (Path(__file__).parents[2] / "packages" / "affect_data" / "README.md").read_text()
    section = readme[readme.index("### Predictions for every face") :].split("\n### ", 1)[0]
    (block,) = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "interview.mp4").write_bytes(video.read_bytes())  # the rendered clip, at 10 frames/s
    exec(compile(block, "packages/affect_data/README.md", "exec"), {})
    written = sorted(path.name for path in (tmp_path / "predictions").iterdir())
    assert written == ["predictions.csv", "predictions.json", "predictions.png"]
    assert f"'frames': {NUM_FRAMES}," in capsys.readouterr().out


def test_the_overlay_needs_a_video(image_folder, tmp_path):
    with pytest.raises(ValueError, match=r"an overlay video needs a video source; .* is a folder of images"):
        write_overlay_video(image_folder, pd.DataFrame(columns=prediction_columns()), tmp_path / "x.mp4")
    assert not (tmp_path / "x.mp4").exists()


# --- the CNN-GRU: sliding windows over each face track -----------------------------------------------------


def test_sliding_windows_stay_in_their_track_and_pad_its_first_rows():
    tracks = np.array([0, 1, 0, 0, 1, 0, 2])
    rows, positions = sliding_windows(tracks, length=3)
    assert rows.tolist() == [[0, 0, 0], [1, 1, 1], [0, 2, 2], [0, 2, 3], [1, 4, 4], [2, 3, 5], [6, 6, 6]]
    assert positions.tolist() == [0, 0, 1, 2, 1, 2, 0]
    assert (tracks[rows] == tracks[:, None]).all()  # a window never holds another track's row
    assert (rows.max(axis=1) == np.arange(len(tracks))).all()  # nor a later row


def test_a_cnn_gru_ensemble_has_one_cnn_and_one_window_length(tiny_models):
    cnn = Features()
    members = [Windowed(cnn, 4) for _ in range(2)]
    assert sequence_length(as_ensemble(members)) == 4 and sequence_length(as_ensemble(tiny_models)) is None
    other_cnn = Windowed(Features(), 4)
    for wrong in ([members[0], tiny_models[0]], [members[0], Windowed(cnn, 8)], [members[0], other_cnn]):
        with pytest.raises(ValueError, match="a CNN-GRU ensemble needs SlidingWindowModel members only"):
            sequence_length(as_ensemble(wrong))


def test_a_cnn_gru_predicts_each_face_from_its_own_rows_only(two_faces):
    path, frames, marks = two_faces
    torch.manual_seed(1)
    cnn = Features()
    members = [Windowed(cnn, 3).eval() for _ in range(2)]
    options = {"image_size": 32, "track_gap_s": 0.5, "batch_size": 4, "progress": False}
    table = predict_table(path, members, None, detector=TrueFaces(frames, marks), **options)
    probabilities = [f"{au}_prob" for au in AU_NAMES] + [f"{name}_prob" for name in EXPR_NAMES]
    assert table.loc[table["face_found"], probabilities].notna().all().all()  # every face row is predicted
    # Face B (id 1) alone in the video: the same crops, the same windows, the same predictions.
    only_b = [
        [m[present.index("B")]] if "B" in present else [] for present, m in zip(SCENE, marks, strict=True)
    ]
    alone = predict_table(path, members, None, detector=TrueFaces(frames, only_b), **options)
    b = table[table["face_id"] == 1]
    assert b["frame"].tolist() == alone.loc[alone["face_found"], "frame"].tolist()
    np.testing.assert_allclose(
        b[probabilities].to_numpy(), alone.loc[alone["face_found"], probabilities].to_numpy(), atol=1e-5
    )


def test_window_errors_name_the_values():
    with pytest.raises(ValueError, match="length must be a positive integer, got 0"):
        sliding_windows(np.zeros(3), 0)
    ensemble = as_ensemble([Windowed(Features(), 2)])
    with pytest.raises(ValueError, match="2 rows of features for 3 tracks"):
        sequence_predictions(ensemble, torch.zeros(2, 16), np.zeros(3))
