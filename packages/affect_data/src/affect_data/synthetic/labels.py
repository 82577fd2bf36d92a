"""A generative model of affect labels: expressions drive action units and valence-arousal.

Per frame: an expression (drawn from an imbalanced prior shaped like the real data sets'), the intensities of
twelve AUs (DISFA's twelve; the eight shared with Aff-Wild2 are drawn on the face), and valence-arousal near
the expression's place on the circumplex. Videos are sequences of expression segments; the face moves smoothly
between them (intensities are smoothed over time) and valence-arousal follow as smoothed random walks. People
differ in how expressive they are and in AUs they show at rest, and AUs also occur outside the expression
profiles (talking parts the lips, brows move during speech), so no task is a function of another.

AU presence follows the annotators' convention: the intensity rounded to the 0-5 integer scale is at least 2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..schema import AU_NAMES, EXPR_NAMES

#: DISFA's twelve AUs, in DISFA's file order. The renderer draws the eight of ``AU_NAMES``.
ALL_AU_NAMES: tuple[str, ...] = (
    "AU1",
    "AU2",
    "AU4",
    "AU5",
    "AU6",
    "AU9",
    "AU12",
    "AU15",
    "AU17",
    "AU20",
    "AU25",
    "AU26",
)
#: Positions of ``AU_NAMES`` (the shared eight) in ``ALL_AU_NAMES``.
SHARED_AU_INDEX: np.ndarray = np.array([ALL_AU_NAMES.index(name) for name in AU_NAMES])

#: Expression frequencies in Aff-Wild2 order (Neutral, Anger, Disgust, Fear, Happiness, Sadness, Surprise).
#: Shaped like the real sets: neutral and happiness common, disgust and fear rare.
EXPRESSION_PRIORS: dict[str, np.ndarray] = {
    # Aff-Wild2 expression set (ABAW 2020 training frames, roughly).
    "aff_wild2": np.array([0.38, 0.06, 0.025, 0.03, 0.25, 0.16, 0.095]),
    # ExpW's published class counts remapped to Aff-Wild2 order.
    "expw": np.array([0.38, 0.04, 0.044, 0.012, 0.333, 0.115, 0.076]),
    # DISFA: spontaneous reactions to video clips, mostly neutral, many smiles.
    "disfa": np.array([0.45, 0.03, 0.05, 0.03, 0.27, 0.07, 0.10]),
    # AFEW-VA: film clips chosen for their emotional content.
    "afew_va": np.array([0.25, 0.14, 0.06, 0.08, 0.22, 0.15, 0.10]),
}

#: Apex intensity (0-5) of each AU of ``ALL_AU_NAMES`` for each expression (rows in Aff-Wild2 order),
#: after the prototypes of EMFACS: happiness AU6+12(+25), surprise AU1+2+5+25/26, sadness AU1+4+15(+17),
#: anger AU4+5(+17, 20), fear AU1+2+4+5+20+25, disgust AU9+15(+4, 17, 25).
AU_PROFILES: np.ndarray = np.array(
    [
        # AU1 AU2 AU4 AU5 AU6 AU9 AU12 AU15 AU17 AU20 AU25 AU26
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # Neutral
        [0.3, 0.0, 3.8, 1.8, 0.4, 0.8, 0.0, 0.8, 2.0, 2.0, 1.0, 0.3],  # Anger
        [0.3, 0.0, 3.0, 0.0, 1.0, 3.4, 0.3, 3.0, 1.8, 0.5, 1.8, 0.4],  # Disgust
        [3.4, 2.8, 2.6, 3.0, 0.0, 0.0, 0.0, 0.5, 0.3, 3.4, 3.2, 1.5],  # Fear
        [0.2, 0.2, 0.0, 0.0, 3.6, 0.0, 4.2, 0.0, 0.0, 0.2, 2.8, 1.0],  # Happiness
        [3.2, 0.3, 2.8, 0.0, 0.4, 0.0, 0.0, 3.4, 2.0, 0.3, 0.4, 0.0],  # Sadness
        [3.8, 3.6, 0.0, 3.2, 0.0, 0.0, 0.2, 0.0, 0.0, 0.3, 3.8, 3.2],  # Surprise
    ]
)

#: (valence, arousal) of each expression at full intensity, after Russell's circumplex.
CIRCUMPLEX: np.ndarray = np.array(
    [
        [0.0, 0.0],  # Neutral
        [-0.6, 0.65],  # Anger
        [-0.65, 0.35],  # Disgust
        [-0.55, 0.7],  # Fear
        [0.7, 0.4],  # Happiness
        [-0.6, -0.4],  # Sadness
        [0.25, 0.75],  # Surprise
    ]
)

# AUs that appear on their own (speech, emphasis), with the chance of each being the one that appears.
_SPONTANEOUS = {"AU25": 0.35, "AU1": 0.1, "AU2": 0.1, "AU4": 0.1, "AU12": 0.1, "AU6": 0.05, "AU15": 0.05,
                "AU20": 0.05, "AU17": 0.05, "AU26": 0.05}  # fmt: skip
_SPONTANEOUS_INDEX = np.array([ALL_AU_NAMES.index(name) for name in _SPONTANEOUS])
_SPONTANEOUS_P = np.array(list(_SPONTANEOUS.values()))

assert AU_PROFILES.shape == (len(EXPR_NAMES), len(ALL_AU_NAMES))
assert all(abs(p.sum() - 1.0) < 1e-9 for p in EXPRESSION_PRIORS.values())


@dataclass(frozen=True)
class Person:
    """How one person expresses: overall expressivity, AUs shown at rest, and a valence-arousal offset."""

    expressivity: float
    au_rest: np.ndarray  # (12,) intensity added to every frame
    va_offset: np.ndarray  # (2,)


@dataclass(frozen=True)
class LabelTrack:
    """Labels of consecutive frames (a video) or of independent faces (stills).

    ``intensity`` holds the continuous AU intensities the face shows (what the renderer draws), ``au_level``
    the annotators' integer 0-5 levels, ``expr`` the expression index, ``va`` valence-arousal in [-1, 1].
    """

    intensity: np.ndarray  # (T, 12) float
    au_level: np.ndarray  # (T, 12) int8, 0..5
    expr: np.ndarray  # (T,) int64
    va: np.ndarray  # (T, 2) float

    @property
    def au_presence(self) -> np.ndarray:
        """(T, 8) int8 presence of the shared eight AUs: level >= 2."""
        return (self.au_level[:, SHARED_AU_INDEX] >= 2).astype(np.int8)

    @property
    def shared_intensity(self) -> np.ndarray:
        """(T, 8) continuous intensities of the shared eight AUs, the renderer's input."""
        return self.intensity[:, SHARED_AU_INDEX]

    def __len__(self) -> int:
        return len(self.expr)


