"""Task types: what a model outputs for a task, how it is supervised and distilled, predicted and scored.

Each task owns its per-sample losses from the paper (Deng, Chen & Shi, FG 2020, section III-B):

========================  ==========================================  ========================================
task                      supervision ``L`` (ground truth)            distillation ``H`` (teacher to student)
========================  ==========================================  ========================================
``MultiLabelTask``        ``BCE(y, sigmoid(s))`` (Eq. 4)              ``BCE(sigmoid(t), sigmoid(s))`` (Eq.10)
``MultiClassTask``        ``CE(onehot(y), softmax(s))`` (Eq. 5)       ``CE(SF(t, T), SF(s, T))`` (Eq. 11)
``BinnedRegressionTask``  ``sum_i CE(onehot(bin(y_i)), SF(s_i, 1))``  ``sum_i CE(SF(t_i, T), SF(s_i, T))``
                          (Eq. 6) + ``sum_i (1 - CCC_i)`` per batch   (Eq. 12)
                          (Eq. 7-9)
``RegressionTask``        ``sum_d (y_d - s_d)^2``                     ``sum_d (t_d - s_d)^2``
========================  ==========================================  ========================================

BCE and CE are the full cross-entropies of Eq. 2-3 (with soft targets they include the target's entropy),
all computed from log-sigmoid / log-softmax so that no ``log(0)`` occurs. The batch losses that combine them
are in :mod:`mtl_distill.losses`.
"""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mtl_distill.metrics import binary_f1, concordance_correlation, macro_f1

__all__ = [
    "BinnedRegressionTask",
    "MultiClassTask",
    "MultiLabelTask",
    "RegressionTask",
    "Task",
    "concordance_loss",
    "task_from_config",
]


