"""Face geometry driven by action-unit intensities: the 68 iBUG landmarks and the outlines the renderer draws.

Everything here lives in a canonical face frame: origin near the nose, x to the image right, y down, one unit
= half the face width at ear level. The renderer maps the frame to pixels with one similarity transform, so
the landmarks it returns are consistent with the drawing by construction.

Landmark order (iBUG 68): jaw 0-16 (from the image-left ear around the chin), brows 17-21 (image left, outer
to inner) and 22-26 (inner to outer), nose bridge 27-30 and base 31-35, eyes 36-41 (image left: outer corner,
upper lid, inner corner, lower lid) and 42-47 (image right: inner corner first), outer lips 48-59 (from the
image-left corner over the upper lip), inner lips 60-67.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

# Top of the FACS intensity scale ("E"); every AU effect grows linearly up to it.
MAX_INTENSITY = 5.0


@dataclass(frozen=True)
class FaceShape:
    """Identity geometry of a face in canonical units (one unit = half the face width at ear level)."""

    jaw_drop: float = 1.15  # ear level to chin
    squareness: float = 2.2  # superellipse exponent of the jaw: 2 is an ellipse, larger is squarer
    forehead: float = 1.1  # ear level to the top of the head
    eye_y: float = -0.28
    eye_dx: float = 0.40  # half the distance between the eye centres
    eye_w: float = 0.17  # half the eye width
    eye_h: float = 0.075  # half the eye opening
    brow_gap: float = 0.20  # eye centre to brow
    brow_len: float = 0.22  # half the brow length
    brow_arch: float = 0.05
    brow_thick: float = 0.07
    nose_y: float = 0.18  # nose tip
    nose_w: float = 0.13  # half the width of the nose base
    mouth_y: float = 0.55
    mouth_w: float = 0.30  # half the mouth width
    lip_up: float = 0.06  # upper lip thickness
    lip_lo: float = 0.08  # lower lip thickness
    rest_smile: float = 0.0  # resting lip-corner height, positive = up (a face that looks happy at rest)
    rest_brow: float = 0.0  # resting brow height, positive = up


@dataclass(frozen=True)
class Geometry:
    """Landmarks and drawing outlines of one face in canonical units, plus the AU-driven wrinkle strengths."""

    landmarks: np.ndarray  # (68, 2)
    face: np.ndarray  # closed outline of jaw and skull
    eyes: tuple[np.ndarray, np.ndarray]  # closed eye outlines
    irises: tuple[np.ndarray, np.ndarray]  # iris polygons, already clipped to the eye opening
    brows: tuple[np.ndarray, np.ndarray]  # polylines of 5 points
    upper_lip: np.ndarray
    lower_lip: np.ndarray
    mouth_inside: np.ndarray  # empty (0, 2) when the lips touch
    teeth: np.ndarray  # empty (0, 2) when the lips touch
    lip_line: np.ndarray  # polyline where the lips meet
    cheeks: tuple[np.ndarray, np.ndarray]
    wrinkles: tuple[tuple[np.ndarray, float], ...]  # (polyline, darkness in [0, 1])


_T17 = np.linspace(np.pi, 0.0, 17)
_T_FACE = np.linspace(np.pi, 0.0, 33)
_T_SKULL = np.linspace(0.0, np.pi, 25)[1:-1]
_T_LID = np.linspace(-1.0, 1.0, 9)
_T_LIP = np.linspace(-1.0, 1.0, 13)
_T_CIRCLE = np.linspace(0.0, 2.0 * np.pi, 13)[:-1]
_UNIT_CIRCLE = np.stack([np.cos(_T_CIRCLE), np.sin(_T_CIRCLE)], axis=1)
_BROW_J = np.linspace(0.0, 1.0, 5)  # 0 = outer end, 1 = inner end
_BRIDGE_T = np.linspace(0.0, 1.0, 4)
_BASE_T = np.linspace(-1.0, 1.0, 5)
_FOREHEAD_X = np.linspace(-0.45, 0.45, 7)
_FOLD_Q = np.linspace(0.0, 1.0, 6)[:, None]
# Lip parameter t (-1 = image-left corner, 1 = right corner) of the mouth landmarks: outer upper lip 48-54,
# outer lower lip 55-59 (right to left), inner upper 60-64, inner lower 65-67.
_LIP_MARKS = (
    np.array([-1.0, -2.0 / 3.0, -1.0 / 3.0, 0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0]),
    np.array([2.0, 1.0, 0.0, -1.0, -2.0]) / 3.0,
    np.array([-0.85, -1.0 / 3.0, 0.0, 1.0 / 3.0, 0.85]),
    np.array([1.0, 0.0, -1.0]) / 3.0,
)
_T_MOUTH = np.concatenate([_T_LIP, *_LIP_MARKS])
_Q_OUTER_UP, _Q_OUTER_LO, _Q_INNER_UP, _Q_INNER_LO = (
    slice(len(_T_LIP) + sum(map(len, _LIP_MARKS[:k])), len(_T_LIP) + sum(map(len, _LIP_MARKS[: k + 1])))
    for k in range(4)
)
_Q_MOUTH = slice(len(_T_LIP), len(_T_MOUTH))


def _superellipse(t: np.ndarray, a: float, b: float, n: float) -> tuple[np.ndarray, np.ndarray]:
    c, s = np.cos(t), np.sin(t)
    return a * np.sign(c) * np.abs(c) ** (2.0 / n), b * np.sign(s) * np.abs(s) ** (2.0 / n)


def _ellipse(cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    return _UNIT_CIRCLE * (rx, ry) + (cx, cy)


@functools.lru_cache(maxsize=512)
def _head(
    jaw_drop: float, squareness: float, forehead: float, jaw_top: float
) -> tuple[np.ndarray, np.ndarray]:
    """The 17 jaw landmarks and the closed jaw + skull outline (they do not move with the AUs)."""
    jx, jy = _superellipse(_T17, 1.0, jaw_drop, squareness)
    jaw = np.stack([jx, jaw_top + jy], axis=1)
    fx, fy = _superellipse(_T_FACE, 1.0, jaw_drop, squareness)
    lower_face = np.stack([fx, jaw_top + fy], axis=1)
    skull = np.stack([np.cos(_T_SKULL), jaw_top - forehead * np.sin(_T_SKULL)], axis=1)
    jaw.setflags(write=False)
    face = np.concatenate([lower_face, skull])
    face.setflags(write=False)
    return jaw, face


def face_geometry(shape: FaceShape, intensities: np.ndarray) -> Geometry:
    """Place the landmarks and outlines of a face showing the given AU intensities.

    Parameters
    ----------
    shape : FaceShape
        The identity's geometry.
    intensities : array of 8 floats
        AU1, AU2, AU4, AU6, AU12, AU15, AU20, AU25 intensities on the FACS 0-5 scale (clipped to it).

    Returns
    -------
    Geometry
        Canonical-unit landmarks (68 x 2) and outlines.

    Example
    -------
    >>> import numpy as np
    >>> geo = face_geometry(FaceShape(), np.zeros(8))
    >>> geo.landmarks.shape
    (68, 2)
    """
    u = np.clip(np.asarray(intensities, dtype=float), 0.0, MAX_INTENSITY) / MAX_INTENSITY
    if u.shape != (8,):
        raise ValueError(
            f"expected 8 AU intensities (AU1 AU2 AU4 AU6 AU12 AU15 AU20 AU25), got shape {u.shape}"
        )
    au1, au2, au4, au6, au12, au15, au20, au25 = u
    s = shape
    jaw_top = s.eye_y + 0.08

    jaw, face = _head(s.jaw_drop, s.squareness, s.forehead, jaw_top)

    # Brows: AU1 lifts the inner ends, AU2 the outer ends, AU4 lowers them and pulls them together.
    j = _BROW_J
    base_y = s.eye_y - s.brow_gap - s.rest_brow - s.brow_arch * (1.0 - (2.0 * j - 1.2) ** 2)
    lift = 0.26 * au1 * j**1.5 + 0.22 * au2 * (1.0 - j) ** 1.5 - 0.13 * au4
    brow_y = base_y - lift
    inward = 0.10 * au4 * j
    left_brow = np.stack([-s.eye_dx - s.brow_len + 2.0 * s.brow_len * j + inward, brow_y], axis=1)
    right_brow = left_brow[::-1] * np.array([-1.0, 1.0])

    # Eyes: AU6 pushes the lower lid up, AU4 lowers the upper lid, AU1 + AU2 widen the eye a little.
    up = s.eye_h * (1.0 + 0.35 * max(au1, au2) - 0.35 * au4)
    lo = s.eye_h * (1.0 - 0.75 * au6)
    lid = 1.0 - _T_LID**2
    eyes, irises, eye_marks = [], [], []
    for side in (-1.0, 1.0):
        cx = side * s.eye_dx
        xs = cx + s.eye_w * _T_LID
        upper = np.stack([xs, s.eye_y - up * lid], axis=1)
        lower = np.stack([xs, s.eye_y + lo * lid], axis=1)
        eyes.append(np.concatenate([upper, lower[::-1][1:-1]]))
        r = 0.62 * s.eye_w
        iris = _ellipse(cx, s.eye_y, r, r)
        iris[:, 1] = np.clip(iris[:, 1], s.eye_y - 0.9 * up, s.eye_y + 0.9 * lo)
        irises.append(iris)
        # Corners, then lid points at x = -1/3 and +1/3 of the half width (lid curve value 8/9).
        outer_x, inner_x = (cx - s.eye_w, cx + s.eye_w) if side < 0 else (cx + s.eye_w, cx - s.eye_w)
        near_outer, near_inner = cx + side * s.eye_w / 3.0, cx - side * s.eye_w / 3.0
        top, bottom = s.eye_y - up * 8.0 / 9.0, s.eye_y + lo * 8.0 / 9.0
        if side < 0:  # 36 outer, 37 38 upper lid, 39 inner, 40 41 lower lid
            eye_marks.append(
                [
                    (outer_x, s.eye_y),
                    (near_outer, top),
                    (near_inner, top),
                    (inner_x, s.eye_y),
                    (near_inner, bottom),
                    (near_outer, bottom),
                ]
            )
        else:  # 42 inner, 43 44 upper lid, 45 outer, 46 47 lower lid
            eye_marks.append(
                [
                    (inner_x, s.eye_y),
                    (near_inner, top),
                    (near_outer, top),
                    (outer_x, s.eye_y),
                    (near_outer, bottom),
                    (near_inner, bottom),
                ]
            )

    # Nose.
    bridge = np.stack([np.zeros(4), s.eye_y + (s.nose_y - s.eye_y) * _BRIDGE_T], axis=1)
    base = np.stack([s.nose_w * _BASE_T, s.nose_y + 0.05 - 0.04 * _BASE_T**2], axis=1)

    # Mouth: AU12 pulls the corners up and out, AU15 down, AU20 stretches them sideways and thins the lips,
    # AU25 parts the lips.
    corner_up = s.rest_smile + 0.20 * au12 - 0.18 * au15
    half_w = s.mouth_w * (1.0 + 0.22 * au12 + 0.45 * au20)
    gap = 0.24 * au25
    thin = 1.0 - 0.4 * au20
    # Evaluate the four lip curves on the drawing grid and at the landmark positions in one pass.
    t = _T_MOUTH
    bulge = 1.0 - t**2
    mid = s.mouth_y - corner_up * t**2
    xs = half_w * t
    y_inner_up = mid - 0.5 * gap * bulge
    y_inner_lo = mid + 0.5 * gap * bulge
    lip_shape = thin * bulge**0.6
    bow = 0.35 * np.exp(-((np.abs(t) - 0.25) ** 2) / 0.02)  # Cupid's bow: two peaks on the upper lip
    y_outer_up = y_inner_up - s.lip_up * lip_shape * (1.0 + bow)
    y_outer_lo = y_inner_lo + s.lip_lo * lip_shape
    grid = slice(0, len(_T_LIP))
    inner_up = np.stack([xs[grid], y_inner_up[grid]], axis=1)
    inner_lo = np.stack([xs[grid], y_inner_lo[grid]], axis=1)
    outer_up = np.stack([xs[grid], y_outer_up[grid]], axis=1)
    outer_lo = np.stack([xs[grid], y_outer_lo[grid]], axis=1)
    upper_lip = np.concatenate([outer_up, inner_up[::-1][1:-1]])
    lower_lip = np.concatenate([outer_lo, inner_lo[::-1][1:-1]])
    if gap > 0.01:
        mouth_inside = np.concatenate([inner_up, inner_lo[::-1][1:-1]])
        teeth_lo = inner_up.copy()
        teeth_lo[:, 1] = np.minimum(inner_up[:, 1] + min(gap * 0.45, 0.05) * bulge[grid], inner_lo[:, 1])
        teeth = np.concatenate([inner_up[2:-2], teeth_lo[2:-2][::-1]])
    else:
        mouth_inside = teeth = np.zeros((0, 2))
    marks_y = np.concatenate(
        [
            y_outer_up[_Q_OUTER_UP],  # 48-54
            y_outer_lo[_Q_OUTER_LO],  # 55-59
            y_inner_up[_Q_INNER_UP],  # 60-64
            y_inner_lo[_Q_INNER_LO],  # 65-67
        ]
    )
    mouth_marks = np.stack([xs[_Q_MOUTH], marks_y], axis=1)

    landmarks = np.concatenate(
        [jaw, left_brow, right_brow, bridge, base, *map(np.asarray, eye_marks), mouth_marks]
    )

    # Cheeks rise with AU6.
    cheek_y = s.eye_y + 0.36 - 0.14 * au6
    cheeks = (
        _ellipse(-s.eye_dx - 0.03, cheek_y, 0.21, 0.13),
        _ellipse(s.eye_dx + 0.03, cheek_y, 0.21, 0.13),
    )

    wrinkles: list[tuple[np.ndarray, float]] = []
    brow_top = float(brow_y.min())
    forehead = 0.45 * max(au1, au2)  # horizontal forehead lines
    if forehead > 0.05:
        for k in range(3):
            y = brow_top - 0.10 - 0.08 * k
            xs_f = _FOREHEAD_X
            wrinkles.append((np.stack([xs_f, y - 0.04 * (1.0 - (xs_f / 0.45) ** 2)], axis=1), forehead))
    if au4 > 0.05:  # vertical furrows between the brows
        for side in (-1.0, 1.0):
            x = side * (0.07 - 0.02 * au4)
            wrinkles.append(
                (np.array([[x, s.eye_y - 0.05], [x * 0.8, s.eye_y - s.brow_gap - 0.05]]), 0.5 * au4)
            )
    nasolabial = 0.08 + 0.45 * au12  # folds from the nose wings to the mouth corners
    for side in (-1.0, 1.0):
        start = (side * (s.nose_w + 0.06), s.nose_y - 0.02)
        end = (side * (half_w + 0.07), s.mouth_y - corner_up + 0.06)
        ctrl = (side * (s.nose_w + 0.22 + 0.1 * au12), 0.5 * (start[1] + end[1]))
        q = _FOLD_Q
        curve = (1 - q) ** 2 * np.array(start) + 2 * (1 - q) * q * np.array(ctrl) + q**2 * np.array(end)
        wrinkles.append((curve, nasolabial))
    if au6 > 0.05:  # crow's feet
        for side in (-1.0, 1.0):
            x0 = side * (s.eye_dx + s.eye_w + 0.04)
            for dy in (-0.05, 0.0, 0.05):
                wrinkles.append(
                    (np.array([[x0, s.eye_y + dy], [x0 + side * 0.09, s.eye_y + 1.8 * dy]]), 0.5 * au6)
                )
    if au15 > 0.05:  # lines down from the mouth corners
        for side in (-1.0, 1.0):
            x0, y0 = side * half_w, s.mouth_y - corner_up
            wrinkles.append((np.array([[x0, y0 + 0.03], [x0 + side * 0.04, y0 + 0.25]]), 0.5 * au15))

    return Geometry(
        landmarks=landmarks,
        face=face,
        eyes=(eyes[0], eyes[1]),
        irises=(irises[0], irises[1]),
        brows=(left_brow, right_brow),
        upper_lip=upper_lip,
        lower_lip=lower_lip,
        mouth_inside=mouth_inside,
        teeth=teeth,
        lip_line=inner_up,
        cheeks=cheeks,
        wrinkles=tuple(wrinkles),
    )
