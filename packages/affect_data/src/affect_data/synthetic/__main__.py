"""``python -m affect_data.synthetic --preset tiny|demo --out DIR --seed N``: write the synthetic corpus."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from .corpus import PRESETS, write_corpus


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m affect_data.synthetic",
        description="Render the synthetic affect corpus in the Aff-Wild2, DISFA, ExpW and AFEW-VA formats.",
    )
    parser.add_argument("--out", required=True, help="folder to create (must not exist or be empty)")
    parser.add_argument(
        "--preset", choices=sorted(PRESETS), default="tiny", help="corpus size (default: tiny)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument(
        "--jobs", type=int, default=min(4, os.cpu_count() or 1), help="rendering processes (default: up to 4)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier corpus at --out")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        root = write_corpus(
            args.out,
            preset=args.preset,
            seed=args.seed,
            n_jobs=args.jobs,
            overwrite=args.overwrite,
            progress=True,
        )
    except (FileExistsError, ValueError) as err:
        parser.exit(2, f"error: {err}\n")
    counts = json.loads((root / "corpus.json").read_text())["counts"]
    print(f"wrote {args.preset} corpus (seed {args.seed}) to {root} in {time.perf_counter() - start:.1f} s")
    for name, values in counts.items():
        print(f"  {name:10s} " + ", ".join(f"{v} {k}" for k, v in values.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
