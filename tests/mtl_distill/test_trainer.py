"""The trainer: Algorithm 1 on a toy problem, soft-label sources, evaluation, best epoch, records, errors."""

from __future__ import annotations

import copy
import csv
import logging

import numpy as np
import pytest
import torch
import toy_training as toy
from torch import nn

from mtl_distill.batching import MultiTaskBatchSampler
from mtl_distill.distillation import DistillConfig, distill, train_students, train_teacher
from mtl_distill.evaluation import Predictions, evaluate, mean_task_score, predict, score_predictions
from mtl_distill.losses import student_loss, teacher_loss
from mtl_distill.soft_labels import (
    CachedSoftLabels,
    EnsembleTeacher,
    OnlineSoftLabels,
    PerTaskSoftLabels,
    SoftLabelCache,
)
from mtl_distill.tasks import MultiClassTask
from mtl_distill.trainer import TrainConfig, Trainer

torch.set_num_threads(1)

TASKS = toy.make_tasks()


def quiet(epochs: int, **kwargs) -> TrainConfig:
    kwargs.setdefault("lr", 3e-3)
    return TrainConfig(epochs=epochs, progress=False, **kwargs)


def states_equal(a: dict, b: dict) -> bool:
    return all(torch.equal(a[key], b[key]) for key in a)


@pytest.fixture(scope="module")
def data():
    train, sources, val = toy.make_data(per_task=48)
    return train, MultiTaskBatchSampler(sources, batch_size=8, steps_per_epoch=6), val


def test_the_teacher_learns_the_toy_problem(data, tmp_path):
    train, sampler, val = data
    model = toy.make_model()
    before = mean_task_score(evaluate(model, TASKS, val))
    result = train_teacher(
        model, TASKS, train, sampler, val, quiet(4, lr=1e-2, lr_step_epochs=10), out_dir=tmp_path
    )
    after = mean_task_score(evaluate(model, TASKS, val))
    assert result.model is model
    assert after > before + 0.2, (before, after)
    losses = [row["train_loss"] for row in result.history]
    assert losses[-1] < 0.8 * losses[0]
    assert (tmp_path / "initial.pt").is_file() and (tmp_path / "model.pt").is_file()


def test_epoch_lines_are_logged_not_printed(data, caplog, capsys):
    train, sampler, val = data
    config = TrainConfig(epochs=2, lr=3e-3, tensorboard=False)  # progress=True: bars and epoch lines
    with caplog.at_level(logging.INFO, logger="mtl_distill"):
        Trainer(toy.make_model(), TASKS, config, name="teacher").fit(train, sampler, val)
    records = [r for r in caplog.records if r.name == "mtl_distill.trainer"]
    assert [r.getMessage().split(":")[0] for r in records] == ["teacher epoch 1/2", "teacher epoch 2/2"]
    assert all(", val " in r.getMessage() and r.levelno == logging.INFO for r in records)
    assert "epoch" not in capsys.readouterr().out
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="mtl_distill"):
        Trainer(toy.make_model(), TASKS, quiet(1)).fit(train, sampler, val)
    assert not caplog.records  # progress=False: no bars, no epoch lines


def test_train_step_minimises_eq13_for_the_teacher_and_eq14_for_a_student(data):
    train, _, _ = data
    batch = torch.utils.data.default_collate([train[i] for i in (0, 1, 60, 61, 100, 101)])
    inputs, targets, masks = batch
    teacher_model, student_model = toy.make_model(), toy.make_model(seed=1)
    config = quiet(1, reduction="mean", task_weights={"cls": 2.0})
    with torch.no_grad():
        expected = teacher_loss(TASKS, teacher_model(inputs), targets, masks, "mean", {"cls": 2.0})
        soft = teacher_model(inputs)
        expected_student = student_loss(  # TrainConfig's defaults: distillation weighted 1 - lam everywhere,
            TASKS,  # the CCC term at its share of the teacher's loss
            student_model(inputs),
            soft,
            targets,
            masks,
            0.6,
            1.5,
            "mean",
            {"cls": 2.0},
            unlabelled_weight=0.4,
            batch_loss_weight="teacher_share",
        )
    source = OnlineSoftLabels(teacher_model)
    student = Trainer(student_model, TASKS, config, soft_labels=source)
    assert student.train_step(batch) == pytest.approx(float(expected_student), rel=1e-6)
    teacher = Trainer(teacher_model, TASKS, config)
    assert teacher.train_step(batch) == pytest.approx(float(expected), rel=1e-6)
    assert teacher.train_step(batch) < float(expected)  # the step went downhill


