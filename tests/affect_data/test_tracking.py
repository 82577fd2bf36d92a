"""affect_data.tracking: face ids that last while a face stays in view."""

import numpy as np
import pytest

from affect_data.tracking import IoUTracker, box_iou


def box(x, y=0.0, side=10.0):
    return [x, y, x + side, y + side]


def test_tracker_keeps_ids_through_a_crossing_and_a_short_gap_not_a_long_one():
    tracker = IoUTracker(min_iou=0.3, max_gap_s=0.5)
    ids = []
    for k in range(9):  # two faces at the same height cross at k = 4, 2 pixels per frame
        ids.append(tracker.update(k * 0.1, np.array([box(2 + 2 * k), box(18 - 2 * k)])))
    # While they overlap, each box matches the track that moved on towards it.
    assert ids == [[0, 1]] * 9
    assert tracker.update(0.9, np.zeros((0, 4))) == []
    assert tracker.update(1.2, np.array([box(18 - 2 * 8 - 4)])) == [1]  # gone 0.4 s: the same face
    assert tracker.update(1.9, np.array([box(2 + 2 * 8)])) == [2]  # face 0 gone 1.1 s: a new id
    assert tracker.update(1.9, np.array([box(50), box(40)])) == [4, 3]  # new faces: numbered left to right


def test_tracker_and_iou_errors_name_the_values():
    np.testing.assert_allclose(box_iou(np.array([box(0)]), np.zeros((0, 4))), np.zeros((1, 0)))
    with pytest.raises(ValueError, match="min_iou"):
        IoUTracker(min_iou=0)
    with pytest.raises(ValueError, match="max_gap_s"):
        IoUTracker(max_gap_s=-1)
    tracker = IoUTracker()
    tracker.update(1.0, np.array([box(0)]))
    with pytest.raises(ValueError, match=r"time order: 0.5 s after 1.0 s"):
        tracker.update(0.5, np.array([box(0)]))
    with pytest.raises(ValueError, match=r"\[N, 4\].*\(4,\)"):
        tracker.update(2.0, np.array(box(0)))
