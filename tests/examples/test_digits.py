"""examples/digits/run.py: splits, a quick study over variants that resumes, and the README's tables."""

import importlib.util
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

RUN = Path(__file__).parents[2] / "examples" / "digits" / "run.py"


def load_example():
    spec = importlib.util.spec_from_file_location("digits_example", RUN)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_quick_study_compares_variants_with_one_teacher_per_seed_and_resumes(tmp_path, capsys):
    example = load_example()
    results = tmp_path / "results.md"
    args = ["--quick", "--seeds", "0-1", "--variants", "paper,cached", "--out-dir", str(tmp_path / "runs")]
    report = example.main([*args, "--results", str(results)])
    assert results.read_text() == report and report in capsys.readouterr().out
    runs = tmp_path / "runs" / "quick"
    for seed in (0, 1):
        assert (runs / f"seed_{seed}" / "teacher-quick" / "model.pt").is_file()  # shared by both variants
        paper = json.loads((runs / f"seed_{seed}" / "paper" / "scores.json").read_text())
        cached = json.loads((runs / f"seed_{seed}" / "cached" / "scores.json").read_text())
        assert paper["teacher"] == cached["teacher"]
        assert set(paper) == {"teacher", "student_0", "student_1", "ensemble", "budget"}
        assert paper["budget"]["student_images"] < paper["budget"]["teacher_images"]  # 3/8 of its epochs
    assert "over 2 seeds (0, 1)" in report
    # The paired difference in the table is the mean of the two seeds' differences.
    differences = []
    for seed in (0, 1):
        scores = json.loads((runs / f"seed_{seed}" / "paper" / "scores.json").read_text())
        mean = np.mean([scores[f"student_{k}"]["digit"] for k in range(2)])
        differences.append(mean - scores["teacher"]["digit"])
    section = report.split("### `paper`")[1].split("### `cached`")[0]
    row = next(line for line in section.splitlines() if line.startswith("| students (mean) − teacher"))
    assert row.split("|")[2].strip().strip("*").startswith(f"{np.mean(differences):+.3f}")

    before = {path: path.stat().st_mtime_ns for path in runs.rglob("*.json")}
    again = example.main(args)
    assert {path: path.stat().st_mtime_ns for path in runs.rglob("*.json")} == before  # nothing retrained
    assert re.sub(r"\d+ s wall-clock", "", again) == re.sub(r"\d+ s wall-clock", "", report)


def test_one_seed_is_labelled_as_one_run_and_unknown_variants_are_named(tmp_path):
    example = load_example()
    report = example.main(["--quick", "--variants", "default", "--out-dir", str(tmp_path)])
    assert "**One run**" in report
    with pytest.raises(SystemExit):
        example.main(["--quick", "--variants", "papr", "--out-dir", str(tmp_path)])


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


def resolved(example, name):
    """What a variant trains: its students' loss settings and the soft-label source of each task."""
    import mtl_distill as md
    from mtl_distill.distillation import _soft_label_kinds
    from mtl_distill.trainer import STUDENT_LOSS_SETTINGS

    variant = example.VARIANTS[name]
    config = md.DistillConfig(student=md.TrainConfig(**variant.student), **variant.distill)
    loss = {key: getattr(config.student, key) for key in STUDENT_LOSS_SETTINGS}
    return loss, _soft_label_kinds(config.soft_labels, example.TASKS), config.student_init, config.bagging


def test_each_variant_trains_what_it_says_whatever_the_package_defaults():
    example = load_example()
    # The package's defaults are the best variant of the studies, per-task-kd-ccc, on this problem.
    assert resolved(example, "default") == resolved(example, "per-task-kd-ccc")
    # Variants from before the defaults changed pin what they ran with.
    online_kd, kinds, _, _ = resolved(example, "online-kd")
    assert online_kd["batch_loss_weight"] == "lam" and set(kinds.values()) == {"online"}
    for name in ("kd-ccc", "confidence", "from-teacher-kd", "born-again", "paper", "paper-equal", "own-init"):
        loss, kinds, _, _ = resolved(example, name)
        assert set(kinds.values()) == {"online"}, name
        assert loss["batch_loss_weight"] == ("lam" if name.startswith(("paper", "own")) else "teacher_share")