def sample_person(rng: np.random.Generator) -> Person:
    """Draw how a person expresses (see :class:`Person`)."""
    rest = np.maximum(rng.normal(-0.2, 0.45, len(ALL_AU_NAMES)), 0.0)
    return Person(
        expressivity=float(rng.uniform(0.75, 1.2)),
        au_rest=rest,
        va_offset=rng.normal(0.0, 0.07, 2),
    )


def _levels(intensity: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(intensity), 0, 5).astype(np.int8)


def _segment_targets(rng: np.random.Generator, expr: int, person: Person) -> tuple[np.ndarray, np.ndarray]:
    """AU intensities and valence-arousal that one occurrence of ``expr`` aims at."""
    apex = rng.uniform(0.45, 1.2) * person.expressivity
    # People rarely show a whole prototype: each AU varies in strength and is sometimes left out.
    shown = rng.random(len(ALL_AU_NAMES)) >= 0.15
    au = AU_PROFILES[expr] * apex * rng.lognormal(0.0, 0.3, len(ALL_AU_NAMES)) * shown
    if rng.random() < 0.35:
        au[rng.choice(_SPONTANEOUS_INDEX, p=_SPONTANEOUS_P)] += rng.uniform(1.0, 3.8)
    au = au + person.au_rest
    strength = min(apex, 1.2) / 1.2
    spread = 0.15 if expr == 0 else 0.1
    va = CIRCUMPLEX[expr] * (0.45 + 0.55 * strength) + person.va_offset + rng.normal(0.0, spread, 2)
    return au, va


