"""Ensemble averaging, per-label threshold tuning, saving and loading."""

import numpy as np
import pytest
import torch
from torch import nn

from mtl_distill import (
    BinnedRegressionTask,
    Ensemble,
    MultiClassTask,
    MultiLabelTask,
    average_predictions,
    student_loss,
    tune_thresholds,
)
from mtl_distill.metrics import binary_f1

torch.set_num_threads(1)

TASKS = [MultiLabelTask("attr", 3), MultiClassTask("digit", 4), BinnedRegressionTask("ink", 1, num_bins=6)]


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(5, 8)
        self.heads = nn.ModuleDict({task.name: nn.Linear(8, task.num_outputs) for task in TASKS})

    def forward(self, x):
        features = torch.relu(self.body(x))
        return {name: head(features) for name, head in self.heads.items()}


def make_members(count=3):
    torch.manual_seed(0)
    return [Net() for _ in range(count)]


def make_items(count=40, seed=0):
    generator = torch.Generator().manual_seed(seed)
    items = []
    for index in range(count):
        x = torch.randn(5, generator=generator)
        targets = {
            "attr": (x[:3] > 0).float(),
            "digit": torch.tensor(index % 4),
            "ink": x[3:4].clamp(-1, 1),
        }
        masks = {
            "attr": torch.tensor(index % 3 != 2),
            "digit": torch.tensor(True),
            "ink": torch.tensor(False),
        }
        items.append((x, targets, masks))
    return items


def brute_force_best_f1(probabilities, targets, thresholds):
    scores = [binary_f1(probabilities >= threshold, targets) for threshold in thresholds]
    return np.max(scores, axis=0)


def test_tune_thresholds_finds_the_exact_optimum():
    rng = np.random.default_rng(0)
    probabilities = rng.random((200, 4)).round(2)  # rounding makes ties
    targets = (rng.random((200, 4)) < probabilities * 0.8).astype(int)
    thresholds = tune_thresholds(probabilities, targets)
    achieved = binary_f1(probabilities >= thresholds, targets)
    best = brute_force_best_f1(probabilities, targets, np.unique(probabilities))
    np.testing.assert_allclose(achieved, best)
    assert (achieved >= binary_f1(probabilities >= 0.5, targets)).all()


def test_tune_thresholds_over_candidates():
    rng = np.random.default_rng(1)
    probabilities = rng.random((150, 3))
    targets = (rng.random((150, 3)) < probabilities).astype(int)
    grid = np.linspace(0.05, 0.95, 19)
    thresholds = tune_thresholds(probabilities, targets, candidates=grid)
    assert np.isin(thresholds, grid).all()
    np.testing.assert_allclose(
        binary_f1(probabilities >= thresholds, targets), brute_force_best_f1(probabilities, targets, grid)
    )


def test_tune_thresholds_edge_cases():
    p = np.array([[0.9, 0.8], [0.7, 0.6], [0.4, 0.2]])
    # Label 0: all positive, the best cut takes everyone -> threshold is the lowest probability.
    # Label 1: no positive -> the default 0.5.
    assert tune_thresholds(p, np.array([[1, 0], [1, 0], [1, 0]])).tolist() == [0.4, 0.5]
    # Ties in F1 go to the highest threshold: cut after 0.9 or after 0.7 both give F1 = 2/3 here.
    assert tune_thresholds(p[:, :1], np.array([[1], [0], [0]])).tolist() == [0.8]


def test_tune_thresholds_bad_input():
    with pytest.raises(ValueError, match=r"must both be \[n, L\]"):
        tune_thresholds(np.zeros((3, 2)), np.zeros((3, 1)))
    with pytest.raises(ValueError, match="zero samples"):
        tune_thresholds(np.zeros((0, 2)), np.zeros((0, 2)))
    with pytest.raises(ValueError, match="finite"):
        tune_thresholds(np.full((2, 1), np.nan), np.zeros((2, 1)))
    with pytest.raises(ValueError, match="candidates must be a non-empty 1-D array"):
        tune_thresholds(np.zeros((2, 1)), np.zeros((2, 1)), candidates=np.array([]))
    with pytest.raises(ValueError, match=r"1-D array of finite thresholds, got shape \[2, 1\]"):
        tune_thresholds(np.zeros((2, 1)), np.zeros((2, 1)), candidates=np.array([[0.3], [0.6]]))
    with pytest.raises(ValueError, match="with 1 non-finite value"):
        tune_thresholds(np.zeros((2, 1)), np.zeros((2, 1)), candidates=np.array([0.3, np.nan]))


def test_average_predictions():
    averaged = average_predictions([{"a": np.array([1.0, 2.0])}, {"a": np.array([3.0, 6.0])}])
    assert averaged["a"].tolist() == [2.0, 4.0]
    with pytest.raises(ValueError, match="at least one model"):
        average_predictions([])
    with pytest.raises(ValueError, match=r"model 1 predicts tasks \['b'\]"):
        average_predictions([{"a": np.zeros(2)}, {"b": np.zeros(2)}])
    with pytest.raises(ValueError, match="different shapes"):
        average_predictions([{"a": np.zeros(2)}, {"a": np.zeros(3)}])


