"""Task types: construction, bins, prediction, ensembling of logits, scoring and serialisation."""

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from mtl_distill import (
    BinnedRegressionTask,
    MultiClassTask,
    MultiLabelTask,
    RegressionTask,
    task_from_config,
)
from mtl_distill import tasks as mtl_tasks
from mtl_distill.metrics import concordance_correlation
from mtl_distill.tasks import concordance_loss

torch.set_num_threads(1)

ALL_TASKS = [
    MultiLabelTask("au", 3, label_names=["AU1", "AU2", "AU4"]),
    MultiClassTask("expr", 4),
    BinnedRegressionTask("va", num_dims=2, num_bins=5),
    RegressionTask("age", num_dims=1),
]


def test_num_outputs():
    assert [task.num_outputs for task in ALL_TASKS] == [3, 4, 10, 1]
    assert BinnedRegressionTask("va", num_dims=2).num_outputs == 40  # the paper's 2 x 20 bins


def test_bins_edges_and_centers():
    task = BinnedRegressionTask("va", num_dims=1, num_bins=4, low=0.0, high=2.0)
    assert task.edges.tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert task.centers.tolist() == [0.25, 0.75, 1.25, 1.75]
    values = torch.tensor([0.0, 0.49, 0.5, 1.0, 1.99, 2.0, -5.0, 9.0])
    assert task.bin_index(values).tolist() == [0, 0, 1, 2, 3, 3, 0, 3]


def test_bin_constants_are_built_once_per_device_and_dtype_and_survive_inference_mode():
    task = BinnedRegressionTask("va", num_dims=1, num_bins=4, low=0.0, high=2.0)
    mtl_tasks._bins_on.cache_clear()  # other tests may have built these constants already
    # The first use is a prediction: the constants it caches must not be inference tensors.
    with torch.inference_mode():
        task.predict(torch.zeros(2, 4))
    logits = torch.zeros(3, 4, requires_grad=True)
    task.batch_loss(logits, torch.tensor([[0.1], [0.9], [1.7]]), torch.ones(3, dtype=torch.bool)).backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    cpu = torch.device("cpu")
    first, again = (mtl_tasks._bins_on(0.0, 2.0, 4, cpu, torch.float32) for _ in range(2))
    assert first[0] is again[0] and first[1] is again[1]
    assert first[0].tolist() == task.edges[1:-1].tolist() and first[1].tolist() == task.centers.tolist()


def test_binned_prediction_is_the_expected_value_over_centers_dimension_major():
    task = BinnedRegressionTask("va", num_dims=2, num_bins=5)
    logits = torch.randn(3, 10, dtype=torch.float64)
    centers = np.array([-0.8, -0.4, 0.0, 0.4, 0.8])
    for dim in range(2):
        block = logits[:, 5 * dim : 5 * dim + 5].numpy()
        probabilities = np.exp(block) / np.exp(block).sum(axis=1, keepdims=True)
        np.testing.assert_allclose(task.predict(logits)[:, dim].numpy(), probabilities @ centers, rtol=1e-12)


def test_predict_multilabel_multiclass_regression():
    logits = torch.tensor([[0.0, 1.0, -1.0, 2.0]], dtype=torch.float64)
    np.testing.assert_allclose(
        ALL_TASKS[0].predict(logits[:, :3]).numpy(), 1 / (1 + np.exp(-logits[:, :3].numpy()))
    )
    np.testing.assert_allclose(ALL_TASKS[1].predict(logits).sum().item(), 1.0)
    assert torch.equal(ALL_TASKS[3].predict(logits[:, :1]), logits[:, :1])
    with pytest.raises(
        ValueError, match=r"logits for task 'expr' must have shape \[batch, 4\], got \[1, 3\]"
    ):
        ALL_TASKS[1].predict(logits[:, :3])


@pytest.mark.parametrize("task", ALL_TASKS, ids=lambda task: task.name)
def test_combined_logits_predict_the_mean_of_the_members_predictions(task):
    generator = torch.Generator().manual_seed(0)
    members = [
        torch.randn(5, task.num_outputs, generator=generator, dtype=torch.float64) * 3 for _ in range(4)
    ]
    expected = torch.stack([task.predict(member) for member in members]).mean(dim=0)
    torch.testing.assert_close(task.predict(task.combine_logits(members)), expected)


def test_combined_logits_stay_finite_for_saturated_members():
    task = ALL_TASKS[0]
    members = [torch.full((1, 3), 200.0), torch.full((1, 3), 300.0)]
    combined = task.combine_logits(members)
    assert torch.isfinite(combined).all()
    assert task.predict(combined).tolist() == [[1.0, 1.0, 1.0]]


def test_multilabel_score_matches_sklearn_and_uses_thresholds():
    rng = np.random.default_rng(0)
    probabilities = rng.random((50, 3))
    targets = (rng.random((50, 3)) < 0.4).astype(np.float32)
    result = ALL_TASKS[0].score(probabilities, targets)
    expected = f1_score(targets, probabilities >= 0.5, average=None, zero_division=0)
    assert result["score"] == pytest.approx(expected.mean())
    assert [result[f"f1_AU{k}"] for k in (1, 2, 4)] == pytest.approx(expected)
    assert result["accuracy"] == pytest.approx(((probabilities >= 0.5) == targets).mean())
    thresholds = np.array([0.2, 0.5, 0.9])
    tuned = ALL_TASKS[0].score(probabilities, targets, thresholds=thresholds)
    expected = f1_score(targets, probabilities >= thresholds, average=None, zero_division=0)
    assert tuned["score"] == pytest.approx(expected.mean())


