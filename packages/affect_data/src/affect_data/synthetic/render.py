"""Fast PIL renderer of synthetic faces whose geometry follows eight AU intensities.

A frame is drawn at ``SUPERSAMPLE`` times its size on a background prepared once per video, shrunk with a box
filter (anti-aliasing), then lit by a gradient, blurred and given sensor noise. Each face is placed by a
:class:`Pose` (a similarity transform of the canonical face frame of :mod:`.geometry`), and its 68 landmarks
come back in the frame's pixel coordinates (pixel centres at integer coordinates, x right, y down).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .geometry import FaceShape, face_geometry

SUPERSAMPLE = 2

_SKIN = np.array(
    [
        (244, 205, 180),
        (234, 188, 158),
        (222, 170, 135),
        (198, 140, 102),
        (170, 112, 80),
        (132, 86, 60),
        (96, 62, 44),
    ],
    dtype=float,
)
_HAIR = np.array(
    [(28, 24, 22), (62, 44, 30), (105, 72, 44), (182, 150, 96), (128, 60, 34), (150, 148, 145)], float
)
_IRIS = np.array([(72, 46, 26), (40, 28, 20), (52, 92, 128), (70, 100, 70)], dtype=float)


@dataclass(frozen=True)
class Identity:
    """Everything that makes one synthetic person (and their filming conditions) look the way they do."""

    shape: FaceShape = field(default_factory=FaceShape)
    skin: tuple[int, int, int] = (222, 170, 135)
    hair: tuple[int, int, int] = (62, 44, 30)
    hair_style: int = 1  # 0 bald, 1 short, 2 long
    iris: tuple[int, int, int] = (72, 46, 26)
    lips: tuple[int, int, int] = (180, 100, 95)
    glasses: bool = False
    background: tuple[int, int, int] = (120, 130, 140)
    light_angle: float = 0.0  # direction the light comes from, radians
    light_strength: float = 0.2  # brightness difference across the frame, as a fraction
    brightness: float = 1.0
    noise: float = 4.0  # sensor noise standard deviation, grey levels
    blur: float = 0.0  # Gaussian blur radius at the output size, pixels


@dataclass(frozen=True)
class Pose:
    """Where a face sits in the frame: centre of the canonical frame, pixels per unit, in-plane angle (deg).

    The canonical origin is near the nose tip; the face spans about 2.3 units vertically and 2 horizontally.
    A positive angle turns the face clockwise on screen.
    """

    cx: float
    cy: float
    scale: float
    angle: float = 0.0

    @classmethod
    def centred(cls, size: int, angle: float = 0.0) -> Pose:
        """The pose of an aligned face crop of ``size`` pixels (Aff-Wild2 ``cropped_aligned`` style)."""
        return cls(cx=size * 0.5, cy=size * 0.55, scale=size * 0.32, angle=angle)


def _rgb(color) -> tuple[int, int, int]:
    """A colour as PIL takes it: three ints, clipped to 0-255 and truncated."""
    return tuple(int(v) for v in np.clip(color, 0, 255))


def _blend(color, toward, amount: float) -> tuple[int, int, int]:
    return _rgb(np.asarray(color, float) * (1.0 - amount) + np.asarray(toward, float) * amount)


def sample_identity(rng: np.random.Generator) -> Identity:
    """Draw a random identity: face shape, colours, hair, glasses, and the lighting, noise and blur around it.

    Example
    -------
    >>> import numpy as np
    >>> sample_identity(np.random.default_rng(0)).hair_style in (0, 1, 2)
    True
    """
    u = rng.uniform
    shape = FaceShape(
        jaw_drop=u(1.0, 1.3),
        squareness=u(1.8, 3.2),
        forehead=u(1.0, 1.25),
        eye_y=u(-0.34, -0.22),
        eye_dx=u(0.34, 0.46),
        eye_w=u(0.14, 0.19),
        eye_h=u(0.06, 0.085),
        brow_gap=u(0.17, 0.23),
        brow_len=u(0.18, 0.25),
        brow_arch=u(0.0, 0.08),
        brow_thick=u(0.045, 0.1),
        nose_y=u(0.12, 0.24),
        nose_w=u(0.10, 0.16),
        mouth_y=u(0.48, 0.62),
        mouth_w=u(0.24, 0.34),
        lip_up=u(0.035, 0.075),
        lip_lo=u(0.05, 0.1),
        rest_smile=rng.normal(0.0, 0.02),
        rest_brow=rng.normal(0.0, 0.02),
    )
    k = rng.uniform(0, len(_SKIN) - 1)
    lo = int(k)
    skin = _SKIN[lo] * (1 - (k - lo)) + _SKIN[lo + 1] * (k - lo) + rng.normal(0, 6, 3)
    hair = _HAIR[rng.integers(len(_HAIR))] + rng.normal(0, 8, 3)
    lips = skin * np.array([0.82, 0.55, 0.55]) + np.array([30.0, 5.0, 5.0]) + rng.normal(0, 6, 3)
    background = rng.uniform(40, 220, 3)
    return Identity(
        shape=shape,
        skin=_rgb(skin),
        hair=_rgb(hair),
        hair_style=int(rng.choice(3, p=[0.15, 0.5, 0.35])),
        iris=_rgb(_IRIS[rng.integers(len(_IRIS))]),
        lips=_rgb(lips),
        glasses=bool(rng.random() < 0.15),
        background=_rgb(background),
        light_angle=u(0.0, 2.0 * np.pi),
        light_strength=u(0.0, 0.45),
        brightness=u(0.75, 1.2),
        noise=u(1.0, 9.0),
        blur=float(rng.choice([0.0, u(0.3, 1.1)], p=[0.6, 0.4])),
    )


def make_background(
    width: int, height: int, base: tuple[int, int, int], rng: np.random.Generator, clutter: int = 6
) -> Image.Image:
    """A supersampled background: the base colour plus a few random rectangles and ellipses (a "scene")."""
    ss = SUPERSAMPLE
    img = Image.new("RGB", (width * ss, height * ss), base)
    draw = ImageDraw.Draw(img)
    for _ in range(clutter):
        x0, y0 = rng.uniform(-0.2, 1.0) * width * ss, rng.uniform(-0.2, 1.0) * height * ss
        w, h = rng.uniform(0.1, 0.6) * width * ss, rng.uniform(0.1, 0.6) * height * ss
        color = _blend(base, rng.uniform(0, 255, 3), rng.uniform(0.2, 0.6))
        box = [x0, y0, x0 + w, y0 + h]
        (draw.rectangle if rng.random() < 0.5 else draw.ellipse)(box, fill=color)
    return img


class FrameRenderer:
    """Renders frames of one video (fixed size, background, lighting and noise level) quickly.

    Parameters
    ----------
    width, height : int
        Output frame size in pixels.
    identity : Identity
        Provides the lighting, blur and noise of the video (every face in the frame shares them).
    rng : numpy.random.Generator
        Draws the background clutter now and the sensor noise of every frame later.
    background : PIL.Image.Image, optional
        A supersampled background from :func:`make_background`; drawn from ``rng`` when omitted.

    Example
    -------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> person = sample_identity(rng)
    >>> renderer = FrameRenderer(112, 112, person, rng)
    >>> image, marks = renderer.render([(person, np.zeros(8), Pose.centred(112))])
    >>> image.shape, marks[0].shape
    ((112, 112, 3), (68, 2))
    """

    def __init__(
        self,
        width: int,
        height: int,
        identity: Identity,
        rng: np.random.Generator,
        background: Image.Image | None = None,
    ) -> None:
        self.width, self.height = width, height
        self.identity = identity
        self.rng = rng
        if background is None:
            background = make_background(width, height, identity.background, rng)
        self.background = background
        # Lighting: a linear ramp across the frame in the light's direction, times the overall brightness.
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        r = 0.5 * max(width, height)
        ramp = (
            (xx - width / 2) * np.cos(identity.light_angle) + (yy - height / 2) * np.sin(identity.light_angle)
        ) / r
        self.light = (identity.brightness * (1.0 + 0.5 * identity.light_strength * ramp))[..., None]
        self._blur = ImageFilter.GaussianBlur(identity.blur) if identity.blur > 0.05 else None
        # Sensor noise: a bank twice the frame size drawn once, read at a random offset per frame (fast).
        self._noise = identity.noise * rng.standard_normal((2 * height, 2 * width, 1), dtype=np.float32)

    def render(
        self, faces: Sequence[tuple[Identity, np.ndarray, Pose]]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Draw ``faces``, a list of ``(identity, intensities[8], pose)``; return the uint8 image, landmarks.

        Landmarks are (68, 2) float arrays in output pixel coordinates, one per face, in the order given.
        """
        img = self.background.copy()
        draw = ImageDraw.Draw(img)
        marks = [draw_face(draw, identity, np.asarray(au, float), pose) for identity, au, pose in faces]
        img = img.reduce(SUPERSAMPLE)
        if self._blur is not None:
            img = img.filter(self._blur)
        pixels = np.asarray(img, dtype=np.float32)
        pixels *= self.light
        oy, ox = self.rng.integers(0, self.height), self.rng.integers(0, self.width)
        pixels += self._noise[oy : oy + self.height, ox : ox + self.width]
        np.clip(pixels, 0, 255, out=pixels)
        return pixels.astype(np.uint8), marks


