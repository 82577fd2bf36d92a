"""The student ensemble: averaged predictions, per-label decision thresholds, saving and loading.

* :func:`average_predictions` averages ``Task.predict`` outputs that were collected model by model.
* :func:`tune_thresholds` picks, per label, the decision threshold that maximises F1 on validation data.
* :class:`Ensemble` is a model (``inputs -> {task: logits}``) whose predictions are the mean of its members'
  (sigmoid / softmax probabilities, expected values), with tuned multi-label thresholds, written to and read
  from one checkpoint file, with any plain-valued ``metadata`` the application keeps beside them (what the
  members' architecture is, what they were trained on). Being an
  :class:`~mtl_distill.soft_labels.EnsembleTeacher`, it can also teach the next generation of students.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from mtl_distill.checkpoint import load_checkpoint, save_checkpoint
from mtl_distill.evaluation import Predictions, predict, score_predictions
from mtl_distill.soft_labels import EnsembleTeacher
from mtl_distill.tasks import MultiClassTask, MultiLabelTask, Task, task_from_config

__all__ = ["Ensemble", "average_predictions", "tune_thresholds"]

_FORMAT = "mtl_distill.Ensemble"
_FORMAT_VERSION = 1


def average_predictions(predictions: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Mean over models of per-task predictions (``Task.predict`` outputs on the same samples).

    Parameters
    ----------
    predictions : sequence of dict of str to array
        One dict per model, e.g. ``evaluation.predict(model, tasks, data).outputs``; same tasks and shapes.

    Example
    -------
    >>> average_predictions([{"au": np.array([[0.25, 0.5]])}, {"au": np.array([[0.75, 1.0]])}])["au"].tolist()
    [[0.5, 0.75]]
    """
    if not predictions:
        raise ValueError("average_predictions needs the predictions of at least one model")
    names = set(predictions[0])
    for index, member in enumerate(predictions):
        if set(member) != names:
            raise ValueError(
                f"model {index} predicts tasks {sorted(member)}, model 0 predicts {sorted(names)}"
            )
    averaged = {}
    for name in predictions[0]:
        arrays = [np.asarray(member[name], dtype=np.float64) for member in predictions]
        shapes = {array.shape for array in arrays}
        if len(shapes) != 1:
            raise ValueError(f"task {name!r}: the models' predictions have different shapes {sorted(shapes)}")
        averaged[name] = np.mean(arrays, axis=0)
    return averaged


