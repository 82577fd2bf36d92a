"""The package README's Python examples run as written (in order, sharing one namespace); the first one with
numpy alone, as its install line promises."""

import re
import subprocess
import sys
from pathlib import Path

import matplotlib

README = Path(__file__).parents[2] / "packages" / "imbalance" / "README.md"
OPTIONAL = ("pandas", "scipy", "matplotlib", "torch", "sklearn", "imblearn")


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_readme_examples_run(tmp_path, monkeypatch):
    matplotlib.use("Agg")
    blocks = _blocks()
    assert len(blocks) >= 5
    monkeypatch.chdir(tmp_path)  # an example that saves a plot saves it here
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)


def test_first_readme_example_runs_with_numpy_alone():
    # None in sys.modules makes `import pandas` (and the others) fail, as if they were not installed.
    blocker = "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in OPTIONAL)
    result = subprocess.run(
        [sys.executable, "-c", blocker + _blocks()[0]], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "MeanIR" in result.stdout
