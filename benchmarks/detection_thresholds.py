"""Which MTCNN detections are faces: false faces on frames with nobody, found faces on frames with one face.

A measurement, not a speed claim: what ``run.py predict``'s defaults ``--min-score 0.9`` and
``--min-face-size 24`` (``affect_data.prediction.MIN_FACE_SCORE``, ``MIN_FACE_SIZE``) and the pairs around
them keep.
The script generates 640 x 360 frames, ``--frames`` of each kind (default 100):

- **nobody in view**, six kinds: ``flat`` (one random colour with mild sensor noise), ``noise`` (uniform
  noise, every pixel and channel drawn from 0-255), ``blobs`` (smooth colour gradients: a 8 x 5 grid of
  random colours, bicubically enlarged), ``scene`` (the synthetic corpus's background clutter, lighting,
  blur and noise: ``affect_data.synthetic.FrameRenderer`` with no face), ``shapes`` (300 random ellipses
  and rectangles) and ``plaid`` (sums of sine gratings of random period and orientation per channel);
- **one synthetic face** (``affect_data.synthetic``: a random person and AU intensities in a ``scene``),
  six kinds: ``frontal`` (roll within 10 degrees, the 68 landmarks 55-110 pixels across), ``rolled 30``
  (rolled 30 degrees either way), ``small`` (28-40 pixels across), ``squeezed 40`` and ``squeezed
  55`` (the frame drawn wider and squeezed back to 640 pixels, so the face is cos 40 or cos 55 degrees of its
  width: the renderer draws no turned heads, and a squeeze is a crude stand-in for a face turned partly
  away) and ``half hidden`` (the left, right or lower half of the face covered by a noisy plain patch).

Every frame goes through ``affect_data.video.MTCNNDetector`` (``facenet-pytorch``, its bundled
weights: nothing is downloaded) one frame per call, with MTCNN's own stage thresholds lowered to 0.6, 0.7,
0.5 and a 12-pixel smallest face, so that weak candidates show too. On a face frame, the best-scoring
candidate whose box overlaps the true face's landmark box with IoU >= 0.3 is the face found; every other
candidate, there and on the frames with nobody, is a false face. Per kind the script prints the candidates'
counts, score quantiles and sizes (the shorter side of the box, in pixels), then how many false faces and how
many faces each (least score, least size) pair of a small grid keeps; ``run.py predict`` keeps a detection
when its score and size are both at least the pair's.

Everything is seeded (frame ``i`` of kind ``k`` draws from ``(seed, k, i)``, so a smaller ``--frames`` gives
the first frames of a larger run) and deterministic on one torch thread (``--threads``).

    python benchmarks/detection_thresholds.py [--frames 100] [--seed 0] [--threads 1]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image, ImageDraw

from affect_data.prediction import MIN_FACE_SCORE, MIN_FACE_SIZE
from affect_data.synthetic import FrameRenderer, Pose, sample_identity
from affect_data.tracking import box_iou
from affect_data.video import Face, MTCNNDetector

WIDTH, HEIGHT = 640, 360
#: The (least score, least size) grid; it holds predict's defaults.
SCORES = (0.8, 0.85, MIN_FACE_SCORE, 0.95)
SIZES = (16, MIN_FACE_SIZE, 32)
#: The least overlap of a candidate with the true face's landmark box for it to be that face.
MATCH_IOU = 0.3

Generated = tuple[np.ndarray, np.ndarray | None]  # pixels, the true face's landmark box (None: nobody)


def _pixels(values: np.ndarray) -> np.ndarray:
    return np.clip(values, 0, 255).astype(np.uint8)


def flat(rng: np.random.Generator) -> Generated:
    colour = rng.uniform(0, 255, 3)
    return _pixels(colour + rng.normal(0, 3, (HEIGHT, WIDTH, 3))), None


def noise(rng: np.random.Generator) -> Generated:
    return rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8), None


def blobs(rng: np.random.Generator) -> Generated:
    grid = Image.fromarray(rng.integers(0, 256, (5, 8, 3), dtype=np.uint8))
    return np.asarray(grid.resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC)), None


def scene(rng: np.random.Generator) -> Generated:
    person = sample_identity(rng)
    image, _ = FrameRenderer(WIDTH, HEIGHT, person, rng).render([])
    return image, None


def shapes(rng: np.random.Generator) -> Generated:
    image = Image.new("RGB", (WIDTH, HEIGHT), tuple(int(v) for v in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(300):
        x, y = rng.uniform(-20, WIDTH), rng.uniform(-20, HEIGHT)
        w, h = rng.uniform(4, 80, 2)
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x, y, x + w, y + h], fill=fill)
    return np.asarray(image), None


def plaid(rng: np.random.Generator) -> Generated:
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    channels = []
    for _ in range(3):
        total = np.zeros((HEIGHT, WIDTH))
        for _ in range(2):
            angle, period, phase = rng.uniform(0, np.pi), rng.uniform(6, 60), rng.uniform(0, 2 * np.pi)
            total += np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period + phase)
        channels.append(127.5 + 63.5 * total)
    return _pixels(np.stack(channels, axis=-1)), None


def _face(
    rng: np.random.Generator, box_side: tuple[float, float], roll: float, squeeze: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """A scene with one random face whose landmark box is about ``box_side`` pixels, rolled up to ``roll``
    degrees, drawn ``1 / squeeze`` times wider and squeezed back; the image and the face's 68 landmarks."""
    person = sample_identity(rng)
    width = round(WIDTH / squeeze)
    renderer = FrameRenderer(width, HEIGHT, person, rng)
    scale = rng.uniform(*box_side) / 2  # the 68 landmarks span 2 canonical units across
    margin = 1.4 * scale
    pose = Pose(
        cx=rng.uniform(margin, width - margin),
        cy=rng.uniform(margin, HEIGHT - margin),
        scale=scale,
        angle=rng.choice([-1, 1]) * roll if roll >= 20 else rng.uniform(-roll, roll),
    )
    image, (marks,) = renderer.render([(person, rng.uniform(0, 3, 8), pose)])
    if width != WIDTH:
        image = np.asarray(Image.fromarray(image).resize((WIDTH, HEIGHT), Image.Resampling.BILINEAR))
        marks = marks * [WIDTH / width, 1.0]
    return image, marks


