"""Rendering speed of the synthetic affect corpus (goal: at least 500 frames/s on one core at 112 px).

Measures, in one process:

1. ``FrameRenderer.render`` alone (geometry, drawing, anti-aliasing, light, noise) at 64 and 112 px, over
   many identities with random AU intensities and poses, against the 500 frames/s goal;
2. the same plus JPEG encoding in memory (what ``cropped_aligned`` costs per frame);
3. ``write_corpus`` end to end for a preset with 1 and with 2 worker processes (files and truth on disk).

Frames/s are given both per CPU second (the per-core rate, robust to a busy machine) and per wall second.

    python benchmarks/bench_synthetic.py [--frames 3000] [--preset demo]
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from affect_data.synthetic import PRESETS, FrameRenderer, Pose, sample_identity, write_corpus

GOAL = 500.0


def render_rate(size: int, frames: int, encode: bool, seed: int = 0) -> tuple[float, float]:
    """(frames per CPU second, frames per wall second) over ``frames`` frames of 50-frame videos."""
    rng = np.random.default_rng(seed)
    videos = []
    for _ in range(max(1, frames // 50)):
        person = sample_identity(rng)
        videos.append((person, FrameRenderer(size, size, person, rng)))
    intensities = rng.uniform(0.0, 5.0, (frames, 8))
    angles = rng.uniform(-10.0, 10.0, frames)
    cpu, wall = time.process_time(), time.perf_counter()
    for k in range(frames):
        person, renderer = videos[k % len(videos)]
        pixels, _ = renderer.render([(person, intensities[k], Pose.centred(size, angles[k]))])
        if encode:
            Image.fromarray(pixels).save(io.BytesIO(), format="JPEG", quality=90)
    return frames / (time.process_time() - cpu), frames / (time.perf_counter() - wall)


def corpus_time(preset: str, n_jobs: int) -> tuple[float, int]:
    """(wall seconds, frames written) for one ``write_corpus`` call."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        root = write_corpus(Path(tmp) / "corpus", preset=preset, seed=0, n_jobs=n_jobs)
        seconds = time.perf_counter() - start
        frames = len((root / "truth.csv").read_text().splitlines()) - 1
    return seconds, frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3000, help="frames per render measurement")
    parser.add_argument(  # checked here, not after the render measurements have run
        "--preset", choices=sorted(PRESETS), default="demo", help="preset for the end-to-end measurement"
    )
    args = parser.parse_args()

    print(f"{'measurement':42s} {'frames/s (CPU)':>15s} {'frames/s (wall)':>16s} {'CPU rate / goal':>16s}")
    for size in (64, 112):
        for encode in (False, True):
            cpu, wall = render_rate(size, args.frames, encode)
            name = f"render {size} px" + (" + JPEG encode" if encode else "")
            print(f"{name:42s} {cpu:15.0f} {wall:16.0f} {cpu / GOAL:15.2f}x")

    print()
    title = f"write_corpus({args.preset})"
    print(f"{title:42s} {'frames':>8s} {'seconds':>9s} {'frames/s':>9s} {'speed-up':>9s}")
    base = None
    for n_jobs in (1, 2):
        seconds, frames = corpus_time(args.preset, n_jobs)
        base = base or seconds
        label = f"  n_jobs={n_jobs}"
        print(f"{label:42s} {frames:8d} {seconds:9.1f} {frames / seconds:9.0f} {base / seconds:8.2f}x")


if __name__ == "__main__":
    main()
