"""Frames per second of ``run.py predict`` end to end vs the face detector alone, and each step's share.

Claim (issue 8): on a 640 x 360 video with one face, prediction runs at >= 25 frames/s on 2 cores with the
demo model, and the whole pipeline (decode, detect, track, align, predict) takes at most 1.2x the detector
alone's time on the same frames. The script renders two videos with the synthetic corpus's faces (one face;
four faces), then, in the same process and for each video:

- **end to end**: ``affect_data.prediction.predict_table`` with MTCNN, as ``run.py predict`` runs it (no
  files);
- **detector alone**: ``MTCNNDetector.detect`` on the same decoded frames, in batches of the same size;
- each of these for the MTCNN settings of :data:`DETECTORS`: the smallest face its image pyramid searches
  for (20 px, or the 24 px that ``predict`` keeps), one frame per network pass or a batch of frames, and the
  full detector on every frame or on one in 5 with the faces followed between (``predict``'s default);
- **agreement** of each setting's kept faces with those of the full detector on every frame ("24 px,
  batched"): the share of its faces found (box IoU >= 0.5) and their mean IoU, and the share over all
  detections before ``predict``'s least score and size;
- **steps**, each timed on its own over the same frames: decode (PyAV, RGB, upright), detect, track
  (``IoUTracker``), align (``affect_data.faces.align_crop``), predict (the evaluation transform and the
  ensemble's forward pass), and each step's share of their sum.

The model is the demo config's ensemble (``configs/demo.yaml``: its backbone, head width, image size and
number of students) with random weights, which cost the same time as trained ones, or ``--model FILE`` (a
file from ``run.py export``). Each timing keeps the fastest of ``--passes`` passes (the least disturbed by
other processes); ratios are measured side by side, so they mean more than the absolute figures on a busy
machine.

    python benchmarks/bench_predict.py [--frames 150] [--threads 2] [--passes 3] [--model FILE]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

from emotion.config import load_config  # noqa: E402
from emotion.factory import IMAGENET_NORMALIZE  # noqa: E402

from affect_data.faces import align_crop  # noqa: E402
from affect_data.models import MultitaskCNN  # noqa: E402
from affect_data.prediction import MIN_FACE_SCORE, MIN_FACE_SIZE, as_ensemble, ensemble_predict, predict_table  # noqa: E402
from affect_data.synthetic import FrameRenderer, Pose, sample_identity  # noqa: E402
from affect_data.tracking import IoUTracker, box_iou  # noqa: E402
from affect_data.transforms import FrameTransform  # noqa: E402
from affect_data.video import FrameReader, MTCNNDetector  # noqa: E402
from mtl_distill import Ensemble  # noqa: E402

WIDTH, HEIGHT, FPS = 640, 360, 25
BATCH = 32
CROP = 112


def write_video(path: Path, faces: int, frames: int, seed: int = 0) -> Path:
    """A 640 x 360 video of ``faces`` synthetic faces drifting slowly side by side, MPEG-4 at 25 frames/s."""
    import av

    rng = np.random.default_rng(seed)
    people = [sample_identity(rng) for _ in range(faces)]
    renderer = FrameRenderer(WIDTH, HEIGHT, people[0], rng)
    columns = np.linspace(WIDTH / (faces + 1), WIDTH * faces / (faces + 1), faces)
    scale = 55 if faces == 1 else 40
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=FPS)
        stream.width, stream.height, stream.pix_fmt, stream.bit_rate = WIDTH, HEIGHT, "yuv420p", 4_000_000
        for i in range(frames):
            phase = 2 * np.pi * i / max(frames, 1)
            scene = [
                (
                    person,
                    2.5 * (1 + np.sin(phase + k + np.arange(8))),
                    Pose(x + 15 * np.sin(phase + k), 180, scale),
                )
                for k, (person, x) in enumerate(zip(people, columns, strict=True))
            ]
            image, _ = renderer.render(scene)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


def demo_ensemble(model: Path | None) -> tuple[Ensemble, int, tuple]:
    """The ensemble to time, its input size and normalisation: ``model``'s, or the demo config's."""
    if model is not None:
        from affect_data.model_file import load_model_file

        ensemble = load_model_file(model)
        architecture = ensemble.metadata["architecture"]
        return ensemble, architecture["image_size"], tuple(architecture["normalize"])
    config = load_config(ROOT / "examples" / "emotion" / "configs" / "demo.yaml", check_paths=False)
    members = [
        MultitaskCNN(config.model.backbone, hidden=config.model.hidden, dropout=config.model.dropout)
        for _ in range(config.training.students.count)
    ]
    return as_ensemble(members), config.data.image_size, IMAGENET_NORMALIZE


def fastest(passes: int, run: Callable[[], object]) -> tuple[float, object]:
    """The least time of ``passes`` calls of ``run`` and the last call's result."""
    best, result = float("inf"), None
    for _ in range(passes):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result


