"""Prediction on a user's own video (examples/emotion/video.py and predict.py).

A small video and a folder of images are made from rendered synthetic faces plus blank frames; an injected
detector that knows where the rendered faces are tests the pipeline exactly, and the real MTCNN runs on the
same video.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn

av = pytest.importorskip("av", reason="PyAV decodes the videos")

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

from emotion import predict as predict_module  # noqa: E402
from emotion.models import MultitaskCNN  # noqa: E402
from emotion.predict import (  # noqa: E402
    ensemble_predict,
    load_models,
    predict_video,
    prediction_columns,
    read_thresholds,
)
from emotion.video import (  # noqa: E402
    Face,
    Frame,
    FrameReader,
    MTCNNDetector,
    align_crop,
    detect_faces,
    face_transform,
)

from affect_data.faces import alignment_transform, eye_centers  # noqa: E402
from affect_data.schema import AU_NAMES, EXPR_NAMES  # noqa: E402
from affect_data.synthetic import FrameRenderer, Pose, sample_identity  # noqa: E402

torch.set_num_threads(1)

WIDTH, HEIGHT, FPS = 192, 144, 10
#: Frames 6, 7 and 8 are blank (no face); the others show one rendered face.
BLANK = (6, 7, 8)
NUM_FRAMES = 12


def five_points(landmarks68: np.ndarray) -> np.ndarray:
    """MTCNN's 5 points from 68 landmarks: eye centres, nose tip, mouth corners."""
    left, right = eye_centers(landmarks68)
    return np.stack([left, right, landmarks68[30], landmarks68[48], landmarks68[54]])


@pytest.fixture(scope="module")
def clip():
    """Rendered frames (RGB uint8) and the 68 landmarks of each face frame (None for blank frames)."""
    rng = np.random.default_rng(7)
    person = sample_identity(rng)
    renderer = FrameRenderer(WIDTH, HEIGHT, person, rng)
    frames, marks = [], []
    for i in range(NUM_FRAMES):
        if i in BLANK:
            frames.append(np.full((HEIGHT, WIDTH, 3), (90, 120, 150), dtype=np.uint8))
            marks.append(None)
            continue
        intensities = np.array([0, 0, 0, 3, 4, 0, 0, 2.0]) * (i / NUM_FRAMES)
        pose = Pose(cx=90 + 2 * i, cy=76, scale=30, angle=-10 + 2 * i)
        image, (landmarks,) = renderer.render([(person, intensities, pose)])
        frames.append(image)
        marks.append(landmarks)
    return frames, marks


