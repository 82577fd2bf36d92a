"""The pipeline's typed configuration, read from YAML.

Every stage of ``run.py`` reads the same file. The YAML maps one to one onto the dataclasses below; a key
that no dataclass field has is an error naming its full path (``training.teacher.epohcs``), and so is a
value of the wrong type. Relative paths are taken relative to the directory ``run.py`` is started from
(the repository root for ``make demo``).

Example
-------
>>> from pathlib import Path
>>> config = load_config(Path(__file__).parent / "configs" / "demo.yaml", check_paths=False)
>>> config.model.backbone, config.data.synthetic.preset
('resnet_tiny', 'demo')
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

__all__ = [
    "Config",
    "ConfigError",
    "DataConfig",
    "EvaluationConfig",
    "ExperimentsConfig",
    "ModelConfig",
    "StudentsConfig",
    "StudyConfig",
    "SyntheticConfig",
    "TeacherConfig",
    "TrainingConfig",
    "check_device",
    "device_problem",
    "load_config",
]

#: The four data sets of the paper, in the order the recipes use them.
DATASETS = ("aff_wild2", "disfa", "expw", "afew_va")

#: The paper's tasks, as ``training.students.soft_labels`` may name them.
TASK_NAMES = ("AU", "EXPR", "VA")

#: What ``training.device`` may name ("auto": CUDA when available, else the CPU).
DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the file and the key."""


@dataclass
class SyntheticConfig:
    """The synthetic affect corpus: written by ``prepare`` into ``root`` when it is missing."""

    root: str
    preset: str = "demo"
    seed: int = 0


@dataclass
class DataConfig:
    """Where the data sets are, how they are merged, and the image size the networks see.

    With ``synthetic`` set, the four data set roots are the corpus's sub-folders and must be left null;
    otherwise ``aff_wild2`` is required, and so are the external sets that the recipe merges in. ``recipe``
    is an affect_data merging recipe (see ``affect_data.recipes``); null is the paper's, ``PAPER_RECIPE``.
    ``crop_cache`` is where the ExpW and AFEW-VA loaders write their face crops (null: their default).
    ``frame_cache`` makes ``prepare`` decode every training and validation image once into a uint8 memory
    map at ``1.2 * image_size`` pixels (affect_data's crop cache: far faster loading, for
    ``rows x (1.2 image_size)^2 x 3`` bytes of disk in the run folder).
    """

    synthetic: SyntheticConfig | None = None
    aff_wild2: str | None = None
    disfa: str | None = None
    expw: str | None = None
    afew_va: str | None = None
    crop_cache: str | None = None
    image_size: int = 112
    frame_cache: bool = True
    num_workers: int = 0
    recipe: dict | None = None

    def roots(self) -> dict[str, Path | None]:
        """Data set name -> root folder (None when not used)."""
        if self.synthetic is not None:
            return {name: Path(self.synthetic.root) / name for name in DATASETS}
        return {name: None if getattr(self, name) is None else Path(getattr(self, name)) for name in DATASETS}


@dataclass
class ModelConfig:
    """The multitask CNN of :mod:`models` (see :class:`models.MultitaskCNN`)."""

    backbone: Literal["resnet50", "resnet18", "resnet_tiny"] = "resnet50"
    weights: str | None = None
    hidden: int = 128
    dropout: float = 0.2


@dataclass
class TeacherConfig:
    """Teacher training: ground truth only."""

    epochs: int = 8