@dataclass(frozen=True)
class _Look:
    """What an identity looks like regardless of expression: colours and the fixed parts, canonical units."""

    fixed_back: tuple[tuple[np.ndarray, tuple[int, int, int]], ...]  # drawn before the face
    hair_cap: np.ndarray | None
    glasses: tuple[np.ndarray, ...]
    nostrils: tuple[np.ndarray, np.ndarray]
    colors: dict[str, tuple[int, int, int]]


def _blend_fast(
    color: tuple[int, int, int], toward: tuple[int, int, int], amount: float
) -> tuple[int, int, int]:
    # Called per frame (cheeks, wrinkles): plain ints, no numpy. Not merged with _blend, whose float
    # rounding differs by one grey level at times and would change the seeded corpus's pixels.
    return tuple(int(c + (t - c) * amount) for c, t in zip(color, toward, strict=True))


@functools.lru_cache(maxsize=512)
def _look(identity: Identity) -> _Look:
    shape, skin, hair = identity.shape, identity.skin, identity.hair
    jaw_top = shape.eye_y + 0.08
    top = jaw_top - shape.forehead
    back: list[tuple[np.ndarray, tuple[int, int, int]]] = []
    if identity.hair_style == 2:  # long hair behind the head
        half = np.array([[-1.18, jaw_top + 0.9], [-1.25, jaw_top], [-1.1, top + 0.2], [0.0, top - 0.18]])
        back.append((np.concatenate([half, half[::-1] * np.array([-1.0, 1.0])]), hair))
    back.append(
        (np.array([[-0.45, 0.6], [0.45, 0.6], [0.55, 3.0], [-0.55, 3.0]]), _blend(skin, (0, 0, 0), 0.18))
    )
    for side in (-1.0, 1.0):
        ear = [[side * 0.95, shape.eye_y - 0.05], [side * 1.13, shape.eye_y], [side * 1.1, jaw_top + 0.3]]
        back.append((np.array([*ear, [side * 0.93, jaw_top + 0.35]]), _blend(skin, (0, 0, 0), 0.1)))
    cap = None
    if identity.hair_style > 0:  # hair cap over the top of the skull, down to a hairline
        t = np.linspace(0.0, np.pi, 15)
        arc = np.stack([1.04 * np.cos(t), jaw_top - (shape.forehead + 0.08) * np.sin(t)], axis=1)
        line_y = top + 0.45 * shape.forehead
        hairline = np.stack(
            [np.linspace(-1.0, 1.0, 7), line_y - 0.12 * np.cos(np.linspace(-1.4, 1.4, 7))], axis=1
        )
        cap = np.concatenate([arc, [[-1.0, jaw_top - 0.05]], hairline, [[1.0, jaw_top - 0.05]]])
    glasses: tuple[np.ndarray, ...] = ()
    if identity.glasses:
        t = np.linspace(0, 2 * np.pi, 17)
        rings = tuple(
            np.stack([side * shape.eye_dx + 0.3 * np.cos(t), shape.eye_y + 0.2 * np.sin(t)], axis=1)
            for side in (-1.0, 1.0)
        )
        bridge = np.array([[-shape.eye_dx + 0.3, shape.eye_y], [shape.eye_dx - 0.3, shape.eye_y]])
        glasses = (*rings, bridge)
    diamond = np.array([[-0.03, 0.0], [0.0, -0.02], [0.03, 0.0], [0.0, 0.015]])
    nostrils = tuple(
        diamond + np.array([side * 0.55 * shape.nose_w, shape.nose_y + 0.035]) for side in (-1.0, 1.0)
    )
    dark = _blend(skin, (20, 10, 10), 0.75)
    colors = {
        "skin": skin,
        "hair": hair,
        "dark": dark,
        "cheek": _blend(skin, (200, 60, 60), 0.06),
        "cheek_full": _blend(skin, (200, 60, 60), 0.3),
        "brow": _blend(hair, (0, 0, 0), 0.35),
        "lid": _blend(skin, (15, 10, 10), 0.85),
        "bridge": _blend(skin, dark, 0.2),
        "nose": _blend(skin, dark, 0.45),
        "upper_lip": _blend(identity.lips, (0, 0, 0), 0.1),
        "lower_lip": identity.lips,
        "lip_line": _blend(identity.lips, (0, 0, 0), 0.55),
    }
    return _Look(tuple(back), cap, glasses, (nostrils[0], nostrils[1]), colors)