class Task(ABC):
    """One output head of a multitask model (an abstract base; use the subclasses below).

    Attributes
    ----------
    name : str
        Key of the task in the model's output dict, the targets dict and the masks dict.
    num_outputs : int
        Number of logits the model outputs for the task per sample.
    uses_temperature : bool
        Whether the distillation loss softens both sides with the temperature ``T`` (and so whether the
        optional ``T^2`` gradient scaling applies to it).
    preferred_soft_labels : {"online", "cached"}
        Where the task's soft labels come from under ``DistillConfig(soft_labels="by_task")`` (the default):
        "cached" (the teacher's outputs on the clean sample, computed once) for the classification tasks,
        "online" (the teacher on the student's augmented batch) for regression, which is what the project's
        studies found best for each kind (``docs/design.md``, section 4.2).
    """

    name: str
    uses_temperature: ClassVar[bool] = False
    preferred_soft_labels: ClassVar[str] = "online"

    @property
    @abstractmethod
    def num_outputs(self) -> int: ...

    # -- prediction ---------------------------------------------------------------------------------------
    @abstractmethod
    def predict(self, logits: Tensor) -> Tensor:
        """Turn logits ``[B, num_outputs]`` into predictions (probabilities or values)."""

    @abstractmethod
    def combine_logits(self, logits: Sequence[Tensor]) -> Tensor:
        """Logits whose :meth:`predict` is the mean of the members' predictions (used by ensembles).

        The result is also a valid teacher output for :func:`mtl_distill.student_loss`.
        """

    @abstractmethod
    def score(self, predictions: np.ndarray, targets: np.ndarray, **kwargs: Any) -> dict[str, float]:
        """Score :meth:`predict` outputs against labelled targets; ``"score"`` is the headline metric."""

    # -- losses (used by mtl_distill.losses) ----------------------------------------------------------------
    @abstractmethod
    def prepare_targets(self, targets: Tensor, mask: Tensor) -> Tensor:
        """Validate the labelled rows of ``targets``; return a copy whose unlabelled rows hold safe values."""

    @abstractmethod
    def supervision_loss(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Per-sample ground-truth loss ``[B]`` from float32 logits and prepared targets."""

    def batch_loss(self, logits: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
        """Ground-truth loss term computed over the batch's labelled samples as a whole (0 by default)."""
        return logits.new_zeros(())

    @abstractmethod
    def distillation_loss(self, student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
        """Per-sample loss ``[B]`` that pulls the student's outputs towards the teacher's."""

    def teacher_confidence(self, teacher_logits: Tensor) -> Tensor:
        """How sure the teacher is of each sample, ``[B]`` in [0, 1]: 1 minus the normalised entropy of its
        distribution (1: one outcome certain; 0: uniform). Tasks without an output distribution (and this
        default) return 1 for every sample. Used by ``student_loss(soft_label_weight="confidence")``."""
        return teacher_logits.new_ones(len(teacher_logits))

    # -- serialisation --------------------------------------------------------------------------------------
    def to_config(self) -> dict[str, Any]:
        """The task as a dict of plain values; :func:`task_from_config` rebuilds it."""
        config = {"type": type(self).__name__}
        for key, value in self.__dict__.items():
            config[key] = list(value) if isinstance(value, tuple) else value
        return config

    # -- shared checks --------------------------------------------------------------------------------------
    def check_logits(self, logits: Tensor, what: str = "logits") -> None:
        """Raise a ValueError unless ``logits`` is a floating tensor of shape ``[B, num_outputs]``."""
        if not isinstance(logits, Tensor):
            raise TypeError(
                f"{what} for task {self.name!r} must be a torch.Tensor, got {type(logits).__name__}"
            )
        if not logits.is_floating_point():
            raise TypeError(f"{what} for task {self.name!r} must be floating point, got {logits.dtype}")
        if logits.ndim != 2 or logits.shape[1] != self.num_outputs:
            raise ValueError(
                f"{what} for task {self.name!r} must have shape [batch, {self.num_outputs}], "
                f"got {list(logits.shape)}"
            )

    def _check_target_shape(self, targets: Tensor, expected: tuple[int, ...]) -> None:
        if tuple(targets.shape) != expected:
            raise ValueError(
                f"targets for task {self.name!r} must have shape {list(expected)}, got {list(targets.shape)}"
            )

    def _raise_at_first(self, bad: Tensor, targets: Tensor, problem: str) -> None:
        """Raise a ValueError naming the first labelled row flagged in ``bad`` (``[B]`` bool)."""
        if bool(bad.any()):
            row = int(bad.nonzero()[0, 0])
            raise ValueError(
                f"targets for task {self.name!r}: {problem} at batch row {row}: {targets[row].tolist()}"
            )

    def _check_scoring_arrays(
        self, predictions: np.ndarray, targets: np.ndarray, width: int, target_shape: str
    ) -> tuple[np.ndarray, np.ndarray]:
        predictions, targets = np.asarray(predictions), np.asarray(targets)
        if predictions.ndim != 2 or predictions.shape[1] != width:
            raise ValueError(
                f"predictions for task {self.name!r} must be [n, {width}], got {list(predictions.shape)}"
            )
        if len(predictions) == 0:
            raise ValueError(f"cannot score task {self.name!r} on zero samples")
        if len(targets) != len(predictions):
            raise ValueError(
                f"task {self.name!r}: {len(predictions)} predictions but {len(targets)} targets "
                f"(targets must have shape {target_shape})"
            )
        return predictions, targets


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError(f"a task name must be a non-empty string, got {name!r}")


def _check_positive(what: str, value: int, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum}, got {value!r}")


def _check_names(what: str, names: Sequence[str] | None, count: int) -> tuple[str, ...] | None:
    if names is None:
        return None
    names = tuple(str(name) for name in names)
    if len(names) != count or len(set(names)) != count:
        raise ValueError(f"{what} must be {count} distinct names, got {list(names)}")
    return names


def _at_least_float32(logits: Tensor) -> Tensor:
    # Half-precision logits (autocast, a float16 cache) are promoted: log-sum-exps need float32 accuracy.
    return logits if logits.dtype in (torch.float32, torch.float64) else logits.float()


def _soft_cross_entropy(target_log_probs: Tensor, student_log_probs: Tensor) -> Tensor:
    """``CE(p, q) = -sum_d p_d log q_d`` summed over the last dimension, from log-probabilities."""
    return -(target_log_probs.exp() * student_log_probs).sum(dim=-1)


def _confidence(log_probs: Tensor) -> Tensor:
    """``1 - H(p) / log(K)`` over the last dimension (K outcomes), from log-probabilities."""
    entropy = _soft_cross_entropy(log_probs, log_probs)
    return (1 - entropy / math.log(log_probs.shape[-1])).clamp(0, 1)


@dataclass(frozen=True)
class MultiLabelTask(Task):
    """Several independent yes/no labels per sample (e.g. facial action units), one logit each.

    Parameters
    ----------
    name : str
        Key of the task in outputs, targets and masks.
    num_labels : int
        Number of labels ``L``; targets are 0/1 floats ``[B, L]`` (soft values in [0, 1] are accepted).
    label_names : sequence of str, optional
        Names used in :meth:`score`'s details (``"f1_<label>"``); default ``"0" .. "L-1"``.

    Example
    -------
    >>> task = MultiLabelTask("au", num_labels=2)
    >>> task.predict(torch.tensor([[0.0, 2.0]], dtype=torch.float64)).round(decimals=3).tolist()
    [[0.5, 0.881]]
    >>> task.score(np.array([[0.9, 0.2], [0.1, 0.7]]), np.array([[1, 0], [0, 1]]))["score"]
    1.0
    """

    preferred_soft_labels: ClassVar[str] = "cached"

    name: str
    num_labels: int
    label_names: tuple[str, ...] | None = field(default=None)

    def __post_init__(self) -> None:
        _check_name(self.name)
        _check_positive("num_labels", self.num_labels)
        object.__setattr__(
            self, "label_names", _check_names("label_names", self.label_names, self.num_labels)
        )

    @property
    def num_outputs(self) -> int:
        return self.num_labels

    def predict(self, logits: Tensor) -> Tensor:
        """Sigmoid probabilities ``[B, L]``."""
        self.check_logits(logits)
        return torch.sigmoid(logits)

    def combine_logits(self, logits: Sequence[Tensor]) -> Tensor:
        # logit(mean_k sigmoid(t_k)), computed as log(mean p) - log(mean (1 - p)) in log space: no overflow.
        stacked = torch.stack([_at_least_float32(member) for member in logits])
        return torch.logsumexp(F.logsigmoid(stacked), dim=0) - torch.logsumexp(F.logsigmoid(-stacked), dim=0)

    def score(
        self, predictions: np.ndarray, targets: np.ndarray, thresholds: float | np.ndarray = 0.5
    ) -> dict[str, float]:
        """Mean F1 over labels (``"score"``), per-label F1 and mean per-label accuracy.

        ``thresholds`` is one decision threshold for every label or one per label (``p >= threshold``).
        """
        predictions, targets = self._check_scoring_arrays(predictions, targets, self.num_labels, "[n, L]")
        if targets.shape != predictions.shape:
            raise ValueError(
                f"targets for task {self.name!r} must have shape {list(predictions.shape)}, "
                f"got {list(targets.shape)}"
            )
        thresholds = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (self.num_labels,))
        decisions = predictions >= thresholds
        truth = targets >= 0.5
        f1 = binary_f1(decisions, truth)
        names = self.label_names or tuple(str(i) for i in range(self.num_labels))
        result = {"score": float(f1.mean()), "accuracy": float((decisions == truth).mean())}
        result.update({f"f1_{label}": float(value) for label, value in zip(names, f1, strict=True)})
        return result

    def prepare_targets(self, targets: Tensor, mask: Tensor) -> Tensor:
        self._check_target_shape(targets, (len(mask), self.num_labels))
        targets = targets.float()
        outside = ~((targets >= 0) & (targets <= 1)).all(dim=1)  # also catches NaN
        self._raise_at_first(outside & mask, targets, "multi-label targets must lie in [0, 1]")
        return torch.where(mask[:, None], targets, torch.zeros_like(targets))

    def supervision_loss(self, logits: Tensor, targets: Tensor) -> Tensor:
        # Eq. 4 with Eq. 2: -sum_d [y log sigmoid(s) + (1 - y) log(1 - sigmoid(s))];
        # log(1 - sigmoid(s)) = logsigmoid(-s) keeps it finite for any logit.
        return -(targets * F.logsigmoid(logits) + (1 - targets) * F.logsigmoid(-logits)).sum(dim=1)

    def distillation_loss(self, student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
        # Eq. 10 has no temperature: the full BCE between sigmoid(t) and sigmoid(s), target entropy included.
        return self.supervision_loss(student_logits, torch.sigmoid(teacher_logits))

    def teacher_confidence(self, teacher_logits: Tensor) -> Tensor:
        # Each label's binary entropy over log 2, averaged over the labels.
        logits = _at_least_float32(teacher_logits)
        entropy = self.supervision_loss(logits, torch.sigmoid(logits)) / self.num_labels
        return (1 - entropy / math.log(2)).clamp(0, 1)


@dataclass(frozen=True)
class MultiClassTask(Task):
    """Exactly one of ``C`` classes per sample (e.g. a facial expression), ``C`` logits.

    Parameters
    ----------
    name : str
        Key of the task in outputs, targets and masks.
    num_classes : int
        Number of classes ``C`` (at least 2); targets are integer class indices ``[B]``.
    class_names : sequence of str, optional
        Names used in :meth:`score`'s details (``"f1_<class>"``); default ``"0" .. "C-1"``.

    Example
    -------
    >>> task = MultiClassTask("expr", num_classes=3)
    >>> task.predict(torch.zeros(1, 3, dtype=torch.float64)).round(decimals=3).tolist()
    [[0.333, 0.333, 0.333]]
    >>> task.score(np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1]]), np.array([0, 1]))["score"]
    1.0
    """

    uses_temperature: ClassVar[bool] = True
    preferred_soft_labels: ClassVar[str] = "cached"

    name: str
    num_classes: int
    class_names: tuple[str, ...] | None = field(default=None)

    def __post_init__(self) -> None:
        _check_name(self.name)
        _check_positive("num_classes", self.num_classes, minimum=2)
        object.__setattr__(
            self, "class_names", _check_names("class_names", self.class_names, self.num_classes)
        )

    @property
    def num_outputs(self) -> int:
        return self.num_classes

    def predict(self, logits: Tensor) -> Tensor:
        """Softmax probabilities ``[B, C]``."""
        self.check_logits(logits)
        return torch.softmax(logits, dim=1)

    def combine_logits(self, logits: Sequence[Tensor]) -> Tensor:
        # log(mean_k softmax(t_k)): softmax of it is the mean of the members' probabilities.
        log_probs = torch.stack([torch.log_softmax(_at_least_float32(member), dim=1) for member in logits])
        return torch.logsumexp(log_probs, dim=0) - math.log(len(logits))

    def score(self, predictions: np.ndarray, targets: np.ndarray) -> dict[str, float]:
        """Macro F1 (``"score"``, over the classes present, as scikit-learn), accuracy and per-class F1."""
        predictions, targets = self._check_scoring_arrays(predictions, targets, self.num_classes, "[n]")
        targets = targets.reshape(-1).astype(np.int64)
        predicted = predictions.argmax(axis=1)
        score, per_class = macro_f1(predicted, targets, self.num_classes)
        names = self.class_names or tuple(str(i) for i in range(self.num_classes))
        result = {"score": score, "accuracy": float((predicted == targets).mean())}
        result.update({f"f1_{label}": float(value) for label, value in zip(names, per_class, strict=True)})
        return result

    def prepare_targets(self, targets: Tensor, mask: Tensor) -> Tensor:
        self._check_target_shape(targets, (len(mask),))
        if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
            raise TypeError(
                f"targets for task {self.name!r} must be integer class indices, got dtype {targets.dtype}"
            )
        targets = targets.long()
        outside = (targets < 0) | (targets >= self.num_classes)
        self._raise_at_first(outside & mask, targets, f"class index outside [0, {self.num_classes - 1}]")
        return torch.where(mask, targets, torch.zeros_like(targets))

    def supervision_loss(self, logits: Tensor, targets: Tensor) -> Tensor:
        # Eq. 5: CE(onehot(y), softmax(s)) = -log softmax(s)[y]
        return -torch.log_softmax(logits, dim=1).gather(1, targets[:, None]).squeeze(1)

    def distillation_loss(self, student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
        # Eq. 11: CE(SF(t, T), SF(s, T))
        return _soft_cross_entropy(
            torch.log_softmax(teacher_logits / temperature, dim=1),
            torch.log_softmax(student_logits / temperature, dim=1),
        )

    def teacher_confidence(self, teacher_logits: Tensor) -> Tensor:
        return _confidence(torch.log_softmax(_at_least_float32(teacher_logits), dim=1))


@dataclass(frozen=True)
class BinnedRegressionTask(Task):
    """Continuous targets in ``[low, high]`` learned as classification over bins (e.g. valence and arousal).

    Each of the ``D`` dimensions gets ``num_bins`` logits, dimension-major: logits ``[:, :num_bins]`` are
    dimension 0, the next ``num_bins`` dimension 1, and so on. Bin edges are
    ``linspace(low, high, num_bins + 1)``; the prediction is ``centers . softmax(logits_i)`` (Eq. 7) where
    the centers are the bins' midpoints.

    Parameters
    ----------
    name : str
        Key of the task in outputs, targets and masks.
    num_dims : int
        Number of continuous dimensions ``D``; targets are floats ``[B, D]`` (``[B]`` when ``D == 1``).
    num_bins : int, default 20
        Bins per dimension.
    low, high : float, default -1.0, 1.0
        Range of the targets.
    out_of_range : {"clip", "error"}, default "clip"
        What a labelled target outside ``[low, high]`` does in the losses: clipped into the range, or a
        ValueError.
    dim_names : sequence of str, optional
        Names used in :meth:`score`'s details (``"ccc_<dim>"``); default ``"0" .. "D-1"``.

    Example
    -------
    >>> task = BinnedRegressionTask("va", num_dims=2, num_bins=4)
    >>> task.centers.tolist()
    [-0.75, -0.25, 0.25, 0.75]
    >>> task.predict(torch.tensor([[0.0, 0.0, 0.0, 0.0, 9.0, -9.0, -9.0, -9.0]])).round(decimals=3).tolist()
    [[0.0, -0.75]]
    """

    uses_temperature: ClassVar[bool] = True

    name: str
    num_dims: int
    num_bins: int = 20
    low: float = -1.0
    high: float = 1.0
    out_of_range: str = "clip"
    dim_names: tuple[str, ...] | None = field(default=None)

    def __post_init__(self) -> None:
        _check_name(self.name)
        _check_positive("num_dims", self.num_dims)
        _check_positive("num_bins", self.num_bins, minimum=2)
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise ValueError(f"need finite low < high, got low={self.low!r}, high={self.high!r}")
        if self.out_of_range not in ("clip", "error"):
            raise ValueError(f"out_of_range must be 'clip' or 'error', got {self.out_of_range!r}")
        object.__setattr__(self, "low", float(self.low))
        object.__setattr__(self, "high", float(self.high))
        object.__setattr__(self, "dim_names", _check_names("dim_names", self.dim_names, self.num_dims))

    @property
    def num_outputs(self) -> int:
        return self.num_dims * self.num_bins

    @property
    def edges(self) -> Tensor:
        """Bin edges ``[num_bins + 1]`` (float64)."""
        return _bin_edges(self.low, self.high, self.num_bins)

    @property
    def centers(self) -> Tensor:
        """Bin midpoints ``[num_bins]`` (float64)."""
        edges = self.edges
        return (edges[:-1] + edges[1:]) / 2

    def bin_index(self, values: Tensor) -> Tensor:
        """Bin of each value (``edges[k] <= v < edges[k + 1]``; the top edge belongs to the last bin)."""
        inner_edges, _ = _bins_on(self.low, self.high, self.num_bins, values.device, values.dtype)
        return torch.bucketize(values.clamp(self.low, self.high), inner_edges, right=True)

    def _per_dim(self, logits: Tensor) -> Tensor:
        return logits.reshape(len(logits), self.num_dims, self.num_bins)

    def _expected_values(self, logits: Tensor) -> Tensor:
        _, centers = _bins_on(self.low, self.high, self.num_bins, logits.device, logits.dtype)
        return torch.softmax(self._per_dim(logits), dim=2) @ centers

    def predict(self, logits: Tensor) -> Tensor:
        """Expected values ``[B, D]`` over the bin centers (Eq. 7)."""
        self.check_logits(logits)
        return self._expected_values(logits)

    def combine_logits(self, logits: Sequence[Tensor]) -> Tensor:
        # Per dimension, log of the mean bin distribution; its expected value is the mean of the members'.
        log_probs = torch.stack(
            [torch.log_softmax(self._per_dim(_at_least_float32(member)), dim=2) for member in logits]
        )
        combined = torch.logsumexp(log_probs, dim=0) - math.log(len(logits))
        return combined.reshape(len(combined), self.num_outputs)

    def score(self, predictions: np.ndarray, targets: np.ndarray) -> dict[str, float]:
        """Mean CCC over dimensions (``"score"``), per-dimension CCC and mean squared error."""
        return _score_regression(self, predictions, targets, self.num_dims, self.dim_names)

    def prepare_targets(self, targets: Tensor, mask: Tensor) -> Tensor:
        targets = _check_continuous_targets(self, targets, mask, self.num_dims)
        if self.out_of_range == "error":
            outside = ((targets < self.low) | (targets > self.high)).any(dim=1)
            self._raise_at_first(
                outside & mask, targets, f"value outside [low, high] = [{self.low}, {self.high}]"
            )
        clipped = targets.clamp(self.low, self.high)
        return torch.where(mask[:, None], clipped, torch.full_like(clipped, self.low))

    def supervision_loss(self, logits: Tensor, targets: Tensor) -> Tensor:
        # Eq. 6: sum_i CE(onehot(bin(y_i)), softmax(s_i)); the batch's CCC term is in batch_loss.
        log_probs = torch.log_softmax(self._per_dim(logits), dim=2)
        bins = self.bin_index(targets)
        return -log_probs.gather(2, bins[:, :, None]).squeeze(2).sum(dim=1)

    def batch_loss(self, logits: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
        # Eq. 7-9: sum_i (1 - CCC_i) over the labelled samples (Eq. 9 gives each of the B labelled samples
        # 1/B of it, so the batch sum holds it once). Weighted statistics instead of indexing keep the
        # computation free of host synchronisation; with < 2 labelled samples the term is 0.
        return concordance_loss(self._expected_values(logits), targets, mask)

    def distillation_loss(self, student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
        # Eq. 12: sum_i CE(SF(t_i, T), SF(s_i, T))
        return _soft_cross_entropy(
            torch.log_softmax(self._per_dim(teacher_logits) / temperature, dim=2),
            torch.log_softmax(self._per_dim(student_logits) / temperature, dim=2),
        ).sum(dim=1)

    def teacher_confidence(self, teacher_logits: Tensor) -> Tensor:
        # Per dimension over its bins, averaged over the dimensions.
        log_probs = torch.log_softmax(self._per_dim(_at_least_float32(teacher_logits)), dim=2)
        return _confidence(log_probs).mean(dim=1)


@dataclass(frozen=True)
class RegressionTask(Task):
    """Unbounded continuous targets ``[B, D]`` predicted directly, one output per dimension.

    Supervision is the squared error summed over dimensions; distillation the squared error to the
    teacher's outputs. Scored by the mean CCC.

    Parameters
    ----------
    name : str
        Key of the task in outputs, targets and masks.
    num_dims : int
        Number of dimensions ``D``; targets are floats ``[B, D]`` (``[B]`` when ``D == 1``).
    dim_names : sequence of str, optional
        Names used in :meth:`score`'s details; default ``"0" .. "D-1"``.

    Example
    -------
    >>> task = RegressionTask("age", num_dims=1)
    >>> task.score(np.array([[1.0], [2.0], [3.0]]), np.array([1.0, 2.0, 3.0]))["score"]
    1.0
    """

    name: str
    num_dims: int
    dim_names: tuple[str, ...] | None = field(default=None)

    def __post_init__(self) -> None:
        _check_name(self.name)
        _check_positive("num_dims", self.num_dims)
        object.__setattr__(self, "dim_names", _check_names("dim_names", self.dim_names, self.num_dims))

    @property
    def num_outputs(self) -> int:
        return self.num_dims

    def predict(self, logits: Tensor) -> Tensor:
        """The outputs themselves ``[B, D]``."""
        self.check_logits(logits)
        return logits

    def combine_logits(self, logits: Sequence[Tensor]) -> Tensor:
        return torch.stack([_at_least_float32(member) for member in logits]).mean(dim=0)

    def score(self, predictions: np.ndarray, targets: np.ndarray) -> dict[str, float]:
        """Mean CCC over dimensions (``"score"``), per-dimension CCC and mean squared error."""
        return _score_regression(self, predictions, targets, self.num_dims, self.dim_names)

    def prepare_targets(self, targets: Tensor, mask: Tensor) -> Tensor:
        targets = _check_continuous_targets(self, targets, mask, self.num_dims)
        return torch.where(mask[:, None], targets, torch.zeros_like(targets))

    def supervision_loss(self, logits: Tensor, targets: Tensor) -> Tensor:
        return ((logits - targets) ** 2).sum(dim=1)

    def distillation_loss(self, student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
        return ((student_logits - teacher_logits) ** 2).sum(dim=1)


def _bin_edges(low: float, high: float, num_bins: int) -> Tensor:
    return torch.linspace(low, high, num_bins + 1, dtype=torch.float64)


@functools.lru_cache(maxsize=64)
def _bins_on(
    low: float, high: float, num_bins: int, device: torch.device, dtype: torch.dtype
) -> tuple[Tensor, Tensor]:
    """Inner bin edges and bin centers on ``device`` in ``dtype``, built once (read-only; never modify them).

    The losses and predictions need them every step: copying them from the host each time would be a
    host-to-device transfer, which synchronises a GPU stream, per batch.
    """
    with torch.inference_mode(False):  # cached tensors must stay usable by autograd after an inference call
        edges = _bin_edges(low, high, num_bins)
        centers = (edges[:-1] + edges[1:]) / 2
        return edges[1:-1].to(device=device, dtype=dtype), centers.to(device=device, dtype=dtype)


def _check_continuous_targets(task: Task, targets: Tensor, mask: Tensor, num_dims: int) -> Tensor:
    """Float32 ``[B, D]`` view of continuous targets (``[B]`` accepted for D = 1), finite where labelled."""
    if num_dims == 1 and targets.ndim == 1:
        targets = targets[:, None]
    task._check_target_shape(targets, (len(mask), num_dims))
    targets = targets.float()
    not_finite = ~torch.isfinite(targets).all(dim=1)
    task._raise_at_first(not_finite & mask, targets, "targets must be finite")
    return targets


def concordance_loss(predictions: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
    """``sum_i (1 - CCC_i)`` over the columns of ``[B, D]`` tensors, using only the rows where ``mask``.

    Population statistics (Eq. 8). Differentiable; 0 when fewer than 2 rows are labelled; a column whose
    denominator is 0 (targets and predictions constant and equal) has CCC 0.

    Example
    -------
    >>> y = torch.tensor([[0.0], [0.5], [1.0]])
    >>> round(float(concordance_loss(y / 2, y, torch.tensor([True, True, True]))), 3)
    0.385
    """
    weights = mask.to(predictions.dtype)[:, None]
    count = weights.sum()
    safe_count = count.clamp_min(1)
    mean_p = (weights * predictions).sum(dim=0) / safe_count
    mean_y = (weights * targets).sum(dim=0) / safe_count
    centred_p, centred_y = predictions - mean_p, targets - mean_y
    covariance = (weights * centred_p * centred_y).sum(dim=0) / safe_count
    var_p = (weights * centred_p**2).sum(dim=0) / safe_count
    var_y = (weights * centred_y**2).sum(dim=0) / safe_count
    denominator = var_p + var_y + (mean_p - mean_y) ** 2
    ccc = 2 * covariance / denominator.clamp_min(torch.finfo(predictions.dtype).tiny)
    return torch.where(count >= 2, (1 - ccc).sum(), torch.zeros_like(count))


def _score_regression(
    task: Task, predictions: np.ndarray, targets: np.ndarray, num_dims: int, dim_names: tuple[str, ...] | None
) -> dict[str, float]:
    predictions, targets = task._check_scoring_arrays(predictions, targets, num_dims, "[n, D]")
    given_shape = list(targets.shape)
    targets = targets.reshape(len(targets), -1).astype(np.float64)
    if targets.shape != predictions.shape:
        raise ValueError(
            f"targets for task {task.name!r} must have shape {list(predictions.shape)}, got {given_shape}"
        )
    ccc = concordance_correlation(predictions, targets)
    names = dim_names or tuple(str(i) for i in range(num_dims))
    result = {"score": float(ccc.mean()), "mse": float(((predictions - targets) ** 2).mean())}
    result.update({f"ccc_{dim}": float(value) for dim, value in zip(names, ccc, strict=True)})
    return result


_TASK_TYPES: dict[str, type[Task]] = {
    cls.__name__: cls for cls in (MultiLabelTask, MultiClassTask, BinnedRegressionTask, RegressionTask)
}


def task_from_config(config: dict[str, Any]) -> Task:
    """Rebuild a task from :meth:`Task.to_config` output.

    Example
    -------
    >>> task_from_config(MultiClassTask("expr", 7).to_config())
    MultiClassTask(name='expr', num_classes=7, class_names=None)
    """
    config = dict(config)
    type_name = config.pop("type", None)
    if type_name not in _TASK_TYPES:
        raise ValueError(f"unknown task type {type_name!r}; expected one of {sorted(_TASK_TYPES)}")
    return _TASK_TYPES[type_name](**config)
