"""examples/digits/run.py in its reduced mode: the table is printed and written, and the models learned."""

import importlib.util
import re
from pathlib import Path

import numpy as np
import torch

RUN = Path(__file__).parents[2] / "examples" / "digits" / "run.py"


def load_example():
    spec = importlib.util.spec_from_file_location("digits_example", RUN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_digits_quick_run(tmp_path, capsys):
    example = load_example()
    results = tmp_path / "results.md"
    report = example.main(["--quick", "--results", str(results), "--soft-labels", "cached"])
    assert results.read_text() == report
    assert report in capsys.readouterr().out
    rows = {line.split("|")[1].strip(): line for line in report.splitlines() if line.startswith("| ")}
    expected = ["teacher", "student 1", "student 2", "ensemble, thresholds 0.5", "ensemble, tuned thresholds"]
    assert all(name in rows for name in expected)
    teacher_scores = [float(value) for value in re.findall(r"\d\.\d{3}", rows["teacher"])]
    assert len(teacher_scores) == 5
    assert teacher_scores[1] > 0.3  # digit accuracy well above chance (0.1) after a few epochs


def test_each_training_image_has_one_label_and_test_images_all():
    example = load_example()
    train, plain, val, test, sources = example.make_splits(seed=1, noise=0.1)
    train_masks = torch.stack([train.masks[task.name] for task in example.TASKS], dim=1)
    assert torch.equal(train_masks.sum(dim=1), torch.ones(len(train), dtype=torch.long))
    assert all(mask.all() for mask in test.masks.values()) and all(mask.all() for mask in val.masks.values())
    assert sorted(np.concatenate(list(sources.values())).tolist()) == list(range(len(train)))
    image, targets, masks = plain[0]
    assert image.shape == (64,) and set(targets) == set(masks) == {"digit", "attributes", "shape"}
    assert float(test.targets["shape"].min()) >= -1 and float(test.targets["shape"].max()) <= 1


def test_readme_shows_the_table_and_timings_the_full_run_wrote():
    readme = (RUN.parent / "README.md").read_text()
    written = (RUN.parent / "results.md").read_text()
    table = "\n".join(line for line in written.splitlines() if line.startswith("|"))
    assert table in readme
    wall, cpu = re.search(r"(\d+) s wall-clock, (\d+) s CPU", written).groups()
    assert f"{cpu} s of CPU time" in readme and f"{wall} s of wall-clock time" in readme
