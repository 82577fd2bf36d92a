"""Teacher-student training for multitask learning when each sample is labelled for only some tasks.

Implements Deng, Chen & Shi, "Multitask Emotion Recognition with Incomplete Labels" (FG 2020), section III-B
and Algorithm 1, for any model that maps an input batch to ``{task_name: logits}``. The package README is the
tour; the modules, in reading order:

- :mod:`~mtl_distill.tasks` - task types (multi-label, multi-class, binned regression, regression): losses,
  predictions, metrics.
- :mod:`~mtl_distill.losses` - the teacher loss (Eq. 13) and the student loss (Eq. 14).
- :mod:`~mtl_distill.batching` - batches of N samples per task from per-task index lists or samplers.
- :mod:`~mtl_distill.trainer` - one training run: the training loop, checkpoints and resume, DDP.
- :mod:`~mtl_distill.distillation` - Algorithm 1: the teacher, K students, generations.
- :mod:`~mtl_distill.soft_labels` - the students' soft labels: the teacher online, or a float16 cache.
- :mod:`~mtl_distill.evaluation` - predicting and scoring on labelled data.
- :mod:`~mtl_distill.ensemble` - the students' ensemble, per-label thresholds, saving and loading.
- :mod:`~mtl_distill.study` - comparing trainings over seeds: confidence intervals, paired differences.
- :mod:`~mtl_distill.metrics`, :mod:`~mtl_distill.checkpoint`, :mod:`~mtl_distill.distributed`,
  :mod:`~mtl_distill.logging_utils`.

The names below are what a user calls; the building blocks they are made of (soft-label sources, the
metrics, seeding, records) are imported from their modules.
"""

from mtl_distill import study
from mtl_distill.batching import MultiTaskBatchSampler, concat_datasets
from mtl_distill.checkpoint import load_checkpoint, save_checkpoint
from mtl_distill.distillation import DistillConfig, DistillResult, distill, train_students, train_teacher
from mtl_distill.ensemble import Ensemble, average_predictions, tune_thresholds
from mtl_distill.evaluation import Predictions, evaluate, predict, score_predictions
from mtl_distill.losses import student_loss, teacher_loss
from mtl_distill.tasks import (
    BinnedRegressionTask,
    MultiClassTask,
    MultiLabelTask,
    RegressionTask,
    Task,
    task_from_config,
)
from mtl_distill.trainer import TrainConfig, Trainer, TrainResult

__version__ = "0.1.0"

__all__ = [
    "BinnedRegressionTask",
    "DistillConfig",
    "DistillResult",
    "Ensemble",
    "MultiClassTask",
    "MultiLabelTask",
    "MultiTaskBatchSampler",
    "Predictions",
    "RegressionTask",
    "Task",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "average_predictions",
    "concat_datasets",
    "distill",
    "evaluate",
    "load_checkpoint",
    "predict",
    "save_checkpoint",
    "score_predictions",
    "student_loss",
    "study",
    "task_from_config",
    "teacher_loss",
    "train_students",
    "train_teacher",
    "tune_thresholds",
]
