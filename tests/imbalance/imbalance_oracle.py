"""Plain one-step-per-iteration ML-ROS / ML-RUS, written straight from docs/design.md section 2.2: the oracle.

They read the same per-label random streams as the package (``imbalance._random``), one number at a time,
so the batched implementation must reproduce their index lists exactly.
"""

from __future__ import annotations

import math

import numpy as np

from imbalance._random import label_generators


def _start(Y: np.ndarray):
    counts = Y.sum(axis=0).astype(np.int64)
    defined = counts > 0
    ratios = np.full(Y.shape[1], np.nan)
    ratios[defined] = counts.max() / counts[defined]
    return counts, ratios, float(np.mean(ratios[defined]))


def mlros_reference(Y: np.ndarray, percentage: float, seed: int) -> np.ndarray:
    counts, ratios, mean_ir = _start(Y)
    bags = [label for label in range(Y.shape[1]) if counts[label] > 0 and ratios[label] > mean_ir]
    members = {label: np.flatnonzero(Y[:, label]) for label in bags}
    streams = label_generators(seed, Y.shape[1])
    budget = math.floor(Y.shape[0] * percentage / 100)
    clones = []
    while budget > 0 and bags:
        for label in list(bags):
            row = members[label][int(streams[label].random() * members[label].size)]
            clones.append(row)
            counts += Y[row]
            if counts.max() / counts[label] <= mean_ir:
                bags.remove(label)
            budget -= 1
            if budget == 0:
                break
    return np.concatenate([np.arange(Y.shape[0]), np.array(clones, dtype=np.int64)])


def mlrus_reference(Y: np.ndarray, percentage: float, seed: int) -> np.ndarray:
    counts, ratios, mean_ir = _start(Y)
    bags = [label for label in range(Y.shape[1]) if counts[label] > 0 and ratios[label] < mean_ir]
    streams = label_generators(seed, Y.shape[1])
    order = {label: streams[label].permutation(np.flatnonzero(Y[:, label])) for label in bags}
    cursor = dict.fromkeys(bags, 0)
    deleted = np.zeros(Y.shape[0], dtype=bool)
    budget = math.floor(Y.shape[0] * percentage / 100)
    while budget > 0 and bags:
        for label in list(bags):
            if counts[label] == 0:  # nothing left to delete in this bag
                bags.remove(label)
                continue
            while deleted[order[label][cursor[label]]]:
                cursor[label] += 1
            row = order[label][cursor[label]]
            cursor[label] += 1
            deleted[row] = True
            counts -= Y[row]
            if counts[label] == 0 or counts.max() / counts[label] >= mean_ir:
                bags.remove(label)
            budget -= 1
            if budget == 0:
                break
    return np.flatnonzero(~deleted)