def test_multiclass_score_matches_sklearn_macro_f1():
    rng = np.random.default_rng(1)
    probabilities = rng.random((40, 4))
    targets = rng.integers(0, 3, 40)  # class 3 never occurs in the targets
    result = ALL_TASKS[1].score(probabilities, targets)
    predicted = probabilities.argmax(axis=1)
    assert result["score"] == pytest.approx(f1_score(targets, predicted, average="macro"))
    assert result["accuracy"] == pytest.approx((predicted == targets).mean())
    per_class = f1_score(targets, predicted, labels=[0, 1, 2, 3], average=None, zero_division=0)
    assert [result[f"f1_{k}"] for k in range(4)] == pytest.approx(per_class)


def test_regression_scores_are_ccc():
    y = np.array([[0.1, -0.5], [0.4, 0.0], [-0.3, 0.9], [0.8, 0.2]])
    p = np.array([[0.0, -0.4], [0.5, 0.1], [-0.2, 0.6], [0.6, 0.0]])
    # CCC by hand for dimension 0: means .25 / .225, population variances and covariance.
    cov = np.mean((y[:, 0] - 0.25) * (p[:, 0] - 0.225))
    ccc0 = 2 * cov / (np.var(y[:, 0]) + np.var(p[:, 0]) + 0.025**2)
    result = ALL_TASKS[2].score(p, y)
    assert result["ccc_0"] == pytest.approx(ccc0)
    assert result["score"] == pytest.approx(concordance_correlation(p, y).mean())
    assert result["mse"] == pytest.approx(np.mean((p - y) ** 2))
    assert RegressionTask("age", 1).score(p[:, :1], y[:, 0])["score"] == pytest.approx(ccc0)


def test_concordance_loss_matches_numpy_and_skips_small_batches():
    y = torch.tensor([[0.1, -0.5], [0.4, 0.0], [-0.3, 0.9], [0.8, 0.2]], dtype=torch.float64)
    p = torch.tensor([[0.0, -0.4], [0.5, 0.1], [-0.2, 0.6], [0.6, 0.0]], dtype=torch.float64)
    mask = torch.tensor([True, True, False, True])
    expected = (1 - concordance_correlation(p[mask].numpy(), y[mask].numpy())).sum()
    assert float(concordance_loss(p, y, mask)) == pytest.approx(expected)
    assert float(concordance_loss(p, y, torch.tensor([False, True, False, False]))) == 0.0
    assert float(concordance_loss(p, y, torch.zeros(4, dtype=torch.bool))) == 0.0
    constant = torch.zeros(4, 2, dtype=torch.float64)
    assert float(concordance_loss(constant, constant, mask)) == 2.0  # undefined CCC counts as 0


def test_score_bad_input():
    with pytest.raises(ValueError, match="cannot score task 'expr' on zero samples"):
        ALL_TASKS[1].score(np.zeros((0, 4)), np.zeros(0))
    with pytest.raises(ValueError, match=r"predictions for task 'au' must be \[n, 3\], got \[4, 2\]"):
        ALL_TASKS[0].score(np.zeros((4, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="task 'va': 4 predictions but 3 targets"):
        ALL_TASKS[2].score(np.zeros((4, 2)), np.zeros((3, 2)))
    # a wrong target width names the shape given
    with pytest.raises(ValueError, match=r"targets for task 'au' must have shape \[4, 3\], got \[4, 2\]"):
        ALL_TASKS[0].score(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"targets for task 'va' must have shape \[4, 2\], got \[4, 3\]"):
        ALL_TASKS[2].score(np.zeros((4, 2)), np.zeros((4, 3)))


@pytest.mark.parametrize("task", ALL_TASKS, ids=lambda task: task.name)
def test_config_round_trip(task):
    config = task.to_config()
    assert all(isinstance(value, str | int | float | list | type(None)) for value in config.values())
    assert task_from_config(config) == task


def test_constructor_errors():
    with pytest.raises(ValueError, match="task name must be a non-empty string"):
        MultiLabelTask("", 3)
    with pytest.raises(ValueError, match="num_labels must be an integer >= 1"):
        MultiLabelTask("au", 0)
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
        MultiClassTask("expr", 1)
    with pytest.raises(ValueError, match="num_bins must be an integer >= 2"):
        BinnedRegressionTask("va", 2, num_bins=1)
    with pytest.raises(ValueError, match="need finite low < high"):
        BinnedRegressionTask("va", 2, low=1.0, high=-1.0)
    with pytest.raises(ValueError, match="out_of_range must be 'clip' or 'error'"):
        BinnedRegressionTask("va", 2, out_of_range="wrap")
    with pytest.raises(ValueError, match="label_names must be 3 distinct names"):
        MultiLabelTask("au", 3, label_names=["a", "a", "b"])
    with pytest.raises(ValueError, match="unknown task type 'Nope'"):
        task_from_config({"type": "Nope", "name": "x"})