#: MTCNN settings compared side by side: the smallest face its image pyramid searches for (pixels) and
#: whether one ``detect`` call runs its frames as one batch. ``predict`` keeps faces of 24 px and more.
DETECTORS = {
    "20 px, one by one": {"min_face_size": 20, "batch": False},
    "24 px, one by one": {"min_face_size": 24, "batch": False},
    "24 px, batched": {"min_face_size": 24, "batch": True},
    "24 px, full 1 in 5": {"min_face_size": 24, "redetect_every": 5},
}
#: The setting the others' faces are compared with.
REFERENCE = "24 px, batched"


def measure(
    video: Path, ensemble: Ensemble, image_size: int, normalize: tuple, passes: int, detector: MTCNNDetector
) -> dict:
    """Seconds end to end, for the detector alone and for each step, over every frame of ``video``."""
    seconds = {}
    seconds["end to end"], _ = fastest(
        passes,
        lambda: predict_table(
            video, ensemble, image_size=image_size, normalize=normalize, detector=detector, batch_size=BATCH,
            progress=False,
        ),
    )  # fmt: skip
    seconds["decode"], frames = fastest(passes, lambda: list(FrameReader(video)))
    images = [frame.image for frame in frames]

    def detect() -> list:
        detector.reset()  # a new pass over the video
        found = []
        for start in range(0, len(images), BATCH):
            found += detector.detect(images[start : start + BATCH])
        return found

    seconds["detect"], found = fastest(passes, detect)
    seconds["detector alone"] = seconds["detect"]
    # The faces predict keeps (the default minimum score and size).
    kept = [
        [f for f in faces if f.score >= MIN_FACE_SCORE and _side(f.box) >= MIN_FACE_SIZE] for faces in found
    ]

    def track() -> None:
        tracker = IoUTracker()
        for frame, faces in zip(frames, kept, strict=True):
            tracker.update(frame.time, np.array([f.box for f in faces]).reshape(-1, 4))

    seconds["track"], _ = fastest(passes, track)
    pairs = [(image, face) for image, faces in zip(images, kept, strict=True) for face in faces]
    seconds["align"], crops = fastest(
        passes, lambda: [align_crop(image, f.landmarks, CROP) for image, f in pairs]
    )
    transform = FrameTransform(size=image_size, train=False, normalize=normalize)

    side = transform.input_size

    def predict() -> None:
        for start in range(0, len(crops), BATCH):
            # The crops resized as the pipeline resizes them (bilinear, as the training crops were).
            batch = [np.asarray(Image.fromarray(crop).resize((side, side), Image.Resampling.BILINEAR))
                     for crop in crops[start:start + BATCH]]  # fmt: skip
            ensemble_predict(ensemble, transform(np.stack(batch)))

    seconds["predict"], _ = fastest(passes, predict)

    def boxes(faces_per_frame: list) -> list[np.ndarray]:
        return [np.array([f.box for f in faces]).reshape(-1, 4) for faces in faces_per_frame]

    return {
        "seconds": seconds,
        "frames": len(frames),
        "faces": len(pairs),
        "kept": boxes(kept),
        "raw": boxes(found),
    }


