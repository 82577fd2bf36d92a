"""affect_data.video on rendered synthetic faces: decoding videos and image folders, the five-point crop,
detect_faces, and MTCNN (found faces, following them between full detections).

The clips and the detectors that know where the rendered faces are come from tests/rendered_faces.py and
tests/conftest.py; the tracker's own tests are in test_tracking.py.
"""

import numpy as np
import pytest
import torch
from PIL import Image
from rendered_faces import BLANK, FPS, HEIGHT, NUM_FRAMES, WIDTH, KnownFaces, five_points, write_video

from affect_data.faces import align_crop, alignment_transform, face_transform
from affect_data.synthetic import FrameRenderer, Pose, sample_identity
from affect_data.video import Frame, FrameReader, MTCNNDetector, detect_faces

av = pytest.importorskip("av", reason="PyAV decodes the videos")

torch.set_num_threads(1)


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


# --- alignment and detection ---------------------------------------------------------------------------


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


# --- the real detector: MTCNN --------------------------------------------------------------------------


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