def write_video(path: Path, frames, fps=FPS, rotation=None) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = 4_000_000
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def video(clip, tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4", clip[0])


@pytest.fixture(scope="module")
def image_folder(clip, tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    for i, image in enumerate(clip[0]):
        Image.fromarray(image).save(folder / f"img_{i + 1}.png")  # img_1 ... img_12: natural order
    (folder / "notes.txt").write_text("not an image")
    return folder


class KnownFaces:
    """A detector that recognises each rendered frame (closest original) and returns its true landmarks."""

    def __init__(self, clip, points=5):
        self.frames, self.marks = clip
        self.points = points
        self.calls = 0

    def detect(self, images):
        self.calls += 1
        results = []
        for image in images:
            errors = [np.abs(image.astype(float) - frame).mean() for frame in self.frames]
            landmarks = self.marks[int(np.argmin(errors))]
            if landmarks is None:
                results.append([])
                continue
            box = np.concatenate([landmarks.min(axis=0), landmarks.max(axis=0)])
            points = five_points(landmarks) if self.points == 5 else landmarks
            small = Face(box / 2 + 1, 0.7, points / 2 + 1)  # a smaller, less confident decoy face
            results.append([small, Face(box, 0.95, points)])
        return results


class Constant(nn.Module):
    """A model with fixed logits, for exact checks of the averaging."""

    def __init__(self, au, expr, va):
        super().__init__()
        self.logits = {"AU": torch.tensor(au), "EXPR": torch.tensor(expr), "VA": torch.tensor(va)}

    def forward(self, images):
        return {task: value.float().expand(len(images), -1) for task, value in self.logits.items()}


@pytest.fixture(scope="module")
def tiny_models():
    torch.manual_seed(0)
    return [MultitaskCNN("resnet_tiny", hidden=16).eval() for _ in range(2)]


# --- decoding ---------------------------------------------------------------------------------------------


def test_video_frames_have_indices_times_and_pixels(video, clip):
    reader = FrameReader(video)
    frames = list(reader)
    assert len(reader) == NUM_FRAMES == len(frames)
    assert [f.index for f in frames] == list(range(NUM_FRAMES))
    np.testing.assert_allclose([f.time for f in frames], np.arange(NUM_FRAMES) / FPS, atol=1e-6)
    assert frames[0].image.shape == (HEIGHT, WIDTH, 3) and frames[0].image.dtype == np.uint8
    assert np.abs(frames[3].image.astype(float) - clip[0][3]).mean() < 6  # decoded close to what was encoded


def test_subsampling_every_and_fps(video):
    assert [f.index for f in FrameReader(video, every=5)] == [0, 5, 10]
    kept = list(FrameReader(video, fps=4))  # 10 fps video, 4 per second: one frame per 0.25 s slot
    assert [f.index for f in kept] == [0, 3, 5, 8, 10]
    with pytest.raises(ValueError, match="either every"):
        FrameReader(video, every=2, fps=4)
    with pytest.raises(ValueError, match="every must be"):
        FrameReader(video, every=0)


def test_folder_of_images_in_natural_order(image_folder, clip):
    reader = FrameReader(image_folder, image_fps=5)
    assert [p.name for p in reader.images][:3] == ["img_1.png", "img_2.png", "img_3.png"]
    frames = list(reader)
    assert len(frames) == NUM_FRAMES and frames[-1].time == pytest.approx(11 / 5)
    np.testing.assert_array_equal(frames[11].image, clip[0][11])


def test_rotated_video_is_turned_upright(clip, tmp_path):
    frame = clip[0][0]
    path = tmp_path / "phone.mp4"
    try:
        write_video(path, [frame] * 2, rotation=90)
    except AttributeError:
        pytest.skip("this PyAV cannot write a display rotation")
    decoded = next(iter(FrameReader(path))).image
    assert decoded.shape == (WIDTH, HEIGHT, 3)
    # A 90 degree counter-clockwise display rotation: the frame's top row becomes the left column.
    assert np.abs(decoded.astype(float) - np.rot90(frame)).mean() < 8


def test_clear_errors_for_bad_sources(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing.mp4"):
        FrameReader(tmp_path / "missing.mp4")
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(ValueError, match=r"corrupt.mp4"):
        FrameReader(corrupt)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")
    with pytest.raises(ValueError, match="holds no images"):
        FrameReader(empty)
    broken_images = tmp_path / "broken"
    broken_images.mkdir()
    (broken_images / "0001.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=r"0001.jpg"):
        list(FrameReader(broken_images))


# --- alignment ----------------------------------------------------------------------------------------------


def test_five_point_crop_levels_the_eyes_with_the_training_margin(clip):
    marks = clip[1][0]  # rendered with a -10 degree roll
    five = five_points(marks)
    matrix = face_transform(five, size=112)
    inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))
    eyes = (inverse @ np.column_stack([five[:2], [1, 1]]).T)[:2].T
    assert abs(eyes[0, 1] - eyes[1, 1]) < 1e-9  # level
    assert eyes[0, 0] < eyes[1, 0]
    # Same convention as affect_data.faces.align_face on the 68 landmarks: similar centre and size.
    reference = alignment_transform(marks, size=112, margin=0.25)
    centre, reference_centre = matrix @ [56, 56, 1], reference @ [56, 56, 1]
    side, reference_side = (np.sqrt(abs(np.linalg.det(m[:, :2]))) * 112 for m in (matrix, reference))
    assert abs(side / reference_side - 1) < 0.15
    assert np.linalg.norm(centre - reference_centre) < 0.08 * reference_side
    # 68 landmarks go through affect_data.faces unchanged.
    np.testing.assert_array_equal(face_transform(marks, 112), reference)


def test_large_faces_are_shrunk_before_sampling_without_moving_them():
    yy, xx = np.mgrid[0:900, 0:1000]
    smooth = np.stack([xx * 0.25, yy * 0.28, (xx + yy) * 0.13], axis=-1) % 256
    image = smooth.astype(np.uint8)
    before = image.copy()
    points = np.array([[400, 380], [600, 400], [500, 500], [420, 600], [580, 610]], dtype=float)
    crop = align_crop(image, points, size=64)  # ~10 source pixels per crop pixel: shrunk first
    np.testing.assert_array_equal(image, before)  # the input is untouched
    direct = Image.fromarray(image).transform(
        (64, 64), Image.Transform.AFFINE, tuple(face_transform(points, 64).ravel()), Image.Resampling.BILINEAR
    )
    assert np.abs(crop.astype(float) - np.asarray(direct, dtype=float)).mean() < 2.0


def test_align_crop_takes_pil_images_of_any_mode_and_leaves_them_untouched(clip):
    image, points = clip[0][0], five_points(clip[1][0])
    expected = align_crop(image, points, size=48)
    rgb = Image.fromarray(image)
    np.testing.assert_array_equal(align_crop(rgb, points, size=48), expected)
    assert rgb.mode == "RGB" and np.array_equal(np.asarray(rgb), image)
    rgba = rgb.convert("RGBA")
    np.testing.assert_array_equal(align_crop(rgba, points, size=48), expected)
    assert rgba.mode == "RGBA"
    gray = align_crop(rgb.convert("L"), points, size=48)
    assert gray.shape == (48, 48, 3) and (gray[..., 0] == gray[..., 2]).all()


def test_detect_faces_keeps_one_face_per_frame(clip):
    frames = [Frame(i, i / FPS, image) for i, image in enumerate(clip[0])]
    largest = list(detect_faces(frames, KnownFaces(clip), size=48, batch_size=5))
    assert [d.face is not None for d in largest] == [i not in BLANK for i in range(NUM_FRAMES)]
    assert all(d.face.score == 0.95 and d.crop.shape == (48, 48, 3) for d in largest if d.face)
    assert all(d.crop is None for d in largest if d.face is None)
    confident = list(detect_faces(frames, KnownFaces(clip), select="confident"))
    assert all(d.face.score == 0.95 for d in confident if d.face)
    with pytest.raises(ValueError, match="select"):
        list(detect_faces(frames, KnownFaces(clip), select="first"))


# --- prediction ---------------------------------------------------------------------------------------------


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


def test_crops_reach_the_models_as_training_crops_do(clip, tmp_path):
    # Training reads a crop file with affect_data's load_image at 1.2 x image_size, then the eval view.
    from affect_data.transforms import FrameTransform, load_image

    crop = align_crop(clip[0][0], five_points(clip[1][0]), size=112)
    Image.fromarray(crop).save(tmp_path / "crop.png")
    transform = FrameTransform(size=64, train=False)
    expected = transform(load_image(tmp_path / "crop.png", transform.input_size))
    actual = transform(predict_module._model_view(crop, transform.input_size))
    torch.testing.assert_close(actual, expected)


def test_thresholds_in_every_accepted_form(tmp_path):
    values = np.linspace(0.2, 0.9, 8)
    by_name = dict(zip(AU_NAMES, values.tolist(), strict=True))
    np.testing.assert_allclose(read_thresholds(values), values)
    np.testing.assert_allclose(read_thresholds(by_name), values)
    path = tmp_path / "thresholds.json"
    path.write_text(json.dumps({"teacher": dict.fromkeys(AU_NAMES, 0.5), "ensemble": by_name}))
    np.testing.assert_allclose(read_thresholds(path), values)
    np.testing.assert_allclose(read_thresholds(path, key="teacher"), 0.5)
    with pytest.raises(ValueError, match="no entry 'student_9'"):
        read_thresholds(path, key="student_9")
    with pytest.raises(ValueError, match="AU25"):
        read_thresholds({name: 0.5 for name in AU_NAMES[:-1]})
    with pytest.raises(ValueError, match="8 thresholds"):
        read_thresholds([0.5, 1.5] * 4)
    with pytest.raises(FileNotFoundError, match=r"nope.json"):
        read_thresholds(tmp_path / "nope.json")


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
    assert table["frame"].tolist() == list(range(NUM_FRAMES))
    assert table["face_found"].tolist() == [i not in BLANK for i in range(NUM_FRAMES)]
    face, blank = table[table["face_found"]], table[~table["face_found"]]
    predicted = [c for c in prediction_columns() if c not in ("frame", "time_s", "face_found")]
    assert blank[predicted].isna().all().all()  # never filled in
    assert face[predicted].notna().all().all()
    probs = face[[f"{au}_prob" for au in AU_NAMES]].to_numpy()
    np.testing.assert_array_equal(face[list(AU_NAMES)].to_numpy(dtype=int), probs >= thresholds)
    expr_probs = face[[f"{name}_prob" for name in EXPR_NAMES]].to_numpy()
    np.testing.assert_allclose(expr_probs.sum(axis=1), 1.0)
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
        f"{i:06d}.jpg" for i in range(NUM_FRAMES) if i not in BLANK
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
    assert table["frame"].tolist() == list(range(0, NUM_FRAMES, 2))
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


# --- the real detector and the command line ----------------------------------------------------------------


def test_mtcnn_finds_the_rendered_faces_and_not_the_blank_frames(video, clip):
    detector = MTCNNDetector(batch=True)  # the GPU's batched path, run on the CPU
    frames = list(FrameReader(video))
    found = detector.detect([f.image for f in frames])
    assert all(faces == [] for i, faces in enumerate(found) if i in BLANK)
    hits = [i for i, faces in enumerate(found) if faces]
    assert len(hits) >= 6  # of 9 face frames
    for i in hits:
        face = max(found[i], key=lambda f: f.area)
        truth = five_points(clip[1][i])
        assert np.abs(face.landmarks[:2] - truth[:2]).max() < 4  # eyes within a few pixels
    one_by_one = MTCNNDetector(batch=False, max_side=96).detect([frames[0].image])[0]  # shrunk, mapped back
    assert one_by_one and np.abs(one_by_one[0].landmarks[:2] - five_points(clip[1][0])[:2]).max() < 5


def test_command_line_predicts_with_saved_checkpoints(video, tmp_path, capsys):
    torch.manual_seed(1)
    paths = []
    for k in range(2):
        path = tmp_path / f"student_{k}.pt"
        torch.save({"model": MultitaskCNN("resnet_tiny").state_dict()}, path)
        paths.append(str(path))
    args = [str(video), "--models", *paths, "--backbone", "resnet_tiny", "--image-size", "32"]
    assert predict_module.main([*args, "--out", str(tmp_path / "out"), "--device", "cpu"]) == 0
    table = pd.read_csv(tmp_path / "out" / "predictions.csv")
    assert len(table) == NUM_FRAMES and not table.loc[list(BLANK), "face_found"].any()
    assert (tmp_path / "out" / "predictions.png").is_file()
    assert "a face in" in capsys.readouterr().out

    assert predict_module.main([*args[:-4], "--backbone", "resnet18", "--out", str(tmp_path / "x")]) == 2
    assert "does not fit the model" in capsys.readouterr().err
    assert predict_module.main(["missing.mp4", "--models", *paths, "--out", str(tmp_path / "y")]) == 2
    assert "missing.mp4" in capsys.readouterr().err


def test_command_line_writes_aligned_crops(video, tmp_path, capsys):
    from emotion import video as video_module

    assert video_module.main([str(video), "--out", str(tmp_path), "--every", "2", "--crop-size", "64"]) == 0
    faces = pd.read_csv(tmp_path / "faces.csv")
    assert faces["frame"].tolist() == list(range(0, NUM_FRAMES, 2))
    assert not faces.loc[faces["frame"].isin(BLANK), "face_found"].any()
    for name in faces.loc[faces["face_found"], "crop"]:
        assert Image.open(tmp_path / name).size == (64, 64)
    assert "a face in" in capsys.readouterr().out
    assert video_module.main([str(tmp_path / "none.mp4"), "--out", str(tmp_path)]) == 2
    assert "none.mp4" in capsys.readouterr().err


def test_load_models_rejects_missing_checkpoints(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"absent.pt"):
        load_models([tmp_path / "absent.pt"], lambda: MultitaskCNN("resnet_tiny"))


def test_a_runs_ensemble_that_does_not_fit_its_config_is_named(tmp_path):
    import yaml
    from emotion.config import load_config
    from emotion.inference import load_ensemble
    from emotion.pipeline import StageError, write_json

    data = yaml.safe_load((ROOT / "examples" / "emotion" / "configs" / "tiny.yaml").read_text())
    data["run_root"] = str(tmp_path)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(data))
    config = load_config(tmp_path / "tiny.yaml", check_paths=False)
    with pytest.raises(StageError, match="no evaluate stage"):
        load_ensemble(config)
    write_json(config.run_dir / "evaluate" / "DONE.json", {"id": "x"})
    teacher = config.run_dir / "teacher" / "model.pt"
    teacher.parent.mkdir(parents=True)
    torch.save(MultitaskCNN("resnet_tiny", hidden=data["model"]["hidden"]).state_dict(), teacher)
    models, key = load_ensemble(config)  # no students: the teacher alone
    assert (len(models), key) == (1, "teacher") and not models[0].training
    torch.save(MultitaskCNN("resnet_tiny", hidden=2 * data["model"]["hidden"]).state_dict(), teacher)
    with pytest.raises(ValueError, match=r"teacher.model\.pt.*does not fit the model"):
        load_ensemble(config)