def tune_thresholds(
    probabilities: np.ndarray, targets: np.ndarray, candidates: np.ndarray | None = None
) -> np.ndarray:
    """Per-label decision thresholds that maximise F1 (decision: ``probability >= threshold``).

    By default every cut between two distinct validation probabilities is tried (the exact optimum), all at
    once from one sort per label and cumulative counts; the threshold returned lies halfway between the two
    probabilities around the best cut. With ``candidates`` only those thresholds are tried. Ties go to the
    highest threshold. A label without any positive target keeps the default 0.5.

    Parameters
    ----------
    probabilities : array ``[n, L]``
        Predicted probabilities on validation data.
    targets : array ``[n, L]``
        0/1 ground truth (values >= 0.5 count as positive).
    candidates : 1-D array, optional
        Thresholds to choose from.

    Returns
    -------
    ndarray ``[L]``

    Example
    -------
    >>> p = np.array([[0.9], [0.6], [0.3], [0.1]])
    >>> tune_thresholds(p, np.array([[1], [1], [1], [0]])).tolist()  # the cut between 0.3 and 0.1
    [0.2]
    >>> tune_thresholds(p, np.array([[1], [1], [1], [0]]), candidates=np.array([0.5, 0.7])).tolist()
    [0.5]
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    targets = np.asarray(targets)
    if probabilities.ndim != 2 or targets.shape != probabilities.shape:
        raise ValueError(
            f"probabilities and targets must both be [n, L]; got {list(probabilities.shape)} "
            f"and {list(targets.shape)}"
        )
    if len(probabilities) == 0:
        raise ValueError("cannot tune thresholds on zero samples")
    if not np.isfinite(probabilities).all():
        raise ValueError("probabilities must be finite")
    positive = targets >= 0.5
    num_positive = positive.sum(axis=0)
    if candidates is None:
        thresholds = _best_cuts(probabilities, positive, num_positive)
    else:
        thresholds = _best_candidates(probabilities, positive, num_positive, candidates)
    return np.where(num_positive > 0, thresholds, 0.5)


def _best_cuts(probabilities: np.ndarray, positive: np.ndarray, num_positive: np.ndarray) -> np.ndarray:
    n = len(probabilities)
    order = np.argsort(-probabilities, axis=0, kind="stable")
    ranked = np.take_along_axis(probabilities, order, axis=0)
    true_positives = np.cumsum(np.take_along_axis(positive, order, axis=0), axis=0)
    predicted_positive = np.arange(1, n + 1)[:, None]  # cutting after rank k predicts the top k + 1
    f1 = 2 * true_positives / (predicted_positive + num_positive)
    # Only a cut between two distinct probabilities is realisable by a threshold.
    realisable = np.ones_like(ranked, dtype=bool)
    realisable[:-1] = ranked[:-1] > ranked[1:]
    best = np.argmax(np.where(realisable, f1, -1.0), axis=0)
    labels = np.arange(probabilities.shape[1])
    below = ranked[np.minimum(best + 1, n - 1), labels]
    return np.where(best < n - 1, (ranked[best, labels] + below) / 2, ranked[best, labels])


def _best_candidates(
    probabilities: np.ndarray, positive: np.ndarray, num_positive: np.ndarray, candidates: np.ndarray
) -> np.ndarray:
    candidates = np.asarray(candidates, dtype=np.float64)
    # Checked before np.unique, which would flatten a 2-D array silently.
    if candidates.ndim != 1 or len(candidates) == 0 or not np.isfinite(candidates).all():
        raise ValueError(
            f"candidates must be a non-empty 1-D array of finite thresholds, got shape "
            f"{list(candidates.shape)} with {int((~np.isfinite(candidates)).sum())} non-finite value(s)"
        )
    candidates = np.unique(candidates)[::-1]  # descending: ties go to the highest threshold
    n = len(probabilities)
    thresholds = np.empty(probabilities.shape[1])
    for label in range(probabilities.shape[1]):
        order = np.argsort(probabilities[:, label], kind="stable")
        ranked = probabilities[order, label]
        # positives_below[i]: positives among the i lowest probabilities
        positives_below = np.concatenate([[0], np.cumsum(positive[order, label])])
        first_predicted = np.searchsorted(ranked, candidates, side="left")  # p >= c from this rank on
        true_positives = num_positive[label] - positives_below[first_predicted]
        f1 = 2 * true_positives / ((n - first_predicted) + num_positive[label])
        thresholds[label] = candidates[np.argmax(f1)]
    return thresholds


class Ensemble(EnsembleTeacher):
    """Several trained models predicting as one: the mean of their predictions, with tuned thresholds.

    ``ensemble(inputs)`` returns per-task logits whose ``Task.predict`` is the mean of the members'
    predictions (see ``Task.combine_logits``), so it plugs in wherever a model does: evaluation, or as the
    teacher of another generation of students.

    Parameters
    ----------
    members : sequence of nn.Module
        Models with the same tasks (typically the students, same architecture).
    tasks : sequence of Task
    thresholds : dict of str to array, optional
        Per-label decision thresholds for multi-label tasks; 0.5 for every label not given.
    metadata : dict, optional
        Plain values (str, numbers, bool, None, lists and dicts of them) saved and loaded with the ensemble,
        e.g. the members' architecture settings and provenance; ``ensemble.metadata``.

    Example
    -------
    >>> import torch
    >>> from mtl_distill import MultiLabelTask
    >>> task = MultiLabelTask("attr", num_labels=2)
    >>> class Net(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.head = torch.nn.Linear(3, 2)
    ...     def forward(self, x):
    ...         return {"attr": self.head(x)}
    >>> ensemble = Ensemble([Net(), Net()], [task], thresholds={"attr": [0.3, 0.6]})
    >>> ensemble.predict(torch.randn(4, 3))["attr"].shape
    torch.Size([4, 2])
    >>> ensemble.save(f"{__import__('tempfile').mkdtemp()}/ensemble.pt")  # doctest: +ELLIPSIS
    PosixPath('.../ensemble.pt')
    """

    def __init__(
        self,
        members: Sequence[nn.Module],
        tasks: Sequence[Task],
        thresholds: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(members, tasks)
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.thresholds: dict[str, np.ndarray] = {
            task.name: np.full(task.num_labels, 0.5)
            for task in self.tasks
            if isinstance(task, MultiLabelTask)
        }
        self.set_thresholds(thresholds or {})

    def set_thresholds(self, thresholds: Mapping[str, Any]) -> None:
        """Replace the decision thresholds of the given multi-label tasks (``[L]`` values in [0, 1])."""
        for name, values in thresholds.items():
            if name not in self.thresholds:
                raise ValueError(
                    f"thresholds given for {name!r}, which is not a multi-label task of this ensemble "
                    f"(those are {sorted(self.thresholds)})"
                )
            values = np.asarray(values, dtype=np.float64)
            expected = self.thresholds[name].shape
            if values.shape != expected or not ((values >= 0) & (values <= 1)).all():
                raise ValueError(
                    f"thresholds[{name!r}] must be {expected[0]} values in [0, 1], got {values.tolist()}"
                )
            self.thresholds[name] = values.copy()

    @torch.no_grad()
    def predict(self, inputs: Tensor) -> dict[str, Tensor]:
        """Mean prediction of the members per task (probabilities or values), in eval mode."""
        was_training = self.training
        self.eval()
        try:
            logits = self(inputs)
        finally:
            self.train(was_training)
        return {task.name: task.predict(logits[task.name]) for task in self.tasks}

    def decide(self, predictions: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Final decisions: 0/1 labels (tuned thresholds), class indices, or the continuous values."""
        decisions = {}
        for task in self.tasks:
            values = predictions[task.name]
            if task.name in self.thresholds:
                thresholds = torch.as_tensor(
                    self.thresholds[task.name], dtype=values.dtype, device=values.device
                )
                decisions[task.name] = values >= thresholds
            elif isinstance(task, MultiClassTask):
                decisions[task.name] = values.argmax(dim=1)
            else:
                decisions[task.name] = values
        return decisions

    def tune_thresholds(self, dataset: Dataset, **predict_kwargs: Any) -> dict[str, np.ndarray]:
        """Tune and set every multi-label task's thresholds on the labelled samples of ``dataset``.

        ``dataset`` yields ``(inputs, targets, masks)``; ``predict_kwargs`` go to
        :func:`mtl_distill.evaluation.predict` (batch size, device, ...). Returns the new thresholds.
        """
        predictions = predict(self, self.tasks, dataset, **predict_kwargs)
        return self.tune_thresholds_on(predictions)

    def tune_thresholds_on(self, predictions: Predictions) -> dict[str, np.ndarray]:
        """As :meth:`tune_thresholds`, from predictions already collected (``evaluation.predict``)."""
        tuned = {}
        for name in self.thresholds:
            labelled = predictions.masks[name].astype(bool)
            if labelled.any():
                tuned[name] = tune_thresholds(
                    predictions.outputs[name][labelled], predictions.targets[name][labelled]
                )
        self.set_thresholds(tuned)
        return tuned

    def score_kwargs(self) -> dict[str, dict[str, np.ndarray]]:
        """Arguments for ``Task.score`` / ``evaluation.score_predictions``: the tuned thresholds."""
        return {name: {"thresholds": values} for name, values in self.thresholds.items()}

    def evaluate(self, dataset: Dataset, **predict_kwargs: Any) -> dict[str, dict[str, float]]:
        """Each task's scores on ``dataset``'s labelled samples, multi-label tasks at the tuned thresholds."""
        predictions = predict(self, self.tasks, dataset, **predict_kwargs)
        return score_predictions(self.tasks, predictions, self.score_kwargs())

    def save(self, path: str | os.PathLike) -> Path:
        """Write tasks, members' weights, thresholds and metadata to one file, atomically; returns the path.

        The file holds only tensors and plain containers, so it loads with ``torch.load(weights_only=True)``;
        metadata that is not plain (a numpy array, a Path, an object) is a ValueError naming its key.
        """
        _check_plain(self.metadata, "metadata")
        state = {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "tasks": [task.to_config() for task in self.tasks],
            "members": [member.state_dict() for member in self.members],
            "thresholds": {name: torch.from_numpy(values) for name, values in self.thresholds.items()},
            "metadata": self.metadata,
        }
        return save_checkpoint(state, path)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        model_factory: Callable[[], nn.Module],
        map_location: str | torch.device = "cpu",
    ) -> Ensemble:
        """Read an ensemble written by :meth:`save` (``torch.load(weights_only=True)``).

        ``model_factory()`` builds one untrained member (the architecture); its weights are loaded from the
        file. The tasks are rebuilt from the file. To choose the architecture from the file's metadata, read
        the file with :func:`mtl_distill.checkpoint.load_checkpoint` and call :meth:`from_saved`.
        """
        return cls.from_saved(load_checkpoint(path, map_location=map_location), model_factory, source=path)

    @classmethod
    def from_saved(
        cls,
        state: Mapping[str, Any],
        model_factory: Callable[[], nn.Module],
        source: str | os.PathLike = "the ensemble file",
    ) -> Ensemble:
        """The ensemble of a state :meth:`save` wrote, already read (``load_checkpoint``).

        Raises ``ValueError`` naming ``source`` when the state is not an Ensemble file of this version, lacks
        a key, or a member's weights do not fit ``model_factory()``'s model. A file written before metadata
        was saved loads with empty metadata.
        """
        if state.get("format") != _FORMAT:
            raise ValueError(f"{source} is not an Ensemble file (format {state.get('format')!r})")
        if state.get("version") != _FORMAT_VERSION:
            raise ValueError(f"{source}: Ensemble file version {state.get('version')!r} is not supported")
        missing = [key for key in ("tasks", "members", "thresholds") if key not in state]
        if missing:
            raise ValueError(f"{source}: damaged Ensemble file, no {', '.join(missing)}")
        members = []
        for index, weights in enumerate(state["members"]):
            member = model_factory()
            try:
                member.load_state_dict(weights)
            except RuntimeError as error:
                raise ValueError(
                    f"{source}: member {index} does not fit model_factory()'s model: {error}"
                ) from error
            members.append(member)
        tasks = [task_from_config(config) for config in state["tasks"]]
        thresholds = {name: values.numpy() for name, values in state["thresholds"].items()}
        return cls(members, tasks, thresholds, metadata=state.get("metadata"))


def _check_plain(value: Any, where: str) -> None:
    """Raise a ValueError naming ``where`` unless ``value`` is made of plain values only."""
    # Exact types: numpy's float64 subclasses float, but would be pickled as a numpy object.
    if value is None or type(value) in (str, bool, int, float):
        return
    if type(value) in (list, tuple):
        for index, item in enumerate(value):
            _check_plain(item, f"{where}[{index}]")
        return
    if type(value) is dict:
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where}: keys must be str, got {key!r}")
            _check_plain(item, f"{where}[{key!r}]")
        return
    raise ValueError(
        f"{where} is a {type(value).__name__}; metadata holds only str, numbers, bool, None, lists and dicts "
        "(so that the file loads with weights_only=True)"
    )
