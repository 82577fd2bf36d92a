"""The package's top-level names are exactly what users call; the building blocks stay in their modules."""

import importlib

import mtl_distill

PUBLIC = {
    # the names users already call (issue 11): keep working from the top level
    "distill",
    "DistillConfig",
    "DistillResult",
    "TrainConfig",
    "train_teacher",
    "train_students",
    "MultiTaskBatchSampler",
    "Ensemble",
    "Task",
    "MultiLabelTask",
    "MultiClassTask",
    "BinnedRegressionTask",
    "RegressionTask",
    "teacher_loss",
    "student_loss",
    # the rest of what the package README and the examples call
    "Trainer",
    "TrainResult",
    "task_from_config",
    "concat_datasets",
    "predict",
    "evaluate",
    "score_predictions",
    "Predictions",
    "tune_thresholds",
    "average_predictions",
    "save_checkpoint",
    "load_checkpoint",
    "study",
}

# Building blocks that left the top level, and the module each is imported from.
MOVED = {
    "CachedSoftLabels": "mtl_distill.soft_labels",
    "EnsembleTeacher": "mtl_distill.soft_labels",
    "OnlineSoftLabels": "mtl_distill.soft_labels",
    "SoftLabelCache": "mtl_distill.soft_labels",
    "frozen_copy": "mtl_distill.soft_labels",
    "IndexedDataset": "mtl_distill.batching",
    "MetricsLogger": "mtl_distill.logging_utils",
    "binary_f1": "mtl_distill.metrics",
    "macro_f1": "mtl_distill.metrics",
    "concordance_correlation": "mtl_distill.metrics",
    "concordance_loss": "mtl_distill.tasks",
    "mean_task_score": "mtl_distill.evaluation",
    "seed_everything": "mtl_distill.checkpoint",
    "reset_parameters": "mtl_distill.distillation",
}


def test_the_public_surface_is_exactly_the_intended_list():
    assert sorted(mtl_distill.__all__) == sorted(PUBLIC)
    assert len(mtl_distill.__all__) == len(set(mtl_distill.__all__))


def test_every_public_name_imports_from_the_top_level():
    namespace: dict = {}
    exec(f"from mtl_distill import {', '.join(sorted(PUBLIC))}", namespace)
    assert all(namespace[name] is getattr(mtl_distill, name) for name in PUBLIC)
    result_fields = mtl_distill.DistillResult.__dataclass_fields__
    assert "teacher" in result_fields and isinstance(mtl_distill.DistillResult.students, property)


def test_no_other_public_attribute_is_reexported():
    # Submodules are attributes once imported (mtl_distill.trainer, ...): only `study` is part of __all__.
    modules = {name for name, value in vars(mtl_distill).items() if type(value) is type(mtl_distill)}
    extra = {name for name in vars(mtl_distill) if not name.startswith("_")} - PUBLIC - modules
    assert not extra, f"re-exported but not in __all__: {sorted(extra)}"


def test_building_blocks_import_from_their_modules():
    for name, module in MOVED.items():
        assert not hasattr(mtl_distill, name), name
        assert hasattr(importlib.import_module(module), name), (name, module)
        assert name in importlib.import_module(module).__all__, (name, module)


def test_one_run_and_algorithm_1_live_in_their_own_modules():
    trainer = importlib.import_module("mtl_distill.trainer")
    distillation = importlib.import_module("mtl_distill.distillation")
    assert sorted(trainer.__all__) == ["STUDENT_LOSS_SETTINGS", "TrainConfig", "TrainResult", "Trainer"]
    assert set(distillation.__all__) >= {"DistillConfig", "DistillResult", "distill", "train_students"}
    assert mtl_distill.distill is distillation.distill and mtl_distill.Trainer is trainer.Trainer