def test_ensemble_predicts_the_mean_of_its_members():
    members = make_members()
    ensemble = Ensemble(members, TASKS)
    x = torch.randn(7, 5)
    predicted = ensemble.predict(x)
    for task in TASKS:
        expected = torch.stack([task.predict(member(x)[task.name]) for member in members]).mean(dim=0)
        torch.testing.assert_close(predicted[task.name], expected)
    decisions = ensemble.decide(predicted)
    assert decisions["attr"].dtype == torch.bool
    assert decisions["digit"].tolist() == predicted["digit"].argmax(dim=1).tolist()
    assert torch.equal(decisions["ink"], predicted["ink"])


def test_ensemble_teaches_through_student_loss():
    ensemble = Ensemble(make_members(), TASKS)
    x = torch.randn(4, 5)
    student = Net()
    targets = {"attr": torch.zeros(4, 3), "digit": torch.zeros(4, dtype=torch.long), "ink": torch.zeros(4, 1)}
    masks = {name: torch.zeros(4, dtype=torch.bool) for name in targets}
    loss = student_loss(TASKS, student(x), ensemble(x), targets, masks)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(parameter.grad is None for parameter in ensemble.parameters())


def test_tune_thresholds_on_a_dataset_and_evaluate():
    ensemble = Ensemble(make_members(), TASKS)
    items = make_items()
    with pytest.warns(UserWarning, match="no labelled sample for task 'ink'"):
        untuned = ensemble.evaluate(items)
    tuned = ensemble.tune_thresholds(items, batch_size=16)
    assert set(tuned) == {"attr"} and tuned["attr"].shape == (3,)
    assert ensemble.thresholds["attr"].tolist() == tuned["attr"].tolist()
    with pytest.warns(UserWarning, match="no labelled sample for task 'ink'"):
        scores = ensemble.evaluate(items)
    assert scores["attr"]["score"] >= untuned["attr"]["score"]
    assert set(scores) == {"attr", "digit"}  # "ink" has no labelled sample: not scored
    assert ensemble.score_kwargs()["attr"]["thresholds"] is ensemble.thresholds["attr"]


def test_save_and_load_round_trip(tmp_path):
    ensemble = Ensemble(make_members(), TASKS, thresholds={"attr": [0.2, 0.5, 0.7]})
    path = ensemble.save(tmp_path / "sub" / "ensemble.pt")
    assert [entry.name for entry in path.parent.iterdir()] == ["ensemble.pt"]  # no temporary file left
    loaded = Ensemble.load(path, Net)
    assert loaded.tasks == TASKS
    assert loaded.thresholds["attr"].tolist() == [0.2, 0.5, 0.7]
    x = torch.randn(6, 5)
    for name, values in ensemble.predict(x).items():
        assert torch.equal(loaded.predict(x)[name], values)


def test_load_errors(tmp_path):
    path = Ensemble(make_members(2), TASKS).save(tmp_path / "ensemble.pt")

    class Other(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Linear(5, 9)

    with pytest.raises(ValueError, match="member 0 does not fit model_factory"):
        Ensemble.load(path, Other)
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="is not an Ensemble file"):
        Ensemble.load(tmp_path / "other.pt", Net)
    with pytest.raises(FileNotFoundError):
        Ensemble.load(tmp_path / "missing.pt", Net)


def test_threshold_errors():
    with pytest.raises(ValueError, match="'digit', which is not a multi-label task"):
        Ensemble(make_members(1), TASKS, thresholds={"digit": [0.5]})
    with pytest.raises(ValueError, match=r"thresholds\['attr'\] must be 3 values in \[0, 1\]"):
        Ensemble(make_members(1), TASKS, thresholds={"attr": [0.5, 0.5]})
    with pytest.raises(ValueError, match="at least one member"):
        Ensemble([], TASKS)


def test_metadata_is_saved_and_must_be_plain(tmp_path):
    metadata = {"architecture": {"width": 5, "scale": 0.5}, "trained_on": ["a", "b"], "note": None}
    path = Ensemble(make_members(1), TASKS, metadata=metadata).save(tmp_path / "ensemble.pt")
    assert Ensemble.load(path, Net).metadata == metadata
    state = torch.load(path, weights_only=True)
    assert Ensemble.from_saved(state, Net, source=path).metadata == metadata
    del state["metadata"]  # a file from before metadata was saved
    assert Ensemble.from_saved(state, Net).metadata == {}
    del state["members"]
    with pytest.raises(ValueError, match=r"ensemble.pt: damaged Ensemble file, no members"):
        Ensemble.from_saved(state, Net, source=path)
    for value, where in ((np.float64(0.5), r"metadata\['x'\] is a float64"), ({1: 2}, "keys must be str")):
        with pytest.raises(ValueError, match=where):
            Ensemble(make_members(1), TASKS, metadata={"x": value}).save(tmp_path / "bad.pt")
    assert not (tmp_path / "bad.pt").exists()
