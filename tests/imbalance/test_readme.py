"""The package README's Python examples run as written (in order, sharing one namespace)."""

import re
from pathlib import Path

import matplotlib

README = Path(__file__).parents[2] / "packages" / "imbalance" / "README.md"


def test_readme_examples_run(tmp_path, monkeypatch):
    matplotlib.use("Agg")
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert len(blocks) >= 5
    monkeypatch.chdir(tmp_path)  # an example that saves a plot saves it here
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