@dataclass
class StudentsConfig:
    """Student training: ground truth and the teacher's soft labels (Eq. 14).

    The defaults are mtl_distill's (``TrainConfig``, ``DistillConfig``). The loss settings: ``lam``,
    ``temperature``, ``t2_scaling``, ``unlabelled_weight`` (null: ``1 - lam``; the paper: 1),
    ``batch_loss_weight`` (the CCC term's weight: ``lam`` as the paper, or ``teacher_share``: its share of
    the teacher's loss; the default) and ``soft_label_weight`` (``uniform`` as the paper, or ``confidence``:
    each sample's soft labels weighted by the teacher's confidence on it). ``soft_labels`` is ``by_task``
    (the default: cached for AU and EXPR, online for VA), online (as the paper), cached, or chosen per task
    (a mapping of ``AU``, ``EXPR`` and ``VA`` to ``online`` or ``cached``), and
    ``init`` is where each student starts: the teacher's starting weights (the paper), fresh random weights
    of its own, or the trained teacher's. ``bagging`` gives each student its own bootstrap bag of the
    training samples.
    ``generations`` > 1 trains the students again, taught by the previous generation's ensemble (born-again
    networks); the last generation's students are the run's.
    """

    count: int = 5
    epochs: int = 3
    lam: float = 0.6
    temperature: float = 1.5
    t2_scaling: bool = False
    unlabelled_weight: float | None = None
    batch_loss_weight: Literal["lam", "teacher_share"] = "teacher_share"
    soft_label_weight: Literal["uniform", "confidence"] = "uniform"
    soft_labels: Literal["by_task", "online", "cached"] | dict[str, Literal["online", "cached"]] = "by_task"
    init: Literal["teacher_initial", "random", "teacher"] = "teacher_initial"
    bagging: bool = False
    generations: int = 1


@dataclass
class TrainingConfig:
    """Optimisation settings shared by the teacher and the students (Adam, step schedule: the paper's)."""

    batch_per_task: int = 64
    steps_per_epoch: int | None = None
    lr: float = 1e-4
    lr_step_epochs: int = 3
    lr_gamma: float = 0.1
    weight_decay: float = 0.0
    device: str = "auto"
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    students: StudentsConfig = field(default_factory=StudentsConfig)


@dataclass
class EvaluationConfig:
    """Evaluation on the validation videos."""

    batch_size: int = 128
    tune_thresholds: bool = True


@dataclass
class ExperimentsConfig:
    """The paper's experiments (``run.py experiments``): Table I, Figure 5 and Table II.

    Epoch counts left null follow ``training.teacher.epochs`` / ``training.students.epochs``. The CNN-RNN
    runs use N = ``sequence_batch_per_task`` clips per task per batch.
    """

    single_task_epochs: int | None = None
    sequence_lengths: list[int] = field(default_factory=lambda: [32, 16, 8])
    sequence_batch_per_task: int = 8
    sequence_steps_per_epoch: int | None = None
    sequence_epochs: int | None = None
    sequence_student_epochs: int | None = None


@dataclass
class StudyConfig:
    """``run.py study``: teacher, students and evaluation repeated over seeds, compared with intervals.

    ``variants`` maps a name to overrides of ``training.students`` (e.g. ``{epochs: 14, lam: 0.9}``); every
    variant of a seed learns from that seed's one teacher. Empty: one variant, ``main``, the students as
    configured.
    """

    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    variants: dict = field(default_factory=dict)