def test_students_start_from_the_teachers_initial_weights_with_their_own_seeds(data):
    train, sampler, val = data
    model = toy.make_model(dropout=0.2)
    initial = copy.deepcopy(model.state_dict())
    frozen_at_start = distill(
        model, TASKS, train, sampler, val, DistillConfig(quiet(1), quiet(0), num_students=2)
    )
    assert states_equal(model.state_dict(), initial)  # the caller's model is not modified
    assert not states_equal(frozen_at_start.teacher.model.state_dict(), initial)
    for student in frozen_at_start.students:
        assert states_equal(student.state_dict(), initial)

    trained = distill(model, TASKS, train, sampler, val, DistillConfig(quiet(1), quiet(1), num_students=2))
    first, second = (student.state_dict() for student in trained.students)
    assert not states_equal(first, second)  # own seeds: other batches and dropout masks
    assert states_equal(trained.teacher.model.state_dict(), frozen_at_start.teacher.model.state_dict())


def test_students_can_start_from_own_random_weights_or_from_the_trained_teacher(data):
    train, sampler, val = data
    model = toy.make_model(dropout=0.2)
    initial = copy.deepcopy(model.state_dict())
    random_start = distill(
        model, TASKS, train, sampler, val, DistillConfig(quiet(1), quiet(0), 2, student_init="random")
    )
    first, second = (student.state_dict() for student in random_start.students)
    assert not states_equal(first, initial) and not states_equal(first, second)
    again = distill(
        model, TASKS, train, sampler, val, DistillConfig(quiet(1), quiet(0), 2, student_init="random")
    )
    assert states_equal(again.students[0].state_dict(), first)  # seeded: the same fresh weights every time

    from_teacher = distill(
        model, TASKS, train, sampler, val, DistillConfig(quiet(1), quiet(0), 1, student_init="teacher")
    )
    assert states_equal(from_teacher.students[0].state_dict(), from_teacher.teacher.model.state_dict())
    assert states_equal(model.state_dict(), initial)


def test_with_bagging_each_student_draws_from_its_own_bag(data, monkeypatch):
    from mtl_distill import distillation

    train, sampler, val = data
    bags = []
    fit = distillation.Trainer.fit

    def recording_fit(self, train_dataset, batch_sampler, val_dataset=None):
        bags.append(batch_sampler.bag_seed)
        return fit(self, train_dataset, batch_sampler, val_dataset)

    monkeypatch.setattr(distillation.Trainer, "fit", recording_fit)
    config = DistillConfig(quiet(1), quiet(1), 2, bagging=True, seed=4)
    bagged = distill(toy.make_model(), TASKS, train, sampler, val, config)
    student_seeds = [distillation._student_seed(4, 1, index) for index in range(2)]
    assert bags == [None, *student_seeds]  # the teacher sees every sample; each student its own bag
    plain = distill(
        toy.make_model(), TASKS, train, sampler, val, DistillConfig(quiet(1), quiet(1), 2, seed=4),
        teacher=bagged.teacher,
    )  # fmt: skip
    assert bags[3:] == [None, None]
    assert not states_equal(plain.students[0].state_dict(), bagged.students[0].state_dict())


def test_reset_parameters_names_a_parameter_it_cannot_reset():
    from mtl_distill.distillation import reset_parameters

    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(2, 2)
            self.scale = nn.Parameter(torch.ones(2))

    with pytest.raises(ValueError, match=r"cannot re-initialise parameters \['scale'\]"):
        reset_parameters(Scaled(), seed=0)


def test_the_paper_preset_and_invalid_student_starts():
    paper = DistillConfig.paper()
    assert (paper.teacher.epochs, paper.student.epochs, paper.num_students) == (8, 3, 5)
    assert (paper.student.lr, paper.student.lr_step_epochs, paper.student.lr_gamma) == (1e-4, 3, 0.1)
    assert (paper.student.lam, paper.student.temperature, paper.student.t2_scaling) == (0.6, 1.5, False)
    assert (paper.soft_labels, paper.student_init) == ("online", "teacher_initial")
    assert paper.student.distillation_weight_unlabelled == 1.0  # Eq. 14
    assert paper.student.batch_loss_weight == "lam"
    assert DistillConfig.paper(device="cpu").teacher.device == "cpu"
    defaults = DistillConfig()  # the best method of the studies: students as long as the teacher, by task
    assert defaults.student.epochs == defaults.teacher.epochs and defaults.soft_labels == "by_task"
    assert defaults.student.batch_loss_weight == "teacher_share"
    assert TrainConfig().distillation_weight_unlabelled == pytest.approx(0.4)  # 1 - lam
    assert TrainConfig(lam=0.9).distillation_weight_unlabelled == pytest.approx(0.1)
    with pytest.raises(ValueError, match="student_init must be one of"):
        DistillConfig(student_init="imagenet")


