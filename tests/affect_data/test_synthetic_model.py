"""The synthetic corpus's label model and renderer: label statistics, geometry that follows the AUs."""

from __future__ import annotations

import numpy as np
import pytest

from affect_data.schema import AU_NAMES, EXPR_NAMES
from affect_data.synthetic import (
    EXPRESSION_PRIORS,
    FaceShape,
    Pose,
    face_geometry,
    render_face,
    sample_identity,
    sample_person,
    sample_still_labels,
    sample_video_labels,
)
from affect_data.synthetic.render import FrameRenderer

EXPR = {name: k for k, name in enumerate(EXPR_NAMES)}
AU = {name: k for k, name in enumerate(AU_NAMES)}


@pytest.fixture(scope="module")
def frames():
    """About 30,000 frames of labels from 150 videos (no rendering)."""
    rng = np.random.default_rng(0)
    tracks = [
        sample_video_labels(rng, 200, sample_person(rng), EXPRESSION_PRIORS["aff_wild2"]) for _ in range(150)
    ]
    return (
        np.concatenate([t.expr for t in tracks]),
        np.concatenate([t.au_presence for t in tracks]),
        np.concatenate([t.va for t in tracks]),
        tracks,
    )


def test_expression_prior_is_imbalanced_like_the_real_data(frames):
    expr, _, _, _ = frames
    share = np.bincount(expr, minlength=7) / len(expr)
    assert share[EXPR["Neutral"]] > 0.25 and share[EXPR["Happiness"]] > 0.15
    assert share[EXPR["Disgust"]] < 0.06 and share[EXPR["Fear"]] < 0.06
    assert share.min() > 0.0
    assert share.max() / share.min() > 8.0


def test_aus_follow_expressions_but_not_strictly(frames):
    expr, au, _, _ = frames

    def rate(name, expression):
        return au[expr == EXPR[expression], AU[name]].mean()

    assert rate("AU12", "Happiness") > 0.7 > 0.1 > rate("AU12", "Sadness")
    assert rate("AU6", "Happiness") > 4 * rate("AU6", "Neutral")
    assert rate("AU1", "Surprise") > 0.7 and rate("AU2", "Surprise") > 0.6
    assert rate("AU15", "Sadness") > 0.6 and rate("AU4", "Anger") > 0.7
    # AUs also occur outside the prototypes (speech, habits), and prototypes are not always complete.
    assert 0.02 < au[expr == EXPR["Neutral"]].any(axis=1).mean() < 0.5
    assert rate("AU12", "Happiness") < 0.99
    positives = au.mean(axis=0)
    assert (positives > 0.02).all() and (positives < 0.6).all()


def test_valence_arousal_follow_the_circumplex(frames):
    expr, _, va, _ = frames
    assert np.abs(va).max() <= 1.0
    mean = np.array([va[expr == k].mean(axis=0) for k in range(7)])
    assert mean[EXPR["Happiness"], 0] > 0.3 > mean[EXPR["Neutral"], 0] > -0.15 > mean[EXPR["Sadness"], 0]
    assert mean[EXPR["Anger"], 0] < -0.2 and mean[EXPR["Fear"], 0] < -0.2
    assert mean[EXPR["Surprise"], 1] > 0.3 > -0.1 > mean[EXPR["Sadness"], 1]
    # Valence is not a function of the expression: it spreads within a class.
    assert va[expr == EXPR["Neutral"], 0].std() > 0.08


def test_videos_change_smoothly(frames):
    *_, tracks = frames
    track = tracks[0]
    assert np.abs(np.diff(track.va, axis=0)).mean() < 0.1 * track.va.std(axis=0).mean() + 0.02
    assert np.abs(np.diff(track.intensity, axis=0)).mean() < 0.5
    changes = np.count_nonzero(np.diff(np.concatenate([t.expr for t in tracks[:20]])))
    assert changes < 20 * 200 / 20  # segments, not frame-wise noise


def test_include_forces_rare_classes_and_stills():
    rng = np.random.default_rng(1)
    track = sample_video_labels(
        rng, 150, sample_person(rng), EXPRESSION_PRIORS["aff_wild2"], (10, 20), (2, 3)
    )
    assert {2, 3} <= set(track.expr.tolist())
    stills = sample_still_labels(rng, [sample_person(rng) for _ in range(40)], EXPRESSION_PRIORS["expw"])
    assert len(stills) == 40 and stills.au_level.max() <= 5 and stills.au_level.min() >= 0
    with pytest.raises(ValueError, match="n_frames"):
        sample_video_labels(rng, 0, sample_person(rng), EXPRESSION_PRIORS["aff_wild2"])