_SCLERA, _PUPIL, _MOUTH, _TEETH, _FRAME = (
    (235, 232, 228),
    (12, 10, 10),
    (60, 20, 25),
    (232, 228, 215),
    (25, 25, 30),
)


def draw_face(
    draw: ImageDraw.ImageDraw, identity: Identity, intensities: np.ndarray, pose: Pose
) -> np.ndarray:
    """Draw one face on a supersampled canvas; return its 68 landmarks in output pixel coordinates."""
    shape = identity.shape
    look = _look(identity)
    c = look.colors
    geo = face_geometry(shape, intensities)
    u6 = min(max(float(intensities[3]), 0.0), 5.0) / 5.0

    # Collect every shape first so that one matrix product maps all of them to the canvas.
    ops: list[tuple[str, np.ndarray, tuple[int, int, int], float]] = []  # (kind, points, colour, width)
    ops += [("polygon", points, color, 0.0) for points, color in look.fixed_back]
    ops.append(("polygon", geo.face, c["skin"], 0.0))
    if look.hair_cap is not None:
        ops.append(("polygon", look.hair_cap, c["hair"], 0.0))
    cheek = _blend_fast(c["cheek"], c["cheek_full"], u6)
    ops += [("polygon", outline, cheek, 0.0) for outline in geo.cheeks]
    ops += [
        ("line", line, _blend_fast(c["skin"], c["dark"], min(darkness, 1.0)), 0.035)
        for line, darkness in geo.wrinkles
        if darkness > 0.04
    ]
    ops += [("brow", brow, c["brow"], shape.brow_thick) for brow in geo.brows]
    for eye, iris in zip(geo.eyes, geo.irises, strict=True):
        centre = iris.mean(axis=0)
        ops.append(("polygon", eye, _SCLERA, 0.0))
        ops.append(("polygon", iris, identity.iris, 0.0))
        ops.append(("polygon", centre + 0.4 * (iris - centre), _PUPIL, 0.0))
        ops.append(("closed", eye, c["lid"], 0.03))
        ops.append(("line", eye[:9], c["lid"], 0.045))  # upper lid and lashes
    ops += [("line", part, _FRAME, 0.03) for part in look.glasses]
    ops.append(("line", geo.landmarks[28:31] + np.array([0.04, 0.0]), c["bridge"], 0.03))
    ops.append(("brow", geo.landmarks[31:36], c["nose"], 0.035))
    ops += [("polygon", nostril, c["dark"], 0.0) for nostril in look.nostrils]
    if len(geo.mouth_inside):
        ops.append(("polygon", geo.mouth_inside, _MOUTH, 0.0))
        ops.append(("polygon", geo.teeth, _TEETH, 0.0))
    ops.append(("polygon", geo.upper_lip, c["upper_lip"], 0.0))
    ops.append(("polygon", geo.lower_lip, c["lower_lip"], 0.0))
    ops.append(("line", geo.lip_line, c["lip_line"], 0.02))

    ss = SUPERSAMPLE
    a = np.deg2rad(pose.angle)
    rot = pose.scale * np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    offset = np.array([pose.cx, pose.cy])
    points = np.concatenate([geo.landmarks] + [op[1] for op in ops])
    mapped = points @ rot + offset
    # Output pixel centre x sits at ss * x + (ss - 1) / 2 on the supersampled canvas.
    canvas = (mapped * ss + (ss - 1) / 2.0).ravel().tolist()  # flat x, y, x, y, ... as PIL accepts
    pixel = pose.scale * ss
    i = 2 * len(geo.landmarks)
    for kind, pts, color, units in ops:
        xy = canvas[i : i + 2 * len(pts)]
        i += 2 * len(pts)
        if kind == "polygon":
            draw.polygon(xy, fill=color)
        else:
            w = max(1, round(units * pixel))
            if kind == "closed":
                xy += xy[:2]
            draw.line(xy, fill=color, width=w, joint="curve" if kind != "line" else None)
    return mapped[: len(geo.landmarks)]