def _box(marks: np.ndarray) -> np.ndarray:
    return np.concatenate([marks.min(axis=0), marks.max(axis=0)])


def face_kind(box_side: tuple[float, float], roll: float, squeeze: float = 1.0) -> Callable:
    def make(rng: np.random.Generator) -> Generated:
        image, marks = _face(rng, box_side, roll, squeeze)
        return image, _box(marks)

    return make


def half_hidden(rng: np.random.Generator) -> Generated:
    image, marks = _face(rng, (55, 110), 10)
    left, top, right, bottom = box = _box(marks)
    middle_x, middle_y = (left + right) / 2, (top + bottom) / 2
    pad = 0.15 * (right - left)
    side = ["left", "right", "lower"][rng.integers(3)]
    cover = {
        "left": (left - pad, top - pad, middle_x, bottom + pad),
        "right": (middle_x, top - pad, right + pad, bottom + pad),
        "lower": (left - pad, middle_y, right + pad, bottom + pad),
    }[side]
    x0, y0, x1, y1 = (round(v) for v in cover)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, WIDTH), min(y1, HEIGHT)
    patch = rng.uniform(0, 255, 3) + rng.normal(0, 4, (y1 - y0, x1 - x0, 3))
    image = image.copy()
    image[y0:y1, x0:x1] = _pixels(patch)
    return image, box


NOBODY: dict[str, Callable[[np.random.Generator], Generated]] = {
    "flat": flat,
    "noise": noise,
    "blobs": blobs,
    "scene": scene,
    "shapes": shapes,
    "plaid": plaid,
}
ONE_FACE: dict[str, Callable[[np.random.Generator], Generated]] = {
    "frontal": face_kind((55, 110), 10),
    "rolled 30": face_kind((55, 110), 30),
    "small": face_kind((28, 40), 10),
    "squeezed 40": face_kind((55, 110), 10, math.cos(math.radians(40))),
    "squeezed 55": face_kind((55, 110), 10, math.cos(math.radians(55))),
    "half hidden": half_hidden,
}


def side(face: Face) -> float:
    left, top, right, bottom = face.box
    return float(min(right - left, bottom - top))


def split(faces: list[Face], truth: np.ndarray | None) -> tuple[Face | None, list[Face]]:
    """The candidate that is the true face (best score among those overlapping it) and the false ones."""
    if truth is None or not faces:
        return None, list(faces)
    overlap = box_iou(np.array([face.box for face in faces]), truth[None])[:, 0]
    matching = np.flatnonzero(overlap >= MATCH_IOU)
    if not len(matching):
        return None, list(faces)
    best = max(matching, key=lambda i: faces[i].score)
    return faces[best], [face for i, face in enumerate(faces) if i != best]


