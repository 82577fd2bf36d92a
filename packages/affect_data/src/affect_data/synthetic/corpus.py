"""The synthetic affect corpus: plan every video and image, render them, write the four formats and the truth.

Planning (identities, labels, poses, which frames lack a face image or an annotation) happens first in
the main process from one seed; rendering then runs per video or image, each from its own seed, so the
result is the same whatever the number of worker processes. The corpus is built in a temporary sibling
folder and moved into place at the end: a folder that exists holds a complete corpus.

Aff-Wild2 is planned in three splits of disjoint videos (names and identities): ``train`` and
``validation`` from one random stream, held-out ``test`` videos from a stream of their own, so that adding
them left the training and validation videos of every seed unchanged. Test videos are rendered like
validation videos (every expression class among them) but, as in the real ABAW 2020 test set, get no
annotation file: only their frames and their rows in ``truth.csv`` (``split == "test"``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .._atomic import atomic_folder
from ..schema import AU_NAMES, EXPR_NAMES, FRAME_TABLE_COLUMNS, SPLITS, as_frame_table
from . import writers
from .labels import (
    ALL_AU_NAMES,
    EXPRESSION_PRIORS,
    LabelTrack,
    sample_person,
    sample_still_labels,
    sample_video_labels,
)
from .render import FrameRenderer, Identity, Pose, make_background, sample_identity

DATASETS: tuple[str, ...] = ("aff_wild2", "disfa", "expw", "afew_va")
TASKS: tuple[str, ...] = ("AU", "EXPR", "VA")
#: Columns of ``truth.csv``: keys, split, the frame-table labels, then DISFA's 12 integer AU levels.
TRUTH_COLUMNS: tuple[str, ...] = (
    "dataset",
    "video",
    "frame",
    "face_id",
    "split",
    *AU_NAMES,
    "expr",
    "valence",
    "arousal",
    *(f"{name}_level" for name in ALL_AU_NAMES),
)
#: 2: Aff-Wild2 test videos (frames and truth only; ``corpus.json`` lists them as ``test_videos``).
FORMAT_VERSION = 2

# DISFA's subject ids (27 subjects; the numbering has gaps).
_DISFA_NUMBERS = (*range(1, 14), 16, 17, 18, 21, *range(23, 33))
_DISFA_SUBJECTS = [f"SN{k:03d}" for k in _DISFA_NUMBERS]
_EXPW_WORDS = (
    "actor",
    "family",
    "crowd",
    "wedding",
    "party",
    "street",
    "office",
    "team",
    "students",
    "friends",
)


@dataclass(frozen=True)
class Preset:
    """Sizes of a corpus. Aff-Wild2 video counts count each ``_left``/``_right`` half as one video.

    Test videos have the frame range of the others (``aff_wild2_frames``) and at least one is needed: the
    scores of a model are reported on them.
    """

    name: str
    aff_wild2_videos: int  # training videos
    aff_wild2_validation_videos: int
    aff_wild2_frames: tuple[int, int]  # range of frames per video
    disfa_subjects: int
    disfa_frames: int
    expw_images: int
    afew_va_clips: int
    afew_va_frames: tuple[int, int]
    # Held-out test videos: frames and hidden truth only, no annotation files (ABAW 2020 withheld its test
    # labels). A default keeps presets written positionally before the test split valid.
    aff_wild2_test_videos: int = 1
    segment_frames: tuple[int, int] = (25, 110)  # expression segment lengths in videos
    two_subject_share: float = 0.2  # share of Aff-Wild2 videos filmed as _left/_right pairs
    aff_wild2_size: int = 112  # cropped_aligned jpg side
    disfa_size: int = 112  # OpenFace aligned bmp side
    afew_va_size: int = 160  # AFEW-VA frame side
    expw_faces: tuple[float, ...] = (0.6, 0.3, 0.1)  # chance of 1, 2, 3 faces per ExpW image

    def __post_init__(self) -> None:
        # Checked here, where the sizes are chosen: a bad value would otherwise surface deep in planning as
        # a numpy error naming no field (or, for a negative count, silently slice the DISFA subject list).
        if self.aff_wild2_videos < 3 or self.aff_wild2_validation_videos < 1:
            raise ValueError(
                f"preset {self.name!r}: need at least 3 Aff-Wild2 training videos (one per task) and 1 "
                f"validation video, got {self.aff_wild2_videos} and {self.aff_wild2_validation_videos}"
            )
        if self.aff_wild2_test_videos < 1:
            # Scores are reported on the test split, and the emotion example's prepare writes it: never empty.
            raise ValueError(
                f"preset {self.name!r}: aff_wild2_test_videos must be >= 1 (the held-out test split), "
                f"got {self.aff_wild2_test_videos}"
            )
        for name in ("disfa_frames", "expw_images", "afew_va_clips"):
            if getattr(self, name) < 0:
                raise ValueError(f"preset {self.name!r}: {name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.disfa_subjects <= len(_DISFA_SUBJECTS):
            raise ValueError(
                f"preset {self.name!r}: disfa_subjects must be in 0..{len(_DISFA_SUBJECTS)} (DISFA has "
                f"{len(_DISFA_SUBJECTS)} subjects), got {self.disfa_subjects}"
            )
        for name in ("aff_wild2_frames", "afew_va_frames", "segment_frames"):
            low, high = getattr(self, name)
            if not 1 <= low <= high:
                raise ValueError(
                    f"preset {self.name!r}: {name} must be a range (low, high) with 1 <= low <= high, "
                    f"got {(low, high)}"
                )
        if not 0.0 <= self.two_subject_share <= 1.0:
            raise ValueError(
                f"preset {self.name!r}: two_subject_share must be in [0, 1], got {self.two_subject_share}"
            )
        faces = np.asarray(self.expw_faces, dtype=float)
        if len(faces) == 0 or (faces < 0).any() or abs(faces.sum() - 1.0) > 1e-9:
            raise ValueError(
                f"preset {self.name!r}: expw_faces must be the chances of 1, 2, ... faces per image "
                f"(non-negative, summing to 1), got {self.expw_faces}"
            )


PRESETS: dict[str, Preset] = {
    # Seconds to build: tests.
    "tiny": Preset(
        name="tiny",
        aff_wild2_videos=4,
        aff_wild2_validation_videos=2,
        aff_wild2_test_videos=2,
        aff_wild2_frames=(40, 60),
        disfa_subjects=2,
        disfa_frames=50,
        expw_images=24,
        afew_va_clips=2,
        afew_va_frames=(25, 35),
        segment_frames=(10, 30),
        two_subject_share=0.5,
    ),
    # `make demo`: enough for a small CNN to learn the three tasks in minutes on a CPU.
    "demo": Preset(
        name="demo",
        # Many short videos: to generalise to new faces a small CNN needs many identities more than many
        # frames (with 56 videos of 140 frames it learned the training faces but not the held-out ones).
        aff_wild2_videos=120,
        aff_wild2_validation_videos=24,
        aff_wild2_test_videos=24,
        aff_wild2_frames=(45, 85),
        disfa_subjects=3,
        disfa_frames=600,
        expw_images=600,
        afew_va_clips=12,
        afew_va_frames=(40, 80),
        segment_frames=(15, 50),
    ),
}

# Studies over seeds: the demo's training data with three times its validation and four times its test videos,
# so that epoch selection and the reported scores move less with the videos drawn (with 24 + 24 the students'
# paired gain over their teacher had intervals of +-0.03 to +-0.07).
PRESETS["study"] = dataclasses.replace(
    PRESETS["demo"], name="study", aff_wild2_validation_videos=72, aff_wild2_test_videos=96
)


@dataclass
class VideoPlan:
    """Everything needed to render and label one video (Aff-Wild2, DISFA) or clip (AFEW-VA)."""

    dataset: str
    name: str
    split: str
    identity: Identity
    labels: LabelTrack
    poses: np.ndarray  # (T, 4): cx, cy, scale, angle
    has_image: np.ndarray  # (T,) bool: False where no face was found, so no image exists
    seed: int
    size: int
    tasks: tuple[str, ...] = ()
    unannotated: dict[str, np.ndarray] = field(default_factory=dict)  # task -> bool mask (AU: (T, 8))
    scene: Identity | None = None  # the other half of a _left/_right pair shares the scene


@dataclass
class StillPlan:
    """One ExpW "origin" image holding one or more faces."""

    name: str
    width: int
    height: int
    identities: list[Identity]
    boxes: list[tuple[int, int, int, int]]  # PIL order: left, top, right, bottom
    poses: np.ndarray  # (k, 4)
    labels: LabelTrack
    confidence: np.ndarray  # (k,)
    seed: int


# ------------------------------------------------------------------ planning


def _smooth_noise(rng: np.random.Generator, n: int, sigma: float = 8.0) -> np.ndarray:
    """Unit-variance noise smoothed over about ``sigma`` frames: slow head motion."""
    from scipy.ndimage import gaussian_filter1d  # here, not at the top: see labels.sample_video_labels

    raw = gaussian_filter1d(rng.normal(0.0, 1.0, n + 40), sigma, mode="nearest")[20 : 20 + n]
    return raw * np.sqrt(2.0 * np.sqrt(np.pi) * sigma)


def _aligned_poses(rng: np.random.Generator, n: int, size: int, max_angle: float) -> np.ndarray:
    """Poses of an aligned crop: centred, with small drifts in position, scale and angle."""
    base = Pose.centred(size)
    scale = base.scale * rng.uniform(0.9, 1.08)
    angle = rng.uniform(-max_angle, max_angle)
    return np.stack(
        [
            base.cx + 0.02 * size * _smooth_noise(rng, n),
            base.cy + 0.02 * size * _smooth_noise(rng, n),
            scale * (1.0 + 0.03 * _smooth_noise(rng, n)),
            angle + 0.4 * max_angle * _smooth_noise(rng, n),
        ],
        axis=1,
    )


def _runs(rng: np.random.Generator, n: int, count: int, length: tuple[int, int]) -> np.ndarray:
    """A boolean mask with ``count`` runs of ``length`` frames at random places (away from frame 0)."""
    mask = np.zeros(n, dtype=bool)
    for _ in range(count):
        run = int(rng.integers(length[0], length[1] + 1))
        start = int(rng.integers(1, max(2, n - run)))
        mask[start : start + run] = True
    return mask


def _aff_wild2_names(rng: np.random.Generator, n: int, pair_share: float, first: int) -> list[list[str]]:
    """Video names grouped by recording: one name, or a ``_left``/``_right`` pair (two subjects).

    Recordings are numbered from ``first`` so that names never repeat across calls.
    """
    groups: list[list[str]] = []
    count = 0
    while count < n:
        k = first + len(groups)
        if n - count >= 2 and rng.random() < pair_share:
            stem = f"video{k}_{int(rng.integers(1, 4))}"
            groups.append([f"{stem}_left", f"{stem}_right"])
        else:
            width, height = [(640, 360), (1280, 720), (640, 480), (1920, 1080)][int(rng.integers(4))]
            groups.append([f"{k}-30-{width}x{height}" if rng.random() < 0.7 else f"video{k}"])
        count += len(groups[-1])
    return groups


#: Draws of the test split at most, until every expression class shows on a test frame with a face image.
_TEST_DRAWS = 100


def plan_aff_wild2(
    preset: Preset, rng: np.random.Generator, test_rng: np.random.Generator
) -> list[VideoPlan]:
    """Plan the Aff-Wild2 part: videos, their split and task sets, labels, missing faces and annotations.

    Parameters
    ----------
    preset : Preset
        Numbers of training, validation and test videos, frames per video.
    rng : numpy.random.Generator
        Stream of the training and validation videos.
    test_rng : numpy.random.Generator
        Stream of the held-out test videos. Their own stream keeps the training and validation videos of a
        seed exactly as they were before the test split existed.

    Returns
    -------
    list of VideoPlan
        Training, then validation, then test videos. Recordings are numbered on across the three splits, so
        no name repeats.
    """
    plans: list[VideoPlan] = []
    recordings = 0
    for split, n_videos in (
        ("train", preset.aff_wild2_videos),
        ("validation", preset.aff_wild2_validation_videos),
    ):
        drawn, n_recordings = _plan_aff_wild2_split(preset, rng, split, n_videos, first=recordings + 1)
        plans += drawn
        recordings += n_recordings
    return plans + _plan_aff_wild2_test(preset, test_rng, first=recordings + 1)


def _plan_aff_wild2_test(preset: Preset, rng: np.random.Generator, first: int) -> list[VideoPlan]:
    """The test videos, redrawn until every expression class shows on a frame with a face image.

    Forcing classes into segments (as for validation) is not enough on small presets: a short video has
    fewer segments than the classes it is given, and missing faces can hide a short last segment. Scores
    reported on the test split need every class, so the whole split is drawn again from its stream, at most
    ``_TEST_DRAWS`` times, keeping the first draw that shows every class (or else the first that shows the
    most). On ``demo`` the first draw always shows them all; on ``tiny`` it favours videos of more segments.
    """
    best: list[VideoPlan] = []
    best_shown = -1
    for _ in range(_TEST_DRAWS):
        plans, _ = _plan_aff_wild2_split(preset, rng, "test", preset.aff_wild2_test_videos, first)
        shown = len(set().union(*(np.unique(p.labels.expr[p.has_image]).tolist() for p in plans)))
        if shown > best_shown:
            best, best_shown = plans, shown
        if shown == len(EXPR_NAMES):
            break
    return best


def _plan_aff_wild2_split(
    preset: Preset, rng: np.random.Generator, split: str, n_videos: int, first: int
) -> tuple[list[VideoPlan], int]:
    """The videos of one split, their recordings numbered from ``first``; also returns how many recordings.

    Training videos belong to some task sets. Validation videos belong to every task set (their complete
    truth is used for every task). Test videos belong to none: the ABAW 2020 test set ships its frames
    without annotation files, and their labels are in ``truth.csv`` only. Validation and test videos are
    given every expression class between them.
    """
    size = preset.aff_wild2_size
    prior = EXPRESSION_PRIORS["aff_wild2"]
    plans: list[VideoPlan] = []
    index = 0
    groups = _aff_wild2_names(rng, n_videos, preset.two_subject_share, first=first)
    for group in groups:
        scene = sample_identity(rng)
        for name in group:
            if split == "train":
                # Each video belongs to some task sets; video i always to task i mod 3 (no set empty), the
                # first video to all three (so the tiny corpus shows every quirk in every set).
                chosen = {TASKS[index % 3]} | {
                    t for t, p in zip(TASKS, (0.55, 0.75, 0.8), strict=True) if rng.random() < p
                }
                tasks = TASKS if index == 0 else tuple(t for t in TASKS if t in chosen)
                include: tuple[int, ...] = ()
            else:
                # Validation: the complete truth of held-out videos is used for every task. Test: no task
                # set, so no annotation file (the real test labels are withheld).
                tasks = TASKS if split == "validation" else ()
                # Every class occurs in the split: class c goes to video c mod n.
                include = tuple(c for c in range(len(EXPR_NAMES)) if c % n_videos == index)
            n = int(rng.integers(preset.aff_wild2_frames[0], preset.aff_wild2_frames[1] + 1))
            person = sample_person(rng)
            identity = sample_identity(rng)
            if len(group) == 2:  # both halves of a pair are filmed in the same place and light
                identity = dataclasses.replace(
                    identity,
                    background=scene.background,
                    light_angle=scene.light_angle,
                    light_strength=scene.light_strength,
                    brightness=scene.brightness,
                    noise=scene.noise,
                )
            labels = sample_video_labels(rng, n, person, prior, preset.segment_frames, include)
            # Frames with no detected face: short runs, and often the last frames of the video (so the
            # label file is longer than the image list). The first video of each split always shows both.
            no_face = _runs(rng, n, int(rng.random() < 0.5) + (index == 0), (2, 6))
            if index == 0 or rng.random() < 0.4:
                no_face[n - int(rng.integers(1, 6)) :] = True
            unannotated = {}
            for task in tasks:
                rows = _runs(rng, n, int(index == 0 or rng.random() < 0.4), (3, 8))
                if task == "AU":
                    cells = np.repeat(rows[:, None], len(AU_NAMES), axis=1)
                    first_row = int(np.argmax(rows)) if rows.any() else None
                    if first_row is not None:  # a row where only one AU is missing (the row still goes)
                        cells[first_row] = False
                        cells[first_row, int(rng.integers(len(AU_NAMES)))] = True
                    unannotated[task] = cells
                else:
                    unannotated[task] = rows
            plans.append(
                VideoPlan(
                    dataset="aff_wild2",
                    name=name,
                    split=split,
                    identity=identity,
                    labels=labels,
                    poses=_aligned_poses(rng, n, size, max_angle=6.0),
                    has_image=~no_face,
                    seed=int(rng.integers(2**63)),
                    size=size,
                    tasks=tasks,
                    unannotated=unannotated,
                )
            )
            index += 1
    return plans, len(groups)


def plan_disfa(preset: Preset, rng: np.random.Generator) -> list[VideoPlan]:
    """Plan DISFA: long videos of subjects filmed in a lab (plain background, even light), all annotated."""
    size = preset.disfa_size
    plans = []
    for k, subject in enumerate(_DISFA_SUBJECTS[: preset.disfa_subjects]):
        n = preset.disfa_frames
        labels = sample_video_labels(
            rng, n, sample_person(rng), EXPRESSION_PRIORS["disfa"], preset.segment_frames
        )
        identity = dataclasses.replace(
            sample_identity(rng),
            background=tuple(int(v) for v in rng.uniform(90, 140) * np.ones(3)),
            light_strength=float(rng.uniform(0.0, 0.1)),
            brightness=float(rng.uniform(0.95, 1.05)),
            noise=float(rng.uniform(1.0, 3.0)),
            blur=0.0,
        )
        no_face = _runs(rng, n, 1 + (k == 0), (1, 4))  # OpenFace lost the face for a few frames
        plans.append(
            VideoPlan(
                dataset="disfa",
                name=subject,
                split="train",
                identity=identity,
                labels=labels,
                poses=_aligned_poses(rng, n, size, max_angle=3.0),
                has_image=~no_face,
                seed=int(rng.integers(2**63)),
                size=size,
                tasks=("AU",),
            )
        )
    return plans


def plan_afew_va(preset: Preset, rng: np.random.Generator) -> list[VideoPlan]:
    """Plan AFEW-VA: film clips with the face anywhere in the frame, turned up to about 30 degrees."""
    size = preset.afew_va_size
    plans = []
    for k in range(preset.afew_va_clips):
        n = int(rng.integers(preset.afew_va_frames[0], preset.afew_va_frames[1] + 1))
        labels = sample_video_labels(
            rng, n, sample_person(rng), EXPRESSION_PRIORS["afew_va"], preset.segment_frames
        )
        # Face half-width 15-22 % of the frame; centre kept far enough from the borders for the whole head.
        scale = size * rng.uniform(0.15, 0.22)
        margin = 1.5 * scale / size
        cx = size * (rng.uniform(margin, 1.0 - margin) + 0.03 * _smooth_noise(rng, n))
        cy = size * (rng.uniform(margin, 1.0 - margin) + 0.03 * _smooth_noise(rng, n))
        angle = rng.uniform(-25.0, 25.0) + 4.0 * _smooth_noise(rng, n)
        poses = np.stack([cx, cy, scale * (1.0 + 0.04 * _smooth_noise(rng, n)), angle], axis=1)
        plans.append(
            VideoPlan(
                dataset="afew_va",
                name=f"{k + 1:03d}",
                split="train",
                identity=sample_identity(rng),
                labels=labels,
                poses=poses,
                has_image=np.ones(n, dtype=bool),
                seed=int(rng.integers(2**63)),
                size=size,
                tasks=("VA",),
            )
        )
    return plans


def plan_expw(preset: Preset, rng: np.random.Generator) -> list[StillPlan]:
    """Plan ExpW: photos with one to three faces side by side, each with a detector box and confidence."""
    plans = []
    for k in range(preset.expw_images):
        n_faces = int(rng.choice(len(preset.expw_faces), p=preset.expw_faces)) + 1
        width, height = int(rng.integers(200, 321)), int(rng.integers(160, 261))
        column = width // n_faces
        boxes, poses = [], []
        for i in range(n_faces):
            side = int(rng.integers(min(48, column - 8, height - 8), min(100, column - 8, height - 8) + 1))
            left = i * column + int(rng.integers(0, column - side + 1))
            top = int(rng.integers(0, height - side + 1))
            boxes.append((left, top, left + side, top + side))
            pose = Pose.centred(side, angle=float(rng.uniform(-12.0, 12.0)))
            poses.append((left + pose.cx, top + pose.cy, pose.scale, pose.angle))
        people = [sample_person(rng) for _ in range(n_faces)]
        plans.append(
            StillPlan(
                name=f"{_EXPW_WORDS[int(rng.integers(len(_EXPW_WORDS)))]}_{k + 1}.jpg",
                width=width,
                height=height,
                identities=[sample_identity(rng) for _ in range(n_faces)],
                boxes=boxes,
                poses=np.array(poses),
                labels=sample_still_labels(rng, people, EXPRESSION_PRIORS["expw"]),
                confidence=rng.uniform(20.0, 99.0, n_faces),
                seed=int(rng.integers(2**63)),
            )
        )
    return plans


# ------------------------------------------------------------------ rendering (runs in worker processes)


def _video_frame_path(root: Path, plan: VideoPlan, frame: int) -> Path:
    if plan.dataset == "aff_wild2":
        return writers.aff_wild2_image_path(root / "aff_wild2", plan.name, frame)
    if plan.dataset == "disfa":
        return writers.disfa_image_path(root / "disfa", plan.name, frame)
    return root / "afew_va" / plan.name / f"{frame:05d}.png"


def render_video(root: Path, plan: VideoPlan) -> None:
    """Render the frames of a video plan that have a face image; AFEW-VA clips also get their JSON."""
    rng = np.random.default_rng(plan.seed)
    # DISFA was filmed in a lab in front of a plain wall.
    clutter = 0 if plan.dataset == "disfa" else 6
    background = make_background(plan.size, plan.size, plan.identity.background, rng, clutter=clutter)
    renderer = FrameRenderer(plan.size, plan.size, plan.identity, rng, background=background)
    intensity = plan.labels.shared_intensity
    marks = np.zeros((len(plan.labels), 68, 2))
    frames = np.flatnonzero(plan.has_image).tolist()
    if frames:  # every frame of a video goes to one folder; a video without images gets none
        _video_frame_path(root, plan, frames[0]).parent.mkdir(parents=True, exist_ok=True)
    for frame in frames:
        pose = Pose(*plan.poses[frame])
        pixels, (marks[frame],) = renderer.render([(plan.identity, intensity[frame], pose)])
        writers.save_image(_video_frame_path(root, plan, frame), pixels)
    if plan.dataset == "afew_va":
        text = writers.afew_va_json(plan.name, plan.labels.va, marks)
        (root / "afew_va" / plan.name / f"{plan.name}.json").write_text(text, encoding="utf-8")


def render_still(root: Path, plan: StillPlan) -> None:
    """Render one ExpW origin image with all its faces."""
    rng = np.random.default_rng(plan.seed)
    background = make_background(plan.width, plan.height, plan.identities[0].background, rng, clutter=10)
    renderer = FrameRenderer(plan.width, plan.height, plan.identities[0], rng, background=background)
    intensity = plan.labels.shared_intensity
    faces = [(plan.identities[i], intensity[i], Pose(*plan.poses[i])) for i in range(len(plan.identities))]
    pixels, _ = renderer.render(faces)
    folder = root / "expw" / "image" / "origin"
    folder.mkdir(parents=True, exist_ok=True)
    writers.save_image(folder / plan.name, pixels)


def _render(job: tuple[Path, VideoPlan | StillPlan]) -> None:
    root, plan = job
    (render_still if isinstance(plan, StillPlan) else render_video)(root, plan)


# ------------------------------------------------------------------ label files and truth


def _write_aff_wild2_labels(root: Path, plans: list[VideoPlan]) -> None:
    for plan in plans:
        if not plan.tasks:  # a test video: the release has its frames but no annotation file
            continue
        split = writers.AFF_WILD2_SPLITS[plan.split]
        values = {"AU": plan.labels.au_presence, "EXPR": plan.labels.expr, "VA": plan.labels.va}
        for task in plan.tasks:
            lines = writers.aff_wild2_label_lines(task, values[task], plan.unannotated[task])
            path = (
                root / "aff_wild2" / "annotations" / writers.AFF_WILD2_SETS[task] / split / f"{plan.name}.txt"
            )
            writers.write_lines(path, lines)


def _write_expw_labels(root: Path, plans: list[StillPlan], rng: np.random.Generator) -> int:
    """Write ``label.lst``; about 3 % of its lines appear twice, as in the real file. Returns that count."""
    lines = []
    duplicates = 0
    for plan in plans:
        for face_id, box in enumerate(plan.boxes):
            line = writers.expw_label_line(
                plan.name, face_id, box, float(plan.confidence[face_id]), int(plan.labels.expr[face_id])
            )
            lines.append(line)
            if rng.random() < 0.03 or (duplicates == 0 and face_id == 0 and plan is plans[-1]):
                lines.append(line)
                duplicates += 1
    writers.write_lines(root / "expw" / "label" / "label.lst", lines)
    return duplicates


def _truth_frame(
    dataset: str, video: list[str], frame: np.ndarray, face_id: np.ndarray, split: str, labels: LabelTrack
) -> pd.DataFrame:
    data = {
        "dataset": dataset,
        "video": video,
        "frame": frame,
        "face_id": face_id,
        "split": split,
        **dict(zip(AU_NAMES, labels.au_presence.T, strict=True)),
        "expr": labels.expr,
        "valence": labels.va[:, 0],
        "arousal": labels.va[:, 1],
        **{f"{name}_level": labels.au_level[:, k] for k, name in enumerate(ALL_AU_NAMES)},
    }
    return pd.DataFrame(data, columns=list(TRUTH_COLUMNS))


def _select(labels: LabelTrack, keep: np.ndarray) -> LabelTrack:
    return LabelTrack(labels.intensity[keep], labels.au_level[keep], labels.expr[keep], labels.va[keep])


def _truth(videos: list[VideoPlan], stills: list[StillPlan]) -> pd.DataFrame:
    parts = []
    for plan in videos:
        labels = plan.labels
        if plan.dataset == "afew_va":  # the files hold tenths: the truth is what they say
            labels = dataclasses.replace(labels, va=np.clip(np.rint(labels.va * 10.0), -10, 10) / 10.0)
        frames = np.flatnonzero(plan.has_image)
        parts.append(
            _truth_frame(
                plan.dataset,
                [plan.name] * len(frames),
                frames,
                np.zeros(len(frames), int),
                plan.split,
                _select(labels, frames),
            )
        )
    for plan in stills:
        k = len(plan.boxes)
        keys = [f"{plan.name}#{face_id}" for face_id in range(k)]
        parts.append(_truth_frame("expw", keys, np.zeros(k, int), np.arange(k), "train", plan.labels))
    return pd.concat(parts, ignore_index=True)


# ------------------------------------------------------------------ the corpus


def write_corpus(
    out_dir: str | os.PathLike,
    preset: str | Preset = "tiny",
    seed: int = 0,
    n_jobs: int = 1,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Render the synthetic affect corpus and write it in the four real formats plus the hidden truth.

    Layout under ``out_dir``: ``aff_wild2/`` (ABAW 2020:
    ``annotations/{AU,EXPR,VA}_Set/{Training,Validation}_Set`` and ``cropped_aligned``, which also holds the
    frames of the held-out test videos, which have no annotation file), ``disfa/``
    (``ActionUnit_Labels`` and OpenFace aligned bmp frames), ``expw/`` (``label/label.lst``,
    ``image/origin``), ``afew_va/`` (clip folders with png frames and JSON),
    ``truth.csv`` (every rendered frame with all labels, keyed by ``dataset, video, frame``; ExpW faces by
    ``video = "<image>#<face_id>"``, frame 0; split ``train``, ``validation`` or ``test``) and
    ``corpus.json`` (preset, seed, counts, the videos of each Aff-Wild2 split).

    Parameters
    ----------
    out_dir : path
        Folder to create. It must not exist, be empty, or (with ``overwrite=True``) hold an earlier corpus.
    preset : {"tiny", "demo", "study"} or Preset
        Corpus size (see ``PRESETS``).
    seed : int
        Same seed and preset give byte-identical files, whatever ``n_jobs``.
    n_jobs : int
        Worker processes for rendering.
    overwrite : bool
        Replace an existing corpus (a folder holding ``corpus.json``) at ``out_dir``.
    progress : bool
        Draw a progress bar over the videos and stills rendered (tqdm, when installed:
        ``mtl-distill[progress]``; ``TQDM_DISABLE=1`` turns it off).

    Returns
    -------
    pathlib.Path
        ``out_dir``.

    Example
    -------
    >>> import tempfile, pathlib
    >>> root = write_corpus(pathlib.Path(tempfile.mkdtemp()) / "corpus", preset="tiny", seed=0)
    >>> sorted(p.name for p in root.iterdir())
    ['afew_va', 'aff_wild2', 'corpus.json', 'disfa', 'expw', 'truth.csv']
    """
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)} or pass a Preset")
        preset = PRESETS[preset]
    if n_jobs < 1:
        raise ValueError(f"n_jobs must be at least 1, got {n_jobs}")
    out = Path(out_dir)
    _check_target(out, overwrite)

    # One stream per part. The test videos came later and got the sixth child: SeedSequence children are
    # keyed by their index, so the first five streams, and all they draw, are those of earlier versions.
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(6)]
    videos = (
        plan_aff_wild2(preset, streams[0], streams[5])
        + plan_disfa(preset, streams[1])
        + plan_afew_va(preset, streams[3])
    )
    stills = plan_expw(preset, streams[2])

    out.parent.mkdir(parents=True, exist_ok=True)
    # _check_target allowed what is there: nothing, an empty folder, or (overwrite) an earlier corpus.
    with atomic_folder(out, replace=overwrite) as tmp:
        jobs = [(tmp, plan) for plan in [*videos, *stills]]
        description = f"rendering the {preset.name} corpus"
        if n_jobs == 1:
            for _ in _progress_bar(map(_render, jobs), total=len(jobs), desc=description, enabled=progress):
                pass
        else:
            with ProcessPoolExecutor(n_jobs) as pool:
                rendered = pool.map(_render, jobs, chunksize=4)
                for _ in _progress_bar(rendered, total=len(jobs), desc=description, enabled=progress):
                    pass
        aff_wild2 = [p for p in videos if p.dataset == "aff_wild2"]
        _write_aff_wild2_labels(tmp, aff_wild2)
        for plan in videos:
            if plan.dataset == "disfa":
                writers.disfa_label_files(tmp / "disfa", plan.name, plan.labels.au_level)
        duplicates = _write_expw_labels(tmp, stills, streams[4])
        truth = _truth(videos, stills)
        truth.to_csv(tmp / "truth.csv", index=False)
        info = _corpus_info(preset, seed, videos, stills, truth, duplicates)
        (tmp / "corpus.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return out


def _progress_bar(iterable: Iterable, total: int, desc: str, enabled: bool) -> Iterable:
    """``iterable`` behind mtl_distill's progress bar (tqdm, when installed) when ``enabled``."""
    if not enabled:
        return iterable
    # Imported here: mtl_distill imports torch, which reading presets (a config check) must not load.
    from mtl_distill.logging_utils import progress

    return progress(iterable, total=total, desc=desc)


def load_truth(root: str | os.PathLike) -> pd.DataFrame:
    """Read a corpus's ``truth.csv`` with the key columns as strings (clip ``"001"`` stays ``"001"``).

    Parameters
    ----------
    root : path
        The corpus folder (what :func:`write_corpus` returned).

    Returns
    -------
    pandas.DataFrame
        Columns ``TRUTH_COLUMNS``: join it to any loaded frame table on ``["dataset", "video", "frame"]``.

    Example
    -------
    >>> import tempfile, pathlib
    >>> truth = load_truth(write_corpus(pathlib.Path(tempfile.mkdtemp()) / "c", preset="tiny"))
    >>> truth.loc[truth["dataset"] == "afew_va", "video"].iloc[0]
    '001'
    """
    path = Path(root) / "truth.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: is {root} a corpus written by write_corpus?")
    strings = dict.fromkeys(("dataset", "video", "split"), "string")
    truth = pd.read_csv(path, dtype=strings)
    if list(truth.columns) != list(TRUTH_COLUMNS):
        raise ValueError(f"{path}: columns {list(truth.columns)} differ from {list(TRUTH_COLUMNS)}")
    return truth


