"""Measure a skewed multi-label data set, rebalance it with ML-ROS, and plot before/after.

    .venv/bin/python examples/imbalance/demo.py --out runs/imbalance_demo

The labels imitate the 8 facial action units of Aff-Wild2 (shares from about 2% to 60%) with realistic
co-occurrence: a smile raises AU6, AU12 and AU25 together, a brow raise AU1 and AU2. Co-occurrence is what
keeps ML-ROS from balancing fully (the paper's Figure 2): cloning a rare AU also clones its frequent partners.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from imbalance import MLROS, describe
from imbalance.plot import save_before_after

AUS = ["AU1", "AU2", "AU4", "AU6", "AU12", "AU15", "AU20", "AU25"]


def au_labels(n: int, seed: int) -> pd.DataFrame:
    """n frames of 8 AU labels with Aff-Wild2-like shares and co-occurrence."""
    rng = np.random.default_rng(seed)

    def chance(p: float | np.ndarray) -> np.ndarray:
        return rng.random(n) < p

    smile, brow, frown = chance(0.30), chance(0.06), chance(0.10)
    labels = {
        "AU1": brow | chance(0.02),
        "AU2": brow & chance(0.6),
        "AU4": frown | chance(0.03),
        "AU6": smile & chance(0.7),
        "AU12": smile | chance(0.03),
        "AU15": frown & chance(0.3),
        "AU20": chance(0.02),
        "AU25": chance(np.where(smile, 0.9, 0.47)),
    }
    return pd.DataFrame({name: labels[name].astype(np.uint8) for name in AUS})


def comparison_table(before: pd.DataFrame, after: pd.DataFrame) -> str:
    b, a = describe(before), describe(after)
    lines = [
        f"{'label':<6} {'count':>8} {'share':>6} {'IRLbl':>7}   ->  {'count':>8} {'share':>6} {'IRLbl':>7}",
    ]
    for i, name in enumerate(b.labels):
        lines.append(
            f"{name:<6} {b.count[i]:>8d} {b.share[i]:>6.3f} {b.irlbl[i]:>7.2f}   ->  "
            f"{a.count[i]:>8d} {a.share[i]:>6.3f} {a.irlbl[i]:>7.2f}"
        )
    lines.append("")
    for figure in ("n_samples", "max_ir", "mean_ir", "cvir", "scumble"):
        lines.append(f"{figure:<10} {getattr(b, figure):>12.4g}   ->  {getattr(a, figure):>12.4g}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="ML-ROS on an AU-like multi-label data set")
    parser.add_argument("--out", type=Path, default=Path("runs/imbalance_demo"), help="output folder")
    parser.add_argument("--n", type=int, default=200_000, help="number of frames")
    parser.add_argument("--percentage", type=float, default=25.0, help="ML-ROS cloning budget, % of rows")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    labels = au_labels(args.n, args.seed)
    start = time.perf_counter()
    sampler = MLROS(percentage=args.percentage, random_state=args.seed)
    _, resampled = sampler.fit_resample(None, labels)
    seconds = time.perf_counter() - start

    clones = len(resampled) - len(labels)
    print(
        f"ML-ROS P={args.percentage:g}: {clones:,} clones in {seconds:.3f} s "
        f"(budget {int(len(labels) * args.percentage // 100):,})\n"
    )
    print(comparison_table(labels, resampled))
    path = save_before_after(
        labels, resampled, args.out / "au_before_after.png", title="AU shares, before/after ML-ROS"
    )
    print(f"\nplot: {path}")


if __name__ == "__main__":
    main()
