"""The `make demo` script runs end to end on a small data set."""

import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).parents[2] / "examples" / "imbalance" / "demo.py"


def test_demo_prints_the_table_and_writes_the_plot(tmp_path):
    result = subprocess.run(
        [sys.executable, str(DEMO), "--out", str(tmp_path), "--n", "5000"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "mean_ir" in result.stdout and "AU20" in result.stdout
    plot = tmp_path / "au_before_after.png"
    assert f"plot: {plot}" in result.stdout and plot.stat().st_size > 1000