def aff_wild2_truth_table(root: str | os.PathLike, split: str = "test") -> pd.DataFrame:
    """The Aff-Wild2 frames of one split as a frame table carrying their complete hidden truth.

    This is how the held-out test videos are read: like the real ABAW 2020 test set they have frames but
    no annotation file, so :func:`affect_data.load_aff_wild2` does not see them. Every frame with a face
    image is a row, labelled for every task from ``truth.csv``.

    Parameters
    ----------
    root : path
        The corpus folder (what :func:`write_corpus` returned).
    split : {"test", "validation", "train"}
        Which Aff-Wild2 videos.

    Returns
    -------
    pandas.DataFrame
        A frame table (:mod:`affect_data.schema` columns and dtypes, nothing else), one row per frame,
        sorted by video and frame. ``path`` is the absolute path of the ``cropped_aligned`` jpg, built as
        the loader builds it; ``subject`` is the video name, as the loader has it.

    Raises
    ------
    ValueError
        An unknown split, or a corpus without frames in it (one written before the test split existed).
    FileNotFoundError
        No ``truth.csv``, or a jpg that ``truth.csv`` lists is missing.

    Example
    -------
    >>> import tempfile, pathlib
    >>> root = write_corpus(pathlib.Path(tempfile.mkdtemp()) / "c", preset="tiny")
    >>> test = aff_wild2_truth_table(root, "test")
    >>> test["video"].nunique(), int(test[["AU1", "expr", "valence"]].isna().sum().sum())
    (2, 0)
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    truth = load_truth(root)
    rows = truth[(truth["dataset"] == "aff_wild2") & (truth["split"] == split)]
    if rows.empty:
        raise ValueError(
            f"{Path(root) / 'truth.csv'} has no Aff-Wild2 {split} frames; a corpus written before the test "
            "split existed (format_version 1 in corpus.json) has none: write it again"
        )
    rows = rows.sort_values(["video", "frame"], ignore_index=True)
    images = (Path(root) / "aff_wild2" / "cropped_aligned").absolute()
    # The loader's path strings exactly, so a test row and a validation row of one image would be equal.
    paths = [
        str(writers.aff_wild2_image_path(images.parent, video, frame))
        for video, frame in zip(rows["video"].tolist(), rows["frame"].tolist(), strict=True)
    ]
    for video in rows["video"].unique().tolist():  # one listing per video, not one stat per frame
        folder = images / video
        present = set(os.listdir(folder)) if folder.is_dir() else set()
        wanted = rows.loc[rows["video"] == video, "frame"]
        missing = [k for k in wanted.tolist() if f"{k + 1:05d}.jpg" not in present]
        if missing:
            raise FileNotFoundError(
                f"{folder / f'{missing[0] + 1:05d}.jpg'} is listed in truth.csv but missing "
                f"({len(missing)} image(s) of video {video!r}): is the corpus complete?"
            )
    table = rows.assign(path=paths, subject=rows["video"])
    return as_frame_table(table[list(FRAME_TABLE_COLUMNS)])


def _check_target(out: Path, overwrite: bool) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder")
    if not any(out.iterdir()):
        return
    if not overwrite:
        raise FileExistsError(f"{out} is not empty; pass overwrite=True to replace an earlier corpus there")
    if not (out / "corpus.json").is_file():
        raise FileExistsError(f"{out} is not empty and holds no corpus.json; refusing to replace it")


def _corpus_info(
    preset: Preset,
    seed: int,
    videos: list[VideoPlan],
    stills: list[StillPlan],
    truth: pd.DataFrame,
    duplicates: int,
) -> dict:
    aff = [p for p in videos if p.dataset == "aff_wild2"]
    counts = {
        name: {
            "frames": int((truth["dataset"] == name).sum()),
            "videos": sum(p.dataset == name for p in videos),
        }
        for name in ("aff_wild2", "disfa", "afew_va")
    }
    counts["expw"] = {"images": len(stills), "faces": int((truth["dataset"] == "expw").sum())}
    return {
        "format_version": FORMAT_VERSION,
        "preset": dataclasses.asdict(preset),
        "seed": seed,
        "counts": counts,
        "aff_wild2": {
            "train_videos": [p.name for p in aff if p.split == "train"],
            "validation_videos": [p.name for p in aff if p.split == "validation"],
            "test_videos": [p.name for p in aff if p.split == "test"],
            "tasks": {p.name: list(p.tasks) for p in aff},
            "frames_without_image": int(sum((~p.has_image).sum() for p in aff)),
            "unannotated_rows": {
                task: int(
                    sum(
                        p.unannotated[task].reshape(len(p.labels), -1).any(axis=1).sum()
                        for p in aff
                        if task in p.tasks
                    )
                )
                for task in TASKS
            },
        },
        "disfa": {
            "frames_without_image": int(sum((~p.has_image).sum() for p in videos if p.dataset == "disfa"))
        },
        "expw": {"duplicate_lines": duplicates},
        "truth_columns": list(TRUTH_COLUMNS),
    }
