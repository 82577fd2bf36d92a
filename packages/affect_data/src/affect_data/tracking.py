"""Face tracks across frames: a face keeps its id while it stays in view.

:class:`IoUTracker` is a simple tracker for the faces :mod:`affect_data.video` finds. Each frame's
boxes are matched to the tracks of the frames before by the overlap (IoU) of the boxes, greedily, the best
overlapping pair first. A track is compared both with where its face was last seen and with where the face
would be now had it kept moving at its last speed, so two faces that cross keep their ids, and so does a face
that stops. A track not matched for longer than ``max_gap_s`` seconds ends: a face seen again after such a
gap gets a new id. Ids are 0, 1, 2, ... in order of appearance; faces appearing in the same frame are numbered
left to right.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["IoUTracker", "box_iou"]


def box_iou(boxes: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Intersection over union of every box of ``boxes`` ``[N, 4]`` with every box of ``others`` ``[M, 4]``.

    Boxes are ``(left, top, right, bottom)``; a box without area overlaps nothing.

    Examples
    --------
    >>> box_iou(np.array([[0, 0, 2, 2]]), np.array([[1, 0, 3, 2], [5, 5, 6, 6]])).round(3).tolist()
    [[0.333, 0.0]]
    """
    a = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)[:, None, :]
    b = np.asarray(others, dtype=np.float64).reshape(-1, 4)[None, :, :]
    width = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    height = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    intersection = width * height

    def area(box: np.ndarray) -> np.ndarray:
        return np.clip(box[..., 2] - box[..., 0], 0, None) * np.clip(box[..., 3] - box[..., 1], 0, None)

    union = area(a) + area(b) - intersection
    return np.divide(intersection, union, out=np.zeros_like(intersection), where=union > 0)


@dataclass
class _Track:
    id: int
    box: np.ndarray  # where the face was last seen
    time: float  # when
    velocity: np.ndarray  # box change per second between its last two sightings


class IoUTracker:
    """Give each face box a track id that stays the same while the face stays in view.

    Parameters
    ----------
    min_iou : float, default 0.3
        Least overlap between a box and a track (its last box, or that box moved on at the track's speed) for
        the box to continue the track.
    max_gap_s : float, default 1.0
        Seconds a track may go unseen (a face turned away, hidden, or out of the frame for a moment) and still
        be continued; after a longer gap the face gets a new id.

    Examples
    --------
    >>> tracker = IoUTracker(max_gap_s=0.5)
    >>> tracker.update(0.0, np.array([[0, 0, 10, 10], [50, 0, 60, 10]]))
    [0, 1]
    >>> tracker.update(0.1, np.array([[52, 0, 62, 10], [1, 0, 11, 10]]))
    [1, 0]
    >>> tracker.update(0.2, np.zeros((0, 4)))  # nobody in view
    []
    >>> tracker.update(1.0, np.array([[2, 0, 12, 10]]))  # back after 0.9 s: a new face
    [2]
    """

    def __init__(self, min_iou: float = 0.3, max_gap_s: float = 1.0) -> None:
        if not 0 < min_iou <= 1:
            raise ValueError(f"min_iou must be in (0, 1], got {min_iou!r}")
        if not (math.isfinite(max_gap_s) and max_gap_s >= 0):
            raise ValueError(f"max_gap_s must be a number of seconds >= 0, got {max_gap_s!r}")
        self.min_iou, self.max_gap_s = float(min_iou), float(max_gap_s)
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._time = -math.inf

    def update(self, time: float, boxes: np.ndarray) -> list[int]:
        """The track ids of one frame's ``boxes`` ``[N, 4]``, in their order; one call per frame, in order.

        Raises
        ------
        ValueError
            If ``time`` is before the previous frame's, or ``boxes`` is not ``[N, 4]``.
        """
        boxes = np.asarray(boxes, dtype=np.float64)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"boxes must be an [N, 4] array, got shape {boxes.shape}")
        if time < self._time:
            raise ValueError(f"frames must come in time order: {time} s after {self._time} s")
        self._time = time
        self._tracks = [track for track in self._tracks if time - track.time <= self.max_gap_s]
        ids: list[int | None] = [None] * len(boxes)
        if self._tracks and len(boxes):
            last = np.stack([track.box for track in self._tracks])
            moved = np.stack([track.box + track.velocity * (time - track.time) for track in self._tracks])
            overlap = np.maximum(box_iou(last, boxes), box_iou(moved, boxes))
            # Greedy: the best-overlapping pair first; stable order keeps equal overlaps deterministic.
            for flat in np.argsort(-overlap, axis=None, kind="stable"):
                t, b = divmod(int(flat), len(boxes))
                if overlap[t, b] < self.min_iou:
                    break
                if ids[b] is None and not np.isnan(overlap[t, b]):
                    ids[b] = self._tracks[t].id
                    self._continue(self._tracks[t], time, boxes[b])
                    overlap[t, :] = np.nan  # this track is taken
        for b in sorted((b for b, i in enumerate(ids) if i is None), key=lambda b: tuple(boxes[b, :2])):
            ids[b] = self._next_id
            self._tracks.append(_Track(self._next_id, boxes[b].copy(), time, np.zeros(4)))
            self._next_id += 1
        return [int(i) for i in ids]

    @staticmethod
    def _continue(track: _Track, time: float, box: np.ndarray) -> None:
        if time > track.time:
            track.velocity = (box - track.box) / (time - track.time)
        track.box, track.time = box.copy(), time