def test_the_teacher_is_frozen_in_eval_mode_and_unchanged_by_students(data):
    train, sampler, val = data
    teacher = toy.make_model(dropout=0.5)
    teacher.train()
    before = copy.deepcopy(teacher.state_dict())
    source = OnlineSoftLabels(teacher)
    assert not source.teacher.training
    assert not any(parameter.requires_grad for parameter in source.teacher.parameters())
    x = torch.randn(5, toy.NUM_FEATURES)
    assert torch.equal(source(x)["cls"], source(x)["cls"])  # eval mode: no dropout in soft labels
    assert not source(x)["cls"].requires_grad

    train_students(toy.make_model(dropout=0.5), teacher, TASKS, train, sampler, val, quiet(1), num_students=1)
    assert states_equal(teacher.state_dict(), before)
    assert teacher.training and teacher.trunk[0].weight.requires_grad  # the caller's module untouched


def test_cached_soft_labels_match_online_ones_without_augmentation(data):
    train, sampler, val = data
    teacher = toy.make_model(seed=3)
    results = {}
    for mode in ("online", "cached"):
        (run,) = train_students(
            toy.make_model(dropout=0.2),
            teacher,
            TASKS,
            train,
            sampler,
            val,
            quiet(1),
            num_students=1,
            soft_labels=mode,
            cache_dtype="float32",
        )
        results[mode] = run.model.state_dict()
    for key, value in results["online"].items():
        torch.testing.assert_close(results["cached"][key], value, rtol=1e-5, atol=1e-6)

    cache16 = SoftLabelCache.build(teacher, train)
    cache32 = SoftLabelCache.build(teacher, train, dtype=torch.float32)
    assert cache16.logits["cls"].dtype == torch.float16 and len(cache16) == len(train)
    indices = torch.tensor([5, 0, 140])
    for name, values in cache32.lookup(indices).items():
        torch.testing.assert_close(cache16.lookup(indices)[name], values, rtol=2e-3, atol=2e-3)
        inputs = torch.stack([train[i][0] for i in indices.tolist()])
        torch.testing.assert_close(values, teacher.eval()(inputs)[name], rtol=1e-5, atol=1e-6)


def test_soft_labels_chosen_per_task_take_each_task_from_its_source(data, tmp_path):
    train, sampler, val = data
    teacher = toy.make_model(seed=3)

    def students(soft_labels, **kwargs):
        (run,) = train_students(
            toy.make_model(dropout=0.2), teacher, TASKS, train, sampler, val, quiet(1), num_students=1,
            soft_labels=soft_labels, cache_dtype="float32", **kwargs,
        )  # fmt: skip
        return run.model.state_dict()

    def close(a, b):
        return all(torch.allclose(a[key], b[key], rtol=1e-5, atol=1e-6) for key in a)

    mixed = {"attr": "cached", "cls": "cached", "val": "online"}
    # Without augmentation the cache holds what the online teacher computes: the mix trains the same student.
    assert close(students(mixed), students("online"))
    # A cache of other inputs makes the sources differ: the mix is then neither the one nor the other.
    shifted = toy.ToyDataset(len(train), seed=9, labelled=train.labelled)
    from_mix = students(mixed, cache_dataset=shifted)
    assert not close(from_mix, students("online")) and not close(
        from_mix, students("cached", cache_dataset=shifted)
    )
    # "by_task": each task's preferred source - cached for the classification tasks, online for regression.
    assert [task.preferred_soft_labels for task in TASKS] == ["cached", "cached", "online"]
    assert close(students("by_task", cache_dataset=shifted), from_mix)

    with pytest.raises(ValueError, match=r"name every task once: missing \['val'\], not a task \['shape'\]"):
        students({"attr": "cached", "cls": "cached", "shape": "online"})
    with pytest.raises(
        ValueError, match=r"each task must be one of \('online', 'cached'\), got \{'val': 'soft'\}"
    ):
        students({**mixed, "val": "soft"})
    with pytest.raises(ValueError, match=r"soft_labels must be 'by_task', one of \('online', 'cached'\)"):
        DistillConfig(soft_labels="offline")
    with pytest.raises(ValueError, match=r"got \{'val': 'soft'\}"):
        DistillConfig(soft_labels={**mixed, "val": "soft"})
    # distill names a task the mapping misses before the teacher trains, not after.
    partial = DistillConfig(
        teacher=quiet(1), student=quiet(1), soft_labels={"attr": "cached", "cls": "cached"}
    )
    with pytest.raises(ValueError, match=r"missing \['val'\]"):
        distill(toy.make_model(), TASKS, train, sampler, val, partial, out_dir=tmp_path)
    assert not (tmp_path / "teacher").exists()


