"""Prediction on a user's own video (examples/emotion/predict.py) and the face finding it stands on
(affect_data.video; the tracker's own tests are in tests/affect_data/test_tracking.py).

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
from emotion.models import MultitaskCNN, MultitaskCNNRNN, SlidingCNNRNN  # noqa: E402
from emotion.predict import (  # noqa: E402
    as_ensemble,
    ensemble_predict,
    plot_predictions,
    predict_table,
    predict_video,
    prediction_columns,
    sequence_length,
    sliding_windows,
    summary,
)

from affect_data.faces import align_crop, alignment_transform, eye_centers, face_transform  # noqa: E402
from affect_data.schema import AU_NAMES, EXPR_NAMES  # noqa: E402
from affect_data.synthetic import FrameRenderer, Pose, sample_identity  # noqa: E402
from affect_data.video import (  # noqa: E402
    Face,
    Frame,
    FrameReader,
    MTCNNDetector,
    detect_faces,
)

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


def test_detect_faces_keeps_every_face_that_passes_the_filters(clip):
    frames = [Frame(i, i / FPS, image) for i, image in enumerate(clip[0])]
    every = list(detect_faces(frames, KnownFaces(clip), size=48, batch_size=5))
    assert [len(d.faces) for d in every] == [0 if i in BLANK else 2 for i in range(NUM_FRAMES)]
    assert all(c.shape == (48, 48, 3) for d in every for c in d.crops)
    confident = list(detect_faces(frames, KnownFaces(clip), min_score=0.9))
    assert [[f.score for f in d.faces] for d in confident] == [
        [] if i in BLANK else [0.95] for i in range(12)
    ]
    large = list(detect_faces(frames, KnownFaces(clip), min_size=30))  # the decoy is half the size
    assert [len(d.faces) for d in large] == [0 if i in BLANK else 1 for i in range(NUM_FRAMES)]
    unreadable = Frame(99, 9.9, None, "broken.png", "cannot read image 'broken.png'")
    (flagged,) = detect_faces([unreadable], KnownFaces(clip))
    assert (flagged.faces, flagged.file, flagged.error) == ((), "broken.png", unreadable.error)
    with pytest.raises(ValueError, match="min_score"):
        list(detect_faces(frames, KnownFaces(clip), min_score=1.5))


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


def test_thresholds_are_8_numbers_or_none(tiny_models):
    values = np.linspace(0.2, 0.9, 8)
    np.testing.assert_allclose(as_ensemble(tiny_models, values).thresholds["AU"], values)
    np.testing.assert_allclose(as_ensemble(tiny_models, values.tolist()).thresholds["AU"], values)
    np.testing.assert_allclose(as_ensemble(tiny_models).thresholds["AU"], 0.5)
    for wrong in ([0.5, 1.5] * 4, [0.5] * 7):
        with pytest.raises(ValueError, match=r"thresholds\['AU'\] must be 8 values in \[0, 1\]"):
            as_ensemble(tiny_models, wrong)


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


# --- several faces: tracking -------------------------------------------------------------------------------


#: The two-face scene, per frame: which of faces A and B are in view. A moves right and B left, crossing at
#: frame 4; A is hidden in frames 8-9 (0.3 s), nobody in 12-14, B back at 15 (0.4 s after 11), A back at 19
#: (0.8 s after 11: longer than the 0.5 s memory).
SCENE = ["AB"] * 8 + ["B"] * 2 + ["AB"] * 2 + [""] * 3 + ["B"] * 4 + ["AB"]


def test_mtcnn_follows_faces_between_full_detections(video, clip):
    images = [frame.image for frame in FrameReader(video)]
    full = MTCNNDetector().detect(images)
    detector = MTCNNDetector(redetect_every=4)
    followed = detector.detect(images[:5]) + detector.detect(images[5:])  # state carries across calls
    assert detector.full_detections + detector.followed_frames == NUM_FRAMES
    assert detector.followed_frames >= 4
    # The first frame and the one after the blank frames get the full detector: the same faces.
    for i in (0, BLANK[-1] + 1):
        assert [f.score for f in followed[i]] == [f.score for f in full[i]]
    assert all(followed[i] == [] for i in BLANK)  # a lost face is searched for, not kept
    detector.reset()
    assert [f.score for f in detector.detect(images[1:2])[0]] == [f.score for f in full[1]]
    with pytest.raises(ValueError, match="redetect_every must be >= 1, got 0"):
        MTCNNDetector(redetect_every=0)


def test_a_followed_face_keeps_up_with_a_fast_moving_face():
    rng = np.random.default_rng(7)
    person = sample_identity(rng)
    renderer = FrameRenderer(WIDTH, HEIGHT, person, rng)
    frames, eyes = [], []
    for i in range(8):  # 7 pixels to the right and 3 degrees of roll a frame
        image, (landmarks,) = renderer.render([(person, np.zeros(8), Pose(60 + 7 * i, 72, 36, -6 + 3 * i))])
        frames.append(image)
        eyes.append(five_points(landmarks)[:2])
    detector = MTCNNDetector(redetect_every=len(frames))
    found = detector.detect(frames)
    assert detector.full_detections <= 3 and detector.followed_frames >= 4
    hits = [i for i, faces in enumerate(found) if faces]
    assert eyes[hits[-1]][0, 0] - eyes[hits[0]][0, 0] > 25  # far from where it was first found
    for i in hits:  # yet the eyes are on the rendered eyes in every frame
        assert len(found[i]) == 1 and np.abs(found[i][0].landmarks[:2] - eyes[i]).max() < 5, i


@pytest.fixture(scope="module")
def two_faces(tmp_path_factory):
    """A video of SCENE and the 68 landmarks of each face in view, left to right, per frame."""
    rng = np.random.default_rng(3)
    a, b = sample_identity(rng), sample_identity(rng)
    renderer = FrameRenderer(WIDTH, HEIGHT, a, rng)
    frames, marks = [], []
    for i, present in enumerate(SCENE):
        step = min(i, 7)  # both stop where they were at frame 7
        poses = {"A": (a, Pose(cx=40 + 14 * step, cy=60, scale=22)), "B": (b, Pose(150 - 14 * step, 88, 22))}
        image, landmarks = renderer.render(
            [(who, np.zeros(8), pose) for who, pose in map(poses.get, present)]
        )
        frames.append(image)
        marks.append(landmarks)
    path = write_video(tmp_path_factory.mktemp("two") / "two.mp4", frames)
    return path, frames, marks


class TrueFaces:
    """A detector that returns the true boxes of the rendered faces of the closest original frame."""

    def __init__(self, frames, marks):
        self.frames, self.marks = frames, marks

    def detect(self, images):
        results = []
        for image in images:
            closest = int(np.argmin([np.abs(image.astype(float) - frame).mean() for frame in self.frames]))
            results.append(
                [
                    Face(np.concatenate([m.min(axis=0), m.max(axis=0)]), 0.99, five_points(m))
                    for m in self.marks[closest]
                ]
            )
        return results


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
    assert table.attrs["faces"] == 3 and summary(table) == "3 face(s) tracked; a face in 17 of 20 frame(s)"


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
    assert "1 unreadable image(s)" in summary(table)
    saved = pd.read_csv(table.attrs["csv"])
    assert saved["unreadable"].tolist() == [False, False, True, False]
    with pytest.raises(ValueError, match=r"img_3.png"):
        list(FrameReader(folder))  # reading alone still stops at it, by default
    with pytest.raises(ValueError, match="unreadable must be"):
        FrameReader(folder, unreadable="skip")


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
    with pytest.raises(ValueError, match=r"--video-out needs a video source; .* is a folder of images"):
        predict_video(image_folder, tiny_models, None, tmp_path, video_out=tmp_path / "x.mp4", **options)


# --- the CNN-GRU: sliding windows over each face track -----------------------------------------------------


def test_sliding_windows_stay_in_their_track_and_pad_its_first_rows():
    tracks = np.array([0, 1, 0, 0, 1, 0, 2])
    rows, positions = sliding_windows(tracks, length=3)
    assert rows.tolist() == [[0, 0, 0], [1, 1, 1], [0, 2, 2], [0, 2, 3], [1, 4, 4], [2, 3, 5], [6, 6, 6]]
    assert positions.tolist() == [0, 0, 1, 2, 1, 2, 0]
    assert (tracks[rows] == tracks[:, None]).all()  # a window never holds another track's row
    assert (rows.max(axis=1) == np.arange(len(tracks))).all()  # nor a later row


def test_a_cnn_gru_ensemble_has_one_cnn_and_one_window_length(tiny_models):
    cnn = MultitaskCNN("resnet_tiny", hidden=16)
    members = [SlidingCNNRNN(MultitaskCNNRNN(cnn, hidden=8), 4) for _ in range(2)]
    assert sequence_length(as_ensemble(members)) == 4 and sequence_length(as_ensemble(tiny_models)) is None
    other_cnn = SlidingCNNRNN(MultitaskCNNRNN(MultitaskCNN("resnet_tiny", hidden=16), hidden=8), 4)
    for wrong in ([members[0], tiny_models[0]], [members[0], SlidingCNNRNN(members[1].model, 8)],
                  [members[0], other_cnn]):  # fmt: skip
        with pytest.raises(ValueError, match="a CNN-GRU ensemble needs SlidingCNNRNN members only"):
            sequence_length(as_ensemble(wrong))


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