def sample_video_labels(
    rng: np.random.Generator,
    n_frames: int,
    person: Person,
    prior: np.ndarray,
    segment_frames: tuple[int, int] = (25, 110),
    include: tuple[int, ...] = (),
) -> LabelTrack:
    """Labels of a video: expression segments with smooth transitions, VA as smoothed random walks.

    Parameters
    ----------
    rng : numpy.random.Generator
    n_frames : int
        Number of frames.
    person : Person
        The subject (fixed over the video).
    prior : array of 7 floats
        Expression frequencies (see ``EXPRESSION_PRIORS``).
    segment_frames : (int, int)
        Range of segment lengths in frames.
    include : tuple of int
        Expressions that must occur: each takes over a distinct random segment (as many as there are
        segments). Used to give small validation sets every class.

    Example
    -------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> track = sample_video_labels(rng, 200, sample_person(rng), EXPRESSION_PRIORS["aff_wild2"])
    >>> track.au_presence.shape, track.va.shape
    ((200, 8), (200, 2))
    """
    if n_frames < 1:
        raise ValueError(f"n_frames must be at least 1, got {n_frames}")
    bounds = [0]
    while bounds[-1] < n_frames:
        bounds.append(min(n_frames, bounds[-1] + int(rng.integers(segment_frames[0], segment_frames[1] + 1))))
    segment_expr = rng.choice(len(prior), size=len(bounds) - 1, p=prior)
    forced = list(include)[: len(segment_expr)]
    segment_expr[rng.permutation(len(segment_expr))[: len(forced)]] = forced
    expr = np.empty(n_frames, dtype=np.int64)
    au_target = np.empty((n_frames, len(ALL_AU_NAMES)))
    va_target = np.empty((n_frames, 2))
    for start, stop, e in zip(bounds[:-1], bounds[1:], segment_expr, strict=True):
        expr[start:stop] = e
        au_target[start:stop], va_target[start:stop] = _segment_targets(rng, int(e), person)
    # scipy is imported where it is used: a config check that looks up PRESETS must not pay a second for it.
    from scipy.ndimage import gaussian_filter1d

    # A centred smoothing puts the middle of each transition at the segment boundary, where the label changes.
    intensity = gaussian_filter1d(au_target, sigma=4.0, axis=0, mode="nearest")
    wobble = gaussian_filter1d(rng.normal(0.0, 1.0, intensity.shape), sigma=3.0, axis=0, mode="nearest")
    intensity = np.clip(intensity + 0.6 * wobble, 0.0, 5.0)
    va = gaussian_filter1d(va_target, sigma=7.0, axis=0, mode="nearest") + _ou_walk(rng, n_frames)
    return LabelTrack(intensity, _levels(intensity), expr, np.clip(va, -1.0, 1.0).round(3))


def _ou_walk(rng: np.random.Generator, n: int, theta: float = 0.04, sigma: float = 0.025) -> np.ndarray:
    """A mean-reverting random walk (Ornstein-Uhlenbeck), smoothed: the drift of a continuous rating."""
    from scipy.ndimage import gaussian_filter1d
    from scipy.signal import lfilter

    walk = lfilter([1.0], [1.0, theta - 1.0], rng.normal(0.0, sigma, (n, 2)), axis=0)
    return gaussian_filter1d(walk, sigma=2.0, axis=0, mode="nearest")


def sample_still_labels(rng: np.random.Generator, people: list[Person], prior: np.ndarray) -> LabelTrack:
    """Labels of independent faces (a still-image set such as ExpW), one per person in ``people``.

    Example
    -------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> track = sample_still_labels(rng, [sample_person(rng) for _ in range(5)], EXPRESSION_PRIORS["expw"])
    >>> len(track)
    5
    """
    n = len(people)
    expr = rng.choice(len(prior), size=n, p=prior).astype(np.int64)
    intensity = np.empty((n, len(ALL_AU_NAMES)))
    va = np.empty((n, 2))
    for i, (e, person) in enumerate(zip(expr, people, strict=True)):
        intensity[i], va[i] = _segment_targets(rng, int(e), person)
    intensity = np.clip(intensity + rng.normal(0.0, 0.35, intensity.shape), 0.0, 5.0)
    return LabelTrack(intensity, _levels(intensity), expr, np.clip(va, -1.0, 1.0).round(3))