def test_per_task_soft_labels_run_each_source_once_a_batch():
    calls = []

    def source(name):
        def soft(inputs, indices):
            calls.append(name)
            return {"a": inputs + 1, "b": inputs + 2} if name == "one" else {"a": inputs - 1}

        return soft

    one, two = source("one"), source("two")
    soft = PerTaskSoftLabels({"a": two, "b": one, "c": one})
    with pytest.raises(KeyError, match="the soft-label source of task 'c' gives no logits for it"):
        soft(torch.zeros(1, 1), None)
    calls.clear()
    out = PerTaskSoftLabels({"a": two, "b": one})(torch.zeros(1, 1), None)
    assert calls == ["two", "one"] and out["a"].item() == -1 and out["b"].item() == 2
    with pytest.raises(ValueError, match="at least one task"):
        PerTaskSoftLabels({})


def test_the_soft_label_cache_saves_loads_and_names_bad_lookups(data, tmp_path):
    train, _, _ = data
    cache = SoftLabelCache.build(toy.make_model(), train, indices=[0, 1, 2])
    cache.save(tmp_path / "cache.pt")
    loaded = SoftLabelCache.load(tmp_path / "cache.pt")
    assert torch.equal(loaded.lookup(torch.tensor([2]))["val"], cache.lookup(torch.tensor([2]))["val"])
    with pytest.raises(KeyError, match="sample 7 has no cached teacher output"):
        loaded.lookup(torch.tensor([1, 7]))
    with pytest.raises(IndexError, match="index 9999 in a cache of 144 samples"):
        loaded.lookup(torch.tensor([9999]))
    with pytest.raises(ValueError, match="need the batch's sample indices"):
        CachedSoftLabels(loaded)(torch.zeros(1, 8), None)


def test_the_best_epoch_is_kept(data, tmp_path):
    train, sampler, val = data
    planned = iter([0.2, 0.9, 0.5])
    config = quiet(3, selection=lambda scores: next(planned))
    result = Trainer(toy.make_model(), TASKS, config, seed=4, out_dir=tmp_path).fit(train, sampler, val)
    assert (result.best_epoch, result.best_score) == (1, 0.9)
    assert [row["best_epoch"] for row in result.history] == [0, 1, 1]
    two_epochs = Trainer(toy.make_model(), TASKS, quiet(2, keep_best=False), seed=4).fit(train, sampler, val)
    assert states_equal(result.model.state_dict(), two_epochs.model.state_dict())
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    assert states_equal(saved, two_epochs.model.state_dict())


def test_metrics_csv_has_one_row_per_epoch_and_every_task_score(data, tmp_path):
    train, sampler, val = data
    Trainer(toy.make_model(), TASKS, quiet(2), out_dir=tmp_path).fit(train, sampler, val)
    with open(tmp_path / "metrics.csv") as file:
        rows = list(csv.DictReader(file))
    assert [int(row["epoch"]) for row in rows] == [0, 1]
    for name in ("train_loss", "lr", "val/attr/score", "val/cls/score", "val/val/score", "val/selection"):
        assert all(row[name] != "" for row in rows), name
    assert float(rows[1]["lr"]) == pytest.approx(3e-3)  # the step schedule: /10 after 3 epochs


class NaNAfter(nn.Module):
    """Wraps a model; from its ``calls``-th forward on, the "cls" logits are NaN."""

    def __init__(self, model: nn.Module, calls: int) -> None:
        super().__init__()
        self.model, self.calls, self.count = model, calls, 0

    def forward(self, x):
        self.count += 1
        outputs = self.model(x)
        if self.count >= self.calls:
            outputs["cls"] = outputs["cls"] * float("nan")
        return outputs