@dataclass
class Config:
    """The whole pipeline configuration; ``runs/<name>/`` (under ``run_root``) is the run folder."""

    name: str
    data: DataConfig
    run_root: str = "runs"
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    experiments: ExperimentsConfig = field(default_factory=ExperimentsConfig)
    study: StudyConfig = field(default_factory=StudyConfig)

    @property
    def run_dir(self) -> Path:
        return Path(self.run_root) / self.name

    def stage_dir(self, stage: str) -> Path:
        """The folder of a stage's outputs: ``<run_dir>/<stage>``, unless this run reads that stage from
        another run folder (a study's runs share ``prepare`` and, per seed, the teacher; see
        :mod:`emotion.study`)."""
        shared = getattr(self, "shared_stages", {})
        return Path(shared[stage]) if stage in shared else self.run_dir / stage

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_config(path: str | Path, check_paths: bool = True, overrides: Sequence[str] = ()) -> Config:
    """Read and validate a YAML configuration file, with command-line overrides.

    Parameters
    ----------
    path : str or Path
        The YAML file.
    check_paths : bool
        Check that every configured data set root exists (the synthetic corpus root may be missing:
        ``prepare`` writes it).
    overrides : sequence of str
        ``key.path=value`` settings (``run.py --set``), applied in turn as if the file had been edited: the
        value is read as YAML (``training.lr=3e-4`` is a number, ``training.students.soft_labels=online`` a
        string, ``data.recipe=null`` null), and each is checked like the file itself.

    Raises
    ------
    ConfigError
        Naming the file (or the ``--set`` that brought the value in), the key and the value: unknown keys,
        wrong types, missing required keys, values out of range (a learning rate <= 0, zero steps per epoch,
        an unknown device or synthetic preset, ...), missing data folders. Whether this machine has the
        configured device is :func:`check_device`'s question.

    Example
    -------
    >>> demo = Path(__file__).parent / "configs" / "demo.yaml"
    >>> config = load_config(demo, check_paths=False, overrides=["training.lr=3e-4", "model.hidden=64"])
    >>> config.training.lr, config.model.hidden
    (0.0003, 64)
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    with path.open(encoding="utf-8") as handle:
        try:
            data = yaml.safe_load(handle)
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML: {error}") from error
    # The file is checked as written, then again after each override, so that an error names what brought
    # the value in; data folders are checked last only, so that an override can point them elsewhere.
    config = _validated(data, path, check_paths and not overrides)
    for position, text in enumerate(overrides, start=1):
        data = _override(data, text, path)
        config = _validated(data, f"{path}, --set {text}", check_paths and position == len(overrides))
    return config


def _validated(data: Any, source: Path | str, check_paths: bool) -> Config:
    config = _build(Config, data, where="", source=source)
    _check(config, source, check_paths)
    return config


def _override(data: Any, text: str, path: Path) -> dict[str, Any]:
    """A copy of the YAML mapping ``data`` with one ``key.path=value`` override set.

    Sections the file leaves out (or sets to null) are created; whether the keys exist is left to
    :func:`_build`, which names the first unknown one with its full path, as it does for the file.
    """
    origin = f"{path}, --set {text}"
    key, equals, value_text = text.partition("=")
    parts = key.strip().split(".")
    if not equals or not all(parts):
        raise ConfigError(f"{origin}: expected KEY.PATH=VALUE, e.g. training.lr=3e-4")
    try:
        value = yaml.safe_load(value_text)
    except yaml.YAMLError as error:
        # One line: the problem alone, not the marked copy of the value that PyYAML adds.
        problem = getattr(error, "problem", None) or error
        raise ConfigError(f"{origin}: the value {value_text!r} is not valid YAML ({problem})") from None
    data = copy.deepcopy(data)
    node = data
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            section = ".".join(parts[: depth + 1])
            raise ConfigError(f"{origin}: {section} is {child!r}, not a section with keys")
        node = child
    node[parts[-1]] = value
    return data


def _check(config: Config, source: Path | str, check_paths: bool) -> None:
    name = Path(config.name)
    if not config.name or name.is_absolute() or ".." in name.parts:
        raise ConfigError(
            f"{source}: name must be a folder name inside run_root (no '..', not absolute), "
            f"got {config.name!r}"
        )
    data = config.data
    if data.synthetic is not None:
        given = [name for name in DATASETS if getattr(data, name) is not None]
        if given:
            raise ConfigError(
                f"{source}: data.synthetic is set, so data.{given[0]} must be null (the corpus provides it)"
            )
    elif data.aff_wild2 is None:
        raise ConfigError(
            f"{source}: data.aff_wild2 is required (or data.synthetic for the synthetic corpus)"
        )
    for key, value, low in (
        ("data.image_size", data.image_size, 16),
        ("data.num_workers", data.num_workers, 0),
        ("model.hidden", config.model.hidden, 1),
        ("training.batch_per_task", config.training.batch_per_task, 1),
        ("training.teacher.epochs", config.training.teacher.epochs, 1),
        ("training.lr_step_epochs", config.training.lr_step_epochs, 1),
        ("evaluation.batch_size", config.evaluation.batch_size, 1),
        ("experiments.sequence_batch_per_task", config.experiments.sequence_batch_per_task, 1),
        *(
            (f"experiments.sequence_lengths[{i}]", n, 1)
            for i, n in enumerate(config.experiments.sequence_lengths)
        ),
    ):
        if value < low:
            raise ConfigError(f"{source}: {key} must be >= {low}, got {value}")
    _check_optional_counts(config, source)
    _check_training(config.training, source)
    if not 0.0 <= config.model.dropout < 1.0:
        raise ConfigError(f"{source}: model.dropout must be in [0, 1), got {config.model.dropout}")
    if data.synthetic is not None:
        from affect_data.synthetic import PRESETS

        if data.synthetic.preset not in PRESETS:
            raise ConfigError(
                f"{source}: data.synthetic.preset must be one of {', '.join(sorted(PRESETS))}, "
                f"got {data.synthetic.preset!r}"
            )
    _check_students(config.training.students, "training.students", source)
    if len(set(config.study.seeds)) != len(config.study.seeds) or not config.study.seeds:
        raise ConfigError(f"{source}: study.seeds must be distinct seeds, got {config.study.seeds}")
    for name, overrides in config.study.variants.items():
        student_variant(config, name, overrides, source)
    if data.recipe is not None:
        from affect_data.recipes import check_recipe

        try:
            check_recipe(data.recipe)
        except ValueError as error:
            raise ConfigError(f"{source}: data.recipe: {error}") from None
    if check_paths:
        missing = [
            f"data.{name} = {str(root)!r}"
            for name, root in data.roots().items()
            if root is not None and data.synthetic is None and not root.is_dir()
        ]
        if missing:
            raise ConfigError(
                f"{source}: data folder(s) not found: {'; '.join(missing)} (relative paths are taken from "
                f"the current directory {str(Path.cwd())!r}); edit the config to point at your copies"
            )


def _check_optional_counts(config: Config, source: Path | str) -> None:
    # null means "the default" (a full pass over the balanced lists, or the main training's epochs); 0 would
    # train nothing and fail only once the stage has started.
    experiments = config.experiments
    for key, value in (
        ("training.steps_per_epoch", config.training.steps_per_epoch),
        ("experiments.sequence_steps_per_epoch", experiments.sequence_steps_per_epoch),
        ("experiments.single_task_epochs", experiments.single_task_epochs),
        ("experiments.sequence_epochs", experiments.sequence_epochs),
        ("experiments.sequence_student_epochs", experiments.sequence_student_epochs),
    ):
        if value is not None and value < 1:
            raise ConfigError(f"{source}: {key} must be >= 1 or null, got {value}")


def _check_training(training: TrainingConfig, source: Path | str) -> None:
    # Each of these would otherwise surface only inside torch, as a traceback at the stage's first step.
    if not 0.0 < training.lr < math.inf:
        raise ConfigError(f"{source}: training.lr must be a finite number > 0, got {training.lr}")
    if not 0.0 < training.lr_gamma <= 1.0:
        raise ConfigError(f"{source}: training.lr_gamma must be in (0, 1], got {training.lr_gamma}")
    if not 0.0 <= training.weight_decay < math.inf:
        raise ConfigError(
            f"{source}: training.weight_decay must be a finite number >= 0, got {training.weight_decay}"
        )
    if not DEVICE.fullmatch(training.device):
        raise ConfigError(
            f"{source}: training.device must be auto, cpu, cuda, cuda:N or mps, got {training.device!r}"
        )


def check_device(config: Config, source: Path | str = "the config") -> None:
    """Refuse a ``training.device`` this machine does not have (:func:`device_problem`).

    Not part of :func:`load_config`: a config written for a GPU machine must still load elsewhere (to read
    it, to ``prepare`` the data, to write the report). ``run.py`` calls this before a stage that computes.

    Raises
    ------
    ConfigError
        Naming the file, the key and the device.
    """
    device = config.training.device
    problem = device_problem(device)
    if problem is not None:
        raise ConfigError(f"{source}: training.device is {device!r}, but {problem}")


def device_problem(device: str) -> str | None:
    """Why this machine cannot compute on ``device`` (CUDA, the N-th CUDA device, MPS); None when it can."""
    import torch  # here: loading and checking a config (docs, tests, report) needs no torch

    if device.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            return "CUDA is not available on this machine; use auto or cpu"
        if int(device.partition(":")[2] or 0) >= count:
            return f"this machine has {count} CUDA device(s) (cuda:0 to cuda:{count - 1})"
    if device == "mps" and not torch.backends.mps.is_available():
        return "MPS is not available on this machine; use auto or cpu"
    return None


def student_variant(
    config: Config, name: str, overrides: Any, source: Path | str = "the config"
) -> StudentsConfig:
    """``training.students`` with a study variant's overrides, checked like the YAML (keys, types, ranges)."""
    where = f"study.variants.{name}"
    if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
        raise ConfigError(f"{source}: study variant name {name!r} must be letters, digits, '-' and '_'")
    if not isinstance(overrides, dict):
        raise ConfigError(f"{source}: {where} must map training.students keys to values, got {overrides!r}")
    merged = {**dataclasses.asdict(config.training.students), **overrides}
    students = _build(StudentsConfig, merged, where=where, source=source)
    _check_students(students, where, source)
    return students