# ------------------------------------------------------------------ geometry and rendering


def moved(au_name: str, intensity: float = 5.0) -> np.ndarray:
    """Landmark displacement (canonical units, y down) when one AU goes from 0 to ``intensity``."""
    shape = FaceShape()
    on = np.zeros(8)
    on[AU[au_name]] = intensity
    return face_geometry(shape, on).landmarks - face_geometry(shape, np.zeros(8)).landmarks


def test_landmarks_move_with_their_aus():
    assert moved("AU1")[[21, 22], 1].max() < -0.1 and abs(moved("AU1")[[17, 26], 1]).max() < 0.02
    assert moved("AU2")[[17, 26], 1].max() < -0.1
    brows = moved("AU4")[17:27]
    assert (brows[:, 1] > 0.05).all() and brows[4, 0] > 0.03 and brows[5, 0] < -0.03  # down and together
    lower_lids = moved("AU6")[[40, 41, 46, 47], 1]
    assert (lower_lids < -0.03).all()
    assert moved("AU12")[[48, 54], 1].max() < -0.1
    assert moved("AU15")[[48, 54], 1].min() > 0.1
    assert moved("AU20")[48, 0] < -0.08 and moved("AU20")[54, 0] > 0.08
    gap = moved("AU25")
    assert gap[66, 1] - gap[62, 1] > 0.2
    assert np.abs(moved("AU12")[:17]).max() == 0  # the jaw does not move
    with pytest.raises(ValueError, match="8 AU intensities"):
        face_geometry(FaceShape(), np.zeros(7))


def test_rendered_landmarks_follow_pose_and_sit_on_the_drawing():
    rng = np.random.default_rng(5)
    darker = []
    for k in range(12):
        person = sample_identity(rng)
        angle = float(rng.uniform(-30, 30))
        image, marks = render_face(
            person, rng.uniform(0, 5, 8), size=112, pose=Pose.centred(112, angle), seed=k
        )
        left, right = marks[36:42].mean(axis=0), marks[42:48].mean(axis=0)
        assert np.degrees(np.arctan2(right[1] - left[1], right[0] - left[0])) == pytest.approx(
            angle, abs=1e-6
        )
        assert ((marks > 0) & (marks < 111)).all()
        grey = image.astype(float).mean(axis=2)
        at = np.rint(marks).astype(int)
        eyes = grey[at[36:48, 1], at[36:48, 0]].mean()
        skin = np.median(grey[at[[1, 2, 14, 15, 29], 1], at[[1, 2, 14, 15, 29], 0]])
        darker.append(skin - eyes)
    assert min(darker) > 15


def test_aus_change_the_pixels_where_they_act():
    person = sample_identity(np.random.default_rng(2))
    person = type(person)(**{**person.__dict__, "noise": 0.0, "blur": 0.0})
    neutral, marks = render_face(person, np.zeros(8), size=112, seed=0)
    smile, _ = render_face(person, np.array([0, 0, 0, 0, 5.0, 0, 0, 0]), size=112, seed=0)
    diff = np.abs(smile.astype(int) - neutral.astype(int)).sum(axis=2) > 30
    rows = np.flatnonzero(diff.any(axis=1))
    assert rows.size and rows.min() > marks[30, 1] - 5  # only below the nose
    brows, _ = render_face(person, np.array([5.0, 5.0, 0, 0, 0, 0, 0, 0]), size=112, seed=0)
    rows = np.flatnonzero((np.abs(brows.astype(int) - neutral.astype(int)).sum(axis=2) > 30).any(axis=1))
    assert rows.size and rows.max() < marks[30, 1]  # only above the nose tip


def test_frame_renderer_draws_several_faces():
    rng = np.random.default_rng(3)
    people = [sample_identity(rng) for _ in range(2)]
    renderer = FrameRenderer(200, 120, people[0], rng)
    faces = [(people[0], np.zeros(8), Pose(50, 60, 20)), (people[1], np.zeros(8), Pose(150, 60, 20, 10))]
    image, marks = renderer.render(faces)
    assert image.shape == (120, 200, 3) and image.dtype == np.uint8
    assert len(marks) == 2 and marks[0][:, 0].max() < 100 < marks[1][:, 0].min()