def render_face(
    identity: Identity,
    intensities,
    size: int = 112,
    pose: Pose | None = None,
    seed: int | None = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Render one face crop: a convenience wrapper around :class:`FrameRenderer` for a single frame.

    Parameters
    ----------
    identity : Identity
        The person (see :func:`sample_identity`).
    intensities : array of 8 floats
        AU1, AU2, AU4, AU6, AU12, AU15, AU20, AU25 on the 0-5 scale.
    size : int
        Output side in pixels.
    pose : Pose, optional
        Defaults to an aligned, centred face (:meth:`Pose.centred`).
    seed : int, optional
        Seeds the background clutter and the noise.

    Returns
    -------
    image : uint8 array (size, size, 3)
    landmarks : float array (68, 2), pixel coordinates

    Example
    -------
    >>> import numpy as np
    >>> person = sample_identity(np.random.default_rng(1))
    >>> smile = np.array([0, 0, 0, 4, 5, 0, 0, 3.0])
    >>> image, marks = render_face(person, smile, size=64)
    >>> image.shape
    (64, 64, 3)
    """
    rng = np.random.default_rng(seed)
    renderer = FrameRenderer(size, size, identity, rng)
    image, marks = renderer.render([(identity, intensities, pose or Pose.centred(size))])
    return image, marks[0]