def _check_students(students: StudentsConfig, where: str, source: Path | str) -> None:
    if students.count < 0:
        raise ConfigError(f"{source}: {where}.count must be >= 0, got {students.count}")
    if students.epochs < 1:  # zero epochs would hand untrained students to the evaluation
        raise ConfigError(f"{source}: {where}.epochs must be >= 1, got {students.epochs}")
    if students.generations < 1 or (students.generations > 1 and students.count < 1):
        raise ConfigError(
            f"{source}: {where}.generations must be >= 1, and students.count >= 1 for more than one "
            f"(each generation teaches the next), got {students.generations} with count {students.count}"
        )
    if not 0.0 <= students.lam <= 1.0:
        raise ConfigError(f"{source}: {where}.lam must be in [0, 1], got {students.lam}")
    if not students.temperature > 0:  # else the students stage fails on its first batch
        raise ConfigError(f"{source}: {where}.temperature must be > 0, got {students.temperature}")
    if isinstance(students.soft_labels, dict) and sorted(students.soft_labels) != sorted(TASK_NAMES):
        raise ConfigError(
            f"{source}: {where}.soft_labels must be by_task, online, cached, or name each of the tasks "
            f"{', '.join(TASK_NAMES)} once, got {students.soft_labels}"
        )
    if students.unlabelled_weight is not None and not students.unlabelled_weight >= 0:
        raise ConfigError(
            f"{source}: {where}.unlabelled_weight must be >= 0, got {students.unlabelled_weight}"
        )