def test_a_non_finite_loss_stops_the_run_naming_task_and_step(data):
    train, sampler, _ = data
    trainer = Trainer(NaNAfter(toy.make_model(), calls=8), TASKS, quiet(2))
    with pytest.raises(FloatingPointError, match=r"epoch 2, step 2 \(global step 8\): task\(s\) \['cls'\]"):
        trainer.fit(train, sampler)


def test_generations_an_ensemble_of_students_teaches_the_next(data, tmp_path):
    train, sampler, val = data
    config = DistillConfig(quiet(1), quiet(1), num_students=2, generations=2, soft_labels="cached")
    result = distill(toy.make_model(), TASKS, train, sampler, val, config, out_dir=tmp_path)
    assert [len(generation) for generation in result.generations] == [2, 2]
    assert (tmp_path / "generation_2" / "student_1" / "model.pt").is_file()
    assert (tmp_path / "generation_2" / "soft_labels.pt").is_file()
    ensemble = EnsembleTeacher(result.students, TASKS)
    x = torch.randn(4, toy.NUM_FEATURES)
    probabilities = [torch.softmax(student(x)["cls"], dim=1) for student in result.students]
    torch.testing.assert_close(torch.softmax(ensemble(x)["cls"], dim=1), sum(probabilities) / 2)


def test_train_generations_needs_at_least_one(data):
    from mtl_distill.distillation import train_generations

    train, sampler, val = data
    with pytest.raises(ValueError, match="generations must be >= 1, got 0"):
        train_generations(toy.make_model(), toy.make_model(), TASKS, train, sampler, val, generations=0)


def test_gpu_switches_are_ignored_on_cpu_with_a_warning(data):
    train, sampler, _ = data
    if torch.cuda.is_available():
        pytest.skip("checks the CPU fallback")
    with pytest.warns(UserWarning, match="CUDA only"):
        trainer = Trainer(toy.make_model(), TASKS, quiet(1, amp=True, channels_last=True))
    assert not trainer.amp and not trainer.scaler.is_enabled()
    trainer.fit(train, sampler)
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"epochs": -1}, "epochs must be an int >= 0, got -1"),
        ({"epochs": 2.5}, "epochs must be an int >= 0, got 2.5"),
        ({"lr_step_epochs": 0}, "lr_step_epochs must be an int >= 1, got 0"),  # else: ZeroDivisionError later
        ({"eval_batch_size": 0}, "eval_batch_size must be an int >= 1, got 0"),
        ({"num_workers": -1}, "num_workers must be an int >= 0, got -1"),
        ({"checkpoint_every": 1.5}, "checkpoint_every must be an int >= 1 or None, got 1.5"),
        ({"amp_dtype": "float8"}, "amp_dtype must be 'float16' or 'bfloat16'"),
        ({"reduction": "none"}, "reduction must be 'sum' or 'mean'"),
        ({"batch_loss_weight": "share"}, "batch_loss_weight must be one of"),
        ({"soft_label_weight": "entropy"}, "soft_label_weight must be one of"),
    ],
)
def test_bad_settings_are_rejected_before_training(settings, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**settings)


def test_a_custom_scheduler_makes_lr_step_epochs_irrelevant():
    TrainConfig(lr_step_epochs=0, scheduler=lambda optimizer: None)


def test_any_optimiser_and_scheduler_factories_are_accepted(data):
    train, sampler, _ = data
    config = quiet(
        2,
        optimizer=lambda params: torch.optim.SGD(params, lr=0.5),
        scheduler=lambda optimizer: torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.5),
    )
    result = Trainer(toy.make_model(), TASKS, config).fit(train, sampler)
    assert [row["lr"] for row in result.history] == [0.5, 0.25]


class SequenceModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(2, 3)

    def forward(self, x):  # x: [B, L, 2] -> logits [B, L, 3]
        return {"c": self.head(x)}


def test_sequence_batches_are_flattened_to_frames():
    task = MultiClassTask("c", 3)
    x = torch.randn(2, 4, 2)
    targets = {"c": torch.randint(0, 3, (2, 4))}
    masks = {"c": torch.tensor([[True, False, True, True], [False, False, True, False]])}
    model = SequenceModel()
    with torch.no_grad():
        logits = model(x)["c"].reshape(8, 3)
    expected = teacher_loss(
        [task], {"c": logits}, {"c": targets["c"].reshape(8)}, {"c": masks["c"].reshape(8)}
    )
    loss = Trainer(model, [task], quiet(1)).train_step((x, targets, masks))
    assert loss == pytest.approx(float(expected), rel=1e-6)


