"""The package README's Python examples run as written (in order, sharing one namespace)."""

import re
from pathlib import Path

import torch

README = Path(__file__).parents[2] / "packages" / "mtl_distill" / "README.md"


def test_readme_examples_run(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert len(blocks) >= 4
    monkeypatch.chdir(tmp_path)  # the examples write ensemble.pt and runs/
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    assert (tmp_path / "ensemble.pt").is_file()
    assert (tmp_path / "runs" / "teacher" / "initial.pt").is_file()
    assert (tmp_path / "study.png").stat().st_size > 1000
    assert namespace["thresholds"].shape == (3,)