def _build(cls: type, data: Any, where: str, source: Path | str) -> Any:
    """Build dataclass ``cls`` from a mapping, checking keys and types recursively."""
    label = where or "the top level"
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {label} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [key for key in data if key not in fields]
    if unknown:
        raise ConfigError(
            f"{source}: unknown key {_join(where, str(unknown[0]))!r}; valid keys here: {', '.join(fields)}"
        )
    values = {}
    for name, spec in fields.items():
        key = _join(where, name)
        if name in data:
            values[name] = _convert(hints[name], data[name], key, source)
        elif spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{source}: missing required key {key!r}")
    return cls(**values)


def _convert(hint: Any, value: Any, key: str, source: Path | str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(option, value, key, source)
            except ConfigError as error:
                # A mapping's error inside the option that takes mappings says more than "not one of ...".
                takes_mapping = typing.get_origin(option) is dict or dataclasses.is_dataclass(option)
                errors.insert(0 if takes_mapping and isinstance(value, dict) else len(errors), str(error))
        raise ConfigError(errors[0])
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{source}: {key} must be a list, got {value!r}")
        (item,) = typing.get_args(hint)
        return [_convert(item, v, f"{key}[{i}]", source) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {key} must be a mapping, got {value!r}")
        key_hint, value_hint = typing.get_args(hint)
        return {
            _convert(key_hint, name, key, source): _convert(value_hint, item, f"{key}.{name}", source)
            for name, item in value.items()
        }
    if origin is Literal:
        if value not in typing.get_args(hint):
            choices = ", ".join(repr(v) for v in typing.get_args(hint))
            raise ConfigError(f"{source}: {key} must be one of {choices}, got {value!r}")
        return value
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key, source)
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        try:  # YAML 1.1 reads "1e-4" (no dot) as a string
            return float(value)
        except ValueError:
            pass
    if isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
        return value
    raise ConfigError(f"{source}: {key} must be {hint.__name__}, got {value!r}")


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name