def test_cached_soft_labels_of_a_sequence_model_match_online_ones():
    task = MultiClassTask("c", 3)
    torch.manual_seed(0)
    items = [
        (torch.randn(4, 2), {"c": torch.randint(0, 3, (4,))}, {"c": torch.rand(4) < 0.5}) for _ in range(6)
    ]
    teacher = SequenceModel()
    cache = SoftLabelCache.build(teacher, items)
    assert cache.logits["c"].shape == (6, 4, 3)  # one [L, C] block per sequence
    indices = torch.tensor([4, 1])
    x, targets, masks = torch.utils.data.default_collate([items[i] for i in indices.tolist()])
    torch.testing.assert_close(cache.lookup(indices)["c"], teacher(x)["c"], rtol=2e-3, atol=2e-3)
    losses = {}
    for name, source in (("online", OnlineSoftLabels(teacher)), ("cached", CachedSoftLabels(cache))):
        torch.manual_seed(1)
        student = Trainer(SequenceModel(), [task], quiet(1), soft_labels=source)
        losses[name] = student.train_step((x, targets, masks, indices))
    assert losses["cached"] == pytest.approx(losses["online"], rel=1e-3)


def test_evaluation_runs_under_the_configured_mixed_precision_type(data, monkeypatch):
    train, sampler, val = data
    import mtl_distill.evaluation as evaluation
    import mtl_distill.trainer as trainer_module

    seen = []
    real_evaluate = trainer_module.evaluate

    def recording_evaluate(*args, **kwargs):
        seen.append(kwargs["amp_dtype"])
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "evaluate", recording_evaluate)
    Trainer(toy.make_model(), TASKS, quiet(1, amp_dtype="bfloat16")).fit(train, sampler, val)
    assert seen == [torch.bfloat16]

    autocast_dtypes = []
    real_autocast = torch.autocast

    def recording_autocast(device_type, dtype=None, enabled=True):
        autocast_dtypes.append(dtype)
        return real_autocast(device_type, dtype=dtype, enabled=enabled)

    monkeypatch.setattr(evaluation.torch, "autocast", recording_autocast)
    predict(toy.make_model(), TASKS, val, batch_size=96, amp=True, amp_dtype=torch.bfloat16)
    assert autocast_dtypes == [torch.bfloat16]


def test_predict_and_score_use_only_labelled_rows(data):
    train, _, _ = data
    model = toy.make_model()
    predictions = predict(model, TASKS, train, batch_size=50)
    assert predictions.outputs["cls"].shape == (144, 4) and predictions.masks["cls"].sum() == 48
    assert predictions.outputs["val"].shape == (144, 2)  # expected values, not bin logits
    scores = score_predictions(TASKS, predictions)
    labelled = predictions.masks["cls"]
    direct = TASKS[1].score(predictions.outputs["cls"][labelled], predictions.targets["cls"][labelled])
    assert scores["cls"] == direct
    empty = Predictions(
        predictions.outputs,
        predictions.targets,
        {**predictions.masks, "attr": predictions.masks["attr"] & False},
    )
    with pytest.warns(UserWarning, match="no labelled sample for task 'attr'"):
        assert "attr" not in score_predictions(TASKS, empty)


def test_predict_shows_a_progress_bar_only_when_given_a_description(data, monkeypatch):
    import mtl_distill.evaluation as evaluation

    _, _, val = data
    bars = []
    real_progress = evaluation.progress

    def recording_progress(iterable, **kwargs):
        bars.append((kwargs["desc"], kwargs["enabled"]))
        return real_progress(iterable, **{**kwargs, "enabled": False})

    monkeypatch.setattr(evaluation, "progress", recording_progress)
    model = toy.make_model()
    quiet = predict(model, TASKS, val, batch_size=50)
    shown = predict(model, TASKS, val, batch_size=50, progress_desc="predict val")
    assert bars == [("", False), ("predict val", True)]
    assert all(np.array_equal(quiet.outputs[name], shown.outputs[name]) for name in quiet.outputs)


