"""Reading paper-scale Aff-Wild2 annotations into a frame table (goal: 2.5 million rows in under 20 s).

Writes about 2.5 million label rows over 550 label files in the ABAW 2020 layout (AU, EXPR and VA sets, with
sentinel rows), then times ``load_aff_wild2`` on them:

1. the whole set with ``check_images=False`` (parsing and table building only);
2. a subset of videos whose crop folders hold one (empty) jpg per frame, with the image check on, next to a
   naive reader (csv module line by line, one ``os.path.exists`` per frame) on the same subset.

Run: ``.venv/bin/python benchmarks/bench_annotations.py [--rows 2500000 --videos 550 --image-videos 30]``
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from affect_data import AU_NAMES, EXPR_NAMES, load_aff_wild2

TASKS = {"AU": ("AU_Set", 0.15), "EXPR": ("EXPR_Set", 0.35), "VA": ("VA_Set", 0.50)}  # share of the files
HEADERS = {"AU": ",".join(AU_NAMES), "EXPR": ",".join(EXPR_NAMES), "VA": "valence,arousal"}


def write_corpus(root: Path, rows: int, videos: int, seed: int = 0) -> list[tuple[str, str, int]]:
    """Label files only; returns (task, video, n_lines) of every file written."""
    rng = np.random.default_rng(seed)
    lengths = rng.gamma(4.0, 1.0, videos)
    lengths = np.maximum(1, np.round(lengths / lengths.sum() * rows)).astype(int)
    tasks = rng.choice(list(TASKS), size=videos, p=[share for _, share in TASKS.values()])
    written = []
    for i, (task, n) in enumerate(zip(tasks, lengths, strict=True)):
        split = "Validation_Set" if i % 5 == 0 else "Training_Set"
        folder = root / "annotations" / TASKS[task][0] / split
        folder.mkdir(parents=True, exist_ok=True)
        if task == "AU":
            values = rng.integers(0, 2, (n, 8)).astype(str)
            values[rng.random(n) < 0.05] = "-1"
            lines = [",".join(row) for row in values]
        elif task == "EXPR":
            labels = rng.integers(-1, 7, n)
            lines = [str(v) for v in labels]
        else:
            values = np.round(rng.uniform(-1, 1, (n, 2)), 3)
            values[rng.random(n) < 0.05] = -5
            lines = [f"{v:g},{a:g}" for v, a in values]
        video = f"video{i:03d}" + ("_left" if i % 17 == 0 else "")
        (folder / f"{video}.txt").write_text(HEADERS[task] + "\n" + "\n".join(lines) + "\n")
        written.append((task, video, int(n)))
    for name, _ in TASKS.values():  # every task/split folder exists, as in the release
        for split in ("Training_Set", "Validation_Set"):
            (root / "annotations" / name / split).mkdir(parents=True, exist_ok=True)
    return written


def write_images(root: Path, files: list[tuple[str, str, int]], drop: float = 0.03, seed: int = 1) -> None:
    """One empty jpg per label line (a few missing: frames without a detected face)."""
    rng = np.random.default_rng(seed)
    for _, video, n in files:
        folder = root / "cropped_aligned" / video
        folder.mkdir(parents=True, exist_ok=True)
        for k in np.flatnonzero(rng.random(n) >= drop):
            (folder / f"{k + 1:05d}.jpg").touch()


def naive_read(root: Path) -> int:
    """The obvious reader: csv line by line, one stat per frame. Returns the rows kept."""
    kept = 0
    for task, (name, _) in TASKS.items():
        for split in ("Training_Set", "Validation_Set"):
            for path in sorted((root / "annotations" / name / split).glob("*.txt")):
                with open(path, newline="") as stream:
                    reader = csv.reader(stream)
                    next(reader)
                    for k, row in enumerate(reader):
                        values = [float(v) for v in row]
                        if (task == "VA" and -5 in values) or (task != "VA" and -1 in values):
                            continue
                        if os.path.exists(root / "cropped_aligned" / path.stem / f"{k + 1:05d}.jpg"):
                            kept += 1
    return kept


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_500_000)
    parser.add_argument("--videos", type=int, default=550)
    parser.add_argument("--image-videos", type=int, default=30, help="videos of the subset with crop folders")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        full, subset = Path(tmp) / "full", Path(tmp) / "subset"
        files, seconds = timed(write_corpus, full, args.rows, args.videos)
        print(f"wrote {sum(n for *_, n in files):,} label rows in {len(files)} files ({seconds:.1f} s)")
        table, load_s = timed(load_aff_wild2, full, check_images=False)
        rows_read = table.attrs["report"].rows_read

        scale = args.image_videos / args.videos
        sub_files = write_corpus(subset, round(args.rows * scale), args.image_videos, seed=2)
        write_images(subset, sub_files)
        sub_rows = sum(n for *_, n in sub_files)
        sub_table, ours_s = timed(load_aff_wild2, subset)
        naive_kept, naive_s = timed(naive_read, subset)
        assert naive_kept == len(sub_table), (naive_kept, len(sub_table))

    projected = rows_read / (sub_rows / ours_s)
    print()
    print(f"{'case':<46} {'rows':>10} {'seconds':>8} {'rows/s':>11}")
    for case, rows, seconds in [
        ("full set, check_images=False", rows_read, load_s),
        ("subset, image check (one scandir per video)", sub_rows, ours_s),
        ("subset, naive csv + os.path.exists per frame", sub_rows, naive_s),
    ]:
        print(f"{case:<46} {rows:>10,} {seconds:>8.2f} {rows / seconds:>11,.0f}")
    print()
    print(f"speed-up over the naive reader on the subset: {naive_s / ours_s:.1f}x")
    print(f"full set with the image check, projected from the subset rate: {projected:.1f} s (goal < 20 s)")
    print(f"full set without it, measured: {load_s:.1f} s (goal < 20 s)")


if __name__ == "__main__":
    main()