def agreement(boxes: list[np.ndarray], reference: list[np.ndarray]) -> tuple[float, float]:
    """The share of ``reference``'s faces that ``boxes`` has too (IoU >= 0.5) and the mean IoU of those."""
    matched = []
    for mine, theirs in zip(boxes, reference, strict=True):
        if len(theirs):
            best = box_iou(theirs, mine).max(axis=1) if len(mine) else np.zeros(len(theirs))
            matched.extend(best)
    matched = np.array(matched)
    found = matched[matched >= 0.5]
    return len(found) / max(len(matched), 1), float(found.mean()) if len(found) else float("nan")


def _side(box: np.ndarray) -> float:
    return float(min(box[2] - box[0], box[3] - box[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=150, help="frames per generated video (150: 6 s)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the claim: 2 cores)")
    parser.add_argument("--passes", type=int, default=3, help="passes per timing; the fastest is kept")
    parser.add_argument("--model", type=Path, help="a model file from run.py export (default: the demo's)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ensemble, image_size, normalize = demo_ensemble(args.model)
    steps = ("decode", "detect", "track", "align", "predict")
    print(
        f"run.py predict on generated {WIDTH} x {HEIGHT} videos of {args.frames} frames; {args.threads} "
        f"torch thread(s); {len(ensemble.members)} member(s) at {image_size} px; fastest of {args.passes} "
        "pass(es)"
    )
    print(
        f"{'video':<9}{'MTCNN from':<20}{'faces/fr':>9}{'e2e fr/s':>10}{'det fr/s':>10}{'e2e/det':>9}  "
        + "".join(f"{s:>9}" for s in steps)
        + f"{'found':>8}{'IoU':>6}{'raw':>7}"
    )
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for faces in (1, 4):
            video = write_video(Path(folder) / f"faces_{faces}.mp4", faces, args.frames)
            measured = {}
            for name in (REFERENCE, *(name for name in DETECTORS if name != REFERENCE)):
                detector = MTCNNDetector(device="cpu", max_side=640, **DETECTORS[name])
                measured[name] = measure(video, ensemble, image_size, normalize, args.passes, detector)
            for name in DETECTORS:
                result = measured[name]
                found, iou = agreement(result["kept"], measured[REFERENCE]["kept"])
                raw, _ = agreement(result["raw"], measured[REFERENCE]["raw"])
                seconds, frames = result["seconds"], result["frames"]
                total = sum(seconds[step] for step in steps)
                results[faces, name] = (
                    frames / seconds["end to end"],
                    seconds["end to end"] / seconds["detector alone"],
                )
                print(
                    f"{faces} face{'s' if faces > 1 else ' ':<3}{name:<20}{result['faces'] / frames:>9.2f}"
                    f"{frames / seconds['end to end']:>10.1f}{frames / seconds['detector alone']:>10.1f}"
                    f"{seconds['end to end'] / seconds['detector alone']:>8.2f}x  "
                    + "".join(f"{seconds[step] / total:>9.0%}" for step in steps)
                    + f"{found:>8.1%}{iou:>6.3f}{raw:>7.1%}"
                )
    print(
        "(faces/fr: faces kept per frame; the step columns: each step's share of the steps' sum; found, IoU: "
        f"the share of the faces kept by '{REFERENCE}' that this setting keeps too, box IoU >= 0.5, and "
        "their mean IoU; raw: the same share over every detection, before the least score and size)"
    )
    for name in DETECTORS:
        rate, ratio = results[1, name]
        print(
            f"goals (one face, MTCNN from {name}): >= 25 frames/s end to end: "
            f"{'met' if rate >= 25 else 'MISSED'} ({rate:.1f}); end to end <= 1.2x the detector alone: "
            f"{'met' if ratio <= 1.2 else 'MISSED'} ({ratio:.2f}x)"
        )


if __name__ == "__main__":
    main()