def kept(faces: list[Face], min_score: float, min_size: float) -> int:
    return sum(face.score >= min_score and side(face) >= min_size for face in faces)


def describe(faces: list[Face]) -> str:
    """Count, score quantiles (min, median, 90%, max) and shorter sides (min, median, max) of candidates."""
    if not faces:
        return f"{0:>5}"
    scores = np.array([face.score for face in faces])
    sizes = np.array([side(face) for face in faces])
    quantiles = np.quantile(scores, [0, 0.5, 0.9, 1])
    return (
        f"{len(faces):>5}  " + " ".join(f"{q:.3f}" for q in quantiles)
        + f"  {sizes.min():>4.0f} {np.median(sizes):>4.0f} {sizes.max():>4.0f}"
    )  # fmt: skip


def measure(kinds: dict[str, Callable], kind_offset: int, frames: int, seed: int, detector) -> dict:
    """Per kind: the true faces found (None where missed) and the false candidates, over ``frames`` frames."""
    results = {}
    for k, (name, make) in enumerate(kinds.items()):
        found, false = [], []
        for i in range(frames):
            image, truth = make(np.random.default_rng([seed, kind_offset + k, i]))
            (candidates,) = detector.detect([image])
            face, others = split(candidates, truth)
            found.append(face)
            false += others
        results[name] = (found, false)
    return results


def grid_header(first: str) -> str:
    return f"{first:<13}" + "".join(f"{f'{s:g}/{z:g}':>9}" for s in SCORES for z in SIZES)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100, help="frames of each of the 12 kinds (100)")
    parser.add_argument("--seed", type=int, default=0, help="the seed of every frame (0)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: deterministic scores)")
    args = parser.parse_args(argv)
    if args.frames < 1:
        parser.error(f"--frames must be >= 1, got {args.frames}")
    torch.set_num_threads(args.threads)
    detector = MTCNNDetector(device="cpu", min_face_size=12, thresholds=(0.6, 0.7, 0.5), max_side=None)
    start = time.perf_counter()
    nobody = measure(NOBODY, 0, args.frames, args.seed, detector)
    faces = measure(ONE_FACE, len(NOBODY), args.frames, args.seed, detector)
    seconds = time.perf_counter() - start

    n = args.frames
    print(
        f"MTCNN (facenet-pytorch, stage thresholds 0.6/0.7/0.5, smallest face 12 px) on generated {WIDTH} x "
        f"{HEIGHT} frames, {n} per kind, seed {args.seed}, one frame per call, {args.threads} torch "
        f"thread(s); {2 * len(NOBODY) * n} frames in {seconds:.0f} s\n"
    )
    print(f"Frames with nobody in view: {len(NOBODY) * n} frames, every candidate is a false face")
    print(f"{'kind':<13}{'false':>5}  score min/med/90%/max     size min/med/max (px)")
    every = []
    for name, (_, false) in nobody.items():
        print(f"{name:<13}{describe(false)}")
        every += false
    print(f"{'all':<13}{describe(every)}\n")
    print("False faces kept, by least score / least size:")
    print(grid_header("kind"))
    for name, false in [*((name, false) for name, (_, false) in nobody.items()), ("all", every)]:
        print(f"{name:<13}" + "".join(f"{kept(false, s, z):>9}" for s in SCORES for z in SIZES))

    print(f"\nFrames with one synthetic face: {len(ONE_FACE) * n} frames, {n} faces per kind")
    print(f"{'kind':<13}{'found':>5}  score min/med/90%/max     size min/med/max (px)   false faces")
    for name, (found, false) in faces.items():
        hits = [face for face in found if face is not None]
        print(f"{name:<13}{describe(hits):<52}{len(false):>5}")
    print(f"\nFaces kept (of {n} per kind), by least score / least size:")
    print(grid_header("kind"))
    for name, (found, _) in faces.items():
        hits = [face for face in found if face is not None]
        print(f"{name:<13}" + "".join(f"{kept(hits, s, z):>9}" for s in SCORES for z in SIZES))
    false_on_faces = [face for _, false in faces.values() for face in false]
    print(f"{'false faces':<13}" + "".join(f"{kept(false_on_faces, s, z):>9}" for s in SCORES for z in SIZES))
    print(f"\npredict's defaults: least score {MIN_FACE_SCORE}, least size {MIN_FACE_SIZE} px")


if __name__ == "__main__":
    main()
