"""Counting helpers of the batched ML-ROS/ML-RUS: label counts along a window of clones or deletions."""

from __future__ import annotations

import numpy as np

from ._validation import LabelMatrix


def label_pairs(picked: LabelMatrix, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, label) of every positive entry of ``picked`` whose label is in ``labels``, ordered by row."""
    if not picked.sparse:
        position, column = np.nonzero(picked.values[:, labels])
        return position, labels[column]
    picked, n_rows, n_labels = picked.values, picked.n_rows, picked.n_labels
    position = np.repeat(np.arange(n_rows), np.diff(picked.indptr))
    wanted = np.zeros(n_labels, dtype=bool)
    wanted[labels] = True
    keep = wanted[picked.indices]
    return position[keep], picked.indices[keep].astype(np.int64)


def running_own_count(picked: LabelMatrix, step_labels: np.ndarray) -> np.ndarray:
    """For each step (row) t of ``picked``: how many of its rows up to t carry ``step_labels[t]``."""
    position, label = label_pairs(picked, np.unique(step_labels))
    small = label.astype(np.uint16) if label.size and label.max() < 1 << 16 else label  # radix sort
    order = np.argsort(small, kind="stable")
    sorted_label = label[order]
    group_start = np.flatnonzero(np.r_[True, sorted_label[1:] != sorted_label[:-1]])
    start_of = np.repeat(group_start, np.diff(np.r_[group_start, sorted_label.size]))
    inclusive_rank = np.empty(label.size, dtype=np.int64)
    inclusive_rank[order] = np.arange(label.size) - start_of + 1
    own = label == step_labels[position]
    counts = np.zeros(picked.n_rows, dtype=np.int64)
    counts[position[own]] = inclusive_rank[own]
    return counts


def running_max_count(picked: LabelMatrix, counts: np.ndarray, sign: int) -> np.ndarray:
    """Largest label count after each step when step t adds (sign=+1) or removes (-1) row t of ``picked``.

    Only labels that could hold the maximum within the window are tracked (a step moves a count by one).
    """
    top, n_steps = counts.max(), picked.n_rows
    candidates = np.flatnonzero(counts + n_steps >= top if sign > 0 else counts >= top - n_steps)
    running = np.cumsum(picked.hits(candidates), axis=0, dtype=np.int64)
    return (counts[candidates] + sign * running).max(axis=1)
