"""Rendered synthetic faces on video, shared by the tests of affect_data.video / affect_data.prediction and of
the emotion example's ``run.py predict`` (the fixtures that use them are in tests/conftest.py).

A small clip: one rendered face that moves and rolls, with blank frames in between; a two-face scene
(:data:`SCENE`); and detectors that know where the rendered faces are, so the pipeline is tested exactly.
"""

import numpy as np

from affect_data.faces import eye_centers
from affect_data.synthetic import FrameRenderer, Pose, sample_identity
from affect_data.video import Face

WIDTH, HEIGHT, FPS = 192, 144, 10
#: Frames 6, 7 and 8 are blank (no face); the others show one rendered face.
BLANK = (6, 7, 8)
NUM_FRAMES = 12

#: The two-face scene, per frame: which of faces A and B are in view. A moves right and B left, crossing at
#: frame 4; A is hidden in frames 8-9 (0.3 s), nobody in 12-14, B back at 15 (0.4 s after 11), A back at 19
#: (0.8 s after 11: longer than the 0.5 s memory).
SCENE = ["AB"] * 8 + ["B"] * 2 + ["AB"] * 2 + [""] * 3 + ["B"] * 4 + ["AB"]


def five_points(landmarks68: np.ndarray) -> np.ndarray:
    """MTCNN's 5 points from 68 landmarks: eye centres, nose tip, mouth corners."""
    left, right = eye_centers(landmarks68)
    return np.stack([left, right, landmarks68[30], landmarks68[48], landmarks68[54]])


def render_clip():
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


def render_two_faces():
    """The frames of SCENE and the 68 landmarks of each face in view, left to right, per frame."""
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
    return frames, marks


def write_video(path, frames, fps=FPS, rotation=None):
    """Encode ``frames`` to ``path`` (MPEG-4 Part 2), with a display rotation if given; returns ``path``."""
    import av

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
