"""Speed of the `imbalance` package: ML-ROS against the plain loop, large dense and sparse inputs,
joint VA binning, and ClassBalancedSampler against imbalanced-learn's RandomOverSampler.

    .venv/bin/python benchmarks/bench_imbalance.py          # about 1-2 minutes on 2 cores

Each row reports the best of a few runs (wall clock). The plain reference is ML-ROS written straight from
docs/design.md section 2.2: one clone per iteration, IRLbl recomputed on the grown data after every clone. The
incremental reference is the same loop with the counts updated by the cloned row only (the tests' oracle).
Both read the same random streams as the package, and the script checks that all three give the same list.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
import warnings

import numpy as np
import scipy.sparse as sp
from imblearn.over_sampling import RandomOverSampler

import imbalance
from imbalance import MLROS, MLRUS, BinnedSampler, ClassBalancedSampler, EmptyLabelWarning
from imbalance._random import label_generators

AU_SHARES = np.array([0.02, 0.05, 0.10, 0.18, 0.25, 0.35, 0.45, 0.60])


def au_like(n: int, seed: int = 0) -> np.ndarray:
    """n x 8 labels with shares 2%..60% that co-occur through a shared intensity (like facial AUs)."""
    rng = np.random.default_rng(seed)
    Y = np.empty((n, AU_SHARES.size), dtype=np.uint8)
    for start in range(0, n, 1 << 20):
        stop = min(n, start + (1 << 20))
        intensity = rng.random((stop - start, 1), dtype=np.float32) + np.float32(0.5)
        Y[start:stop] = rng.random((stop - start, AU_SHARES.size), dtype=np.float32) < AU_SHARES * intensity
    return Y


def sparse_power_law(n: int, n_labels: int, seed: int = 0) -> sp.csr_matrix:
    """n x n_labels sparse labels, label j held by a share 0.3 / (j + 1)^0.8 of the rows (~4.5 per row)."""
    rng = np.random.default_rng(seed)
    shares = 0.3 / np.arange(1, n_labels + 1) ** 0.8
    counts = rng.binomial(n, shares)
    rows = np.concatenate([rng.integers(0, n, size=c) for c in counts])
    cols = np.repeat(np.arange(n_labels), counts)
    Y = sp.csr_matrix((np.ones(rows.size, dtype=np.uint8), (rows, cols)), shape=(n, n_labels))
    Y.sum_duplicates()
    Y.data[:] = 1
    return Y


def mlros_loop(Y: np.ndarray, percentage: float, seed: int, recount: bool) -> np.ndarray:
    """ML-ROS one clone per iteration, as the pseudocode reads.

    ``recount=True`` is the plain reference: the labels of the grown data are counted again after every
    clone. ``recount=False`` updates the counts by the cloned row only (the tests' oracle).
    """
    counts = Y.sum(axis=0, dtype=np.int64)
    ratios = counts.max() / counts
    mean_ir = float(np.mean(ratios))
    bags = [label for label in range(Y.shape[1]) if ratios[label] > mean_ir]
    members = {label: np.flatnonzero(Y[:, label]) for label in bags}
    streams = label_generators(seed, Y.shape[1])
    budget = math.floor(Y.shape[0] * percentage / 100)
    clones: list[int] = []
    grown = counts.copy()
    while budget > 0 and bags:
        for label in list(bags):
            row = members[label][int(streams[label].random() * members[label].size)]
            clones.append(row)
            if recount:  # IRLbl on D plus every clone so far
                grown = counts + Y[clones].sum(axis=0, dtype=np.int64)
            else:
                grown += Y[row]
            if grown.max() / grown[label] <= mean_ir:
                bags.remove(label)
            budget -= 1
            if budget == 0:
                break
    return np.concatenate([np.arange(Y.shape[0]), np.array(clones, dtype=np.int64)])


def best_of(function, repeats: int) -> tuple[float, object]:
    best, result = math.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


class Table:
    """Rows printed as they come, then once more as a Markdown table."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str]] = []

    def add(self, name: str, seconds: float, note: str = "") -> None:
        self.rows.append((name, f"{seconds:.3f}", note))
        print(f"  {name:<62} {seconds:>8.3f} s  {note}", flush=True)

    def markdown(self) -> str:
        lines = ["| measurement | seconds | note |", "| --- | ---: | --- |"]
        return "\n".join(lines + [f"| {name} | {seconds} | {note} |" for name, seconds, note in self.rows])


def bench_against_reference(table: Table, n: int) -> None:
    """ML-ROS against the plain loops: same data, same random streams, and the same resulting list."""
    Y = au_like(n, seed=1)
    plain_s, plain = best_of(lambda: mlros_loop(Y, 25, 0, recount=True), 1)
    incremental_s, incremental = best_of(lambda: mlros_loop(Y, 25, 0, recount=False), 1)
    fast_s, fast = best_of(lambda: MLROS(25, random_state=0).fit_indices(Y), 5)
    assert np.array_equal(fast, plain) and np.array_equal(fast, incremental), "batched ML-ROS differs"
    table.add(f"ML-ROS plain loop (recount), {n:,} x 8, {len(fast) - n:,} clones", plain_s)
    table.add(f"ML-ROS incremental loop, {n:,} x 8", incremental_s)
    ratios = f"{plain_s / fast_s:,.0f}x plain, {incremental_s / fast_s:,.0f}x incremental, same list"
    table.add(f"ML-ROS batched, {n:,} x 8", fast_s, ratios)


def bench_dense(table: Table, n: int, goal: str, with_rus: bool) -> None:
    Y = au_like(n, seed=2)
    seconds, indices = best_of(lambda: MLROS(25, random_state=0).fit_indices(Y), 3 if n <= 1_000_000 else 1)
    table.add(f"ML-ROS P=25, {n:,} x 8 dense ({len(indices) - n:,} clones)", seconds, goal)
    if with_rus:
        seconds, _ = best_of(lambda: MLRUS(25, random_state=0).fit_indices(Y), 1)
        table.add(f"ML-RUS P=25, {n:,} x 8 dense", seconds)
    seconds, described = best_of(lambda: imbalance.describe(Y), 1)
    table.add(
        f"describe (IRLbl, MeanIR, CVIR, SCUMBLE), {n:,} x 8", seconds, f"MeanIR {described.mean_ir:.2f}"
    )


def bench_sparse(table: Table, n: int) -> None:
    Y = sparse_power_law(n, 1000, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmptyLabelWarning)
        seconds, indices = best_of(lambda: MLROS(25, random_state=0).fit_indices(Y), 1)
        table.add(f"ML-ROS P=25, {n:,} x 1000 sparse, nnz {Y.nnz:,} ({len(indices) - n:,} clones)", seconds)
        seconds, described = best_of(lambda: imbalance.describe(Y), 1)
        table.add(f"describe, {n:,} x 1000 sparse", seconds, f"MeanIR {described.mean_ir:.1f}")


def bench_binned(table: Table, n: int) -> None:
    rng = np.random.default_rng(4)
    va = np.clip(rng.normal([0.15, 0.1], [0.3, 0.25], size=(n, 2)), -1, 1)
    seconds, _ = best_of(lambda: BinnedSampler(max_repeats=200, random_state=0).fit_indices(va), 3)
    table.add(f"BinnedSampler joint 20x20, {n:,} VA pairs", seconds, "goal < 0.3 s")


def bench_classes(table: Table, n: int) -> None:
    """ClassBalancedSampler against imbalanced-learn's RandomOverSampler on the same 7-class target."""
    rng = np.random.default_rng(5)
    y = rng.choice(7, size=n, p=[0.40, 0.25, 0.15, 0.10, 0.05, 0.04, 0.01])
    X = rng.normal(size=(n, 2))
    ros_s, (_, y_ros) = best_of(lambda: RandomOverSampler(random_state=0).fit_resample(X, y), 3)
    same_s, (_, y_same) = best_of(
        lambda: ClassBalancedSampler(sampling_strategy="not majority", random_state=0).fit_resample(X, y), 3
    )
    assert np.array_equal(np.bincount(y_same), np.bincount(y_ros))
    epoch_s, _ = best_of(lambda: ClassBalancedSampler(random_state=0).fit_resample(X, y), 3)
    table.add(f"imblearn RandomOverSampler, {n:,} rows -> {len(y_ros):,}", ros_s)
    table.add(
        "ClassBalancedSampler('not majority'), same output", same_s, f"ratio {same_s / ros_s:.2f} (goal <= 1)"
    )
    table.add(f"ClassBalancedSampler, balanced epoch of {n:,}", epoch_s, f"ratio {epoch_s / ros_s:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="sizes divided by 10, for a smoke test")
    scale = 10 if parser.parse_args().quick else 1
    machine = platform.processor() or platform.machine()
    print(f"imbalance {imbalance.__version__}, numpy {np.__version__}, {machine}, {os.cpu_count()} CPUs")
    table = Table()
    bench_against_reference(table, 40_000 // scale)
    bench_dense(table, 1_000_000 // scale, "goal < 0.5 s", with_rus=True)
    bench_dense(table, 10_000_000 // scale, "", with_rus=False)
    bench_sparse(table, 1_000_000 // scale)
    bench_binned(table, 1_000_000 // scale)
    bench_classes(table, 1_000_000 // scale)
    print()
    print(table.markdown())


if __name__ == "__main__":
    main()