def test_predict_gathers_ranks_that_had_no_item_and_rejects_an_empty_dataset(monkeypatch):
    import mtl_distill.evaluation as evaluation

    # 3 items on 4 ranks: rank 3 predicted nothing, so it has no per-task arrays at all
    shares = [
        (np.array([rank]), {kind: {"c": np.full((1, 2), rank)} for kind in ("outputs", "targets", "masks")})
        for rank in range(3)
    ] + [(np.array([], dtype=np.int64), {"outputs": {}, "targets": {}, "masks": {}})]

    def all_gather_object(out: list, obj) -> None:
        out[:] = shares

    monkeypatch.setattr(evaluation.distributed, "world_size", lambda: 4)
    monkeypatch.setattr(evaluation.torch.distributed, "all_gather_object", all_gather_object)
    for rank in (0, 3):
        merged = evaluation._gather_in_dataset_order(shares[rank][1], shares[rank][0], total=3)
        assert merged["outputs"]["c"][:, 0].tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="at least one item"):
        predict(toy.make_model(), TASKS, [])


def test_metrics_logger_sends_each_epoch_to_tensorboard_once(tmp_path, monkeypatch):
    import mtl_distill.logging_utils as logging_utils

    class Recorder:
        def __init__(self) -> None:
            self.scalars = []

        def add_scalar(self, key, value, step):
            self.scalars.append((key, value, step))

        def flush(self) -> None:
            pass

        def close(self) -> None:
            pass

    recorder = Recorder()
    monkeypatch.setattr(logging_utils, "_tensorboard_writer", lambda folder: recorder)
    logger = logging_utils.MetricsLogger(tmp_path)
    logger.write([{"epoch": 0, "train_loss": 2.0}])
    logger.write([{"epoch": 0, "train_loss": 2.0}, {"epoch": 1, "train_loss": 1.0, "val/a/score": 0.5}])
    assert recorder.scalars == [("train_loss", 2.0, 0), ("train_loss", 1.0, 1), ("val/a/score", 0.5, 1)]
    assert (tmp_path / "metrics.csv").read_text().splitlines() == [
        "epoch,train_loss,val/a/score",
        "0,2.0,",
        "1,1.0,0.5",
    ]


def test_a_resumed_distill_starts_students_from_the_first_runs_initial_weights(data, tmp_path):
    train, sampler, val = data
    config = DistillConfig(quiet(1), quiet(0), num_students=1)
    first_model = toy.make_model(seed=1)
    first = distill(first_model, TASKS, train, sampler, val, config, out_dir=tmp_path)
    again = distill(toy.make_model(seed=2), TASKS, train, sampler, val, config, out_dir=tmp_path)
    assert states_equal(again.students[0].state_dict(), first_model.state_dict())
    assert states_equal(again.teacher.model.state_dict(), first.teacher.model.state_dict())


class FrozenNormModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(8).requires_grad_(False)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        return {"cls": self.head(self.norm(x))}


def test_frozen_batchnorm_left_in_train_mode_is_reported(data):
    train, _, _ = data
    sampler = MultiTaskBatchSampler({"cls": range(48, 96)}, batch_size=8, steps_per_epoch=1)
    with pytest.warns(UserWarning, match=r"frozen BatchNorm layers are in train mode.*\['norm'\]"):
        Trainer(FrozenNormModel(), [TASKS[1]], quiet(1)).fit(train, sampler)


def test_distill_uses_a_given_teacher_instead_of_training_one(data):
    train, sampler, val = data
    model = toy.make_model()
    teacher = train_teacher(copy.deepcopy(model), TASKS, train, sampler, val, quiet(1))
    trained = copy.deepcopy(teacher.model.state_dict())
    result = distill(model, TASKS, train, sampler, val, DistillConfig(quiet(5), quiet(0), 1), teacher=teacher)
    assert result.teacher is teacher and states_equal(teacher.model.state_dict(), trained)
    assert states_equal(result.students[0].state_dict(), model.state_dict())  # from the teacher's start


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"temperature": 0.0}, "temperature must be > 0"),
        ({"lam": 1.5}, r"lam must lie in \[0, 1\]"),
        ({"lr": -1e-3}, "lr must be > 0"),
        ({"lr_gamma": 0.0}, "lr_gamma must be > 0"),
        ({"task_weights": {"cls": -1.0}}, r"task_weights\['cls'\] must be >= 0"),
    ],
)
def test_impossible_loss_and_optimiser_settings_are_refused_when_configured(settings, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**settings)
