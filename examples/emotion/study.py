"""``run.py study``: teacher, students and evaluation repeated over seeds, compared with intervals.

One run cannot tell a method's gain from the seed's: on the synthetic corpus the teacher alone moves by
0.02-0.04 between seeds. A study trains every seed and compares the models seed by seed
(:mod:`mtl_distill.study`: paired differences with Student-t 95% intervals).

Folders, under the run folder of the config::

    prepare/                              shared by every seed (the data do not depend on the training seed)
    study/seed_<s>/teacher/               one teacher per seed, shared by every variant
    study/seed_<s>/<variant>/students/    the variant's students of that seed
    study/seed_<s>/<variant>/evaluate/    their scores (scores.json) and the teacher's
    study/summary.md, summary.png, scores.json

Each seed's stages are ordinary pipeline stages: finished ones are skipped, interrupted ones resume from their
checkpoints, so an interrupted study continues where it stopped when run again.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from emotion.config import Config, ConfigError, student_variant
from emotion.pipeline import configure_logging, read_marker, run_stage, write_json
from emotion.results import STUDENTS_MEAN, score_rows
from mtl_distill import study as md_study
from mtl_distill.study import StudySummary, compare_variants, cpu_model, summarize

__all__ = [
    "EXPERIMENT_STAGES_OVER_SEEDS",
    "MAIN_VARIANT",
    "parse_seeds",
    "run_seed",
    "run_study",
    "seed_config",
    "study_scores",
    "summarize_study",
]

#: The variant of a study whose config names none: the students exactly as configured.
MAIN_VARIANT = "main"

#: Metrics of the study tables: (name, task key in scores.json, path to the number).
METRICS = (
    ("AU", "AU", ("score",)),
    ("EXPR", "EXPR", ("score",)),
    ("VA", "VA", ("score",)),
    ("valence", "VA", ("ccc", "valence")),
    ("arousal", "VA", ("ccc", "arousal")),
)
MEAN, ENSEMBLE, TEACHER = STUDENTS_MEAN, "ensemble", "teacher"

#: What ``run.py study`` runs per seed (and variant).
STUDY_STAGES = ("teacher", "students", "evaluate")

#: What ``run.py <experiment> --seeds`` runs per seed: the experiment and the stages it reads.
EXPERIMENT_STAGES_OVER_SEEDS = {
    "table1": ("table1",),
    "figure5": ("teacher", "students", "evaluate", "table1", "figure5"),
    "table2": ("teacher", "students", "evaluate", "table2"),
    "experiments": ("teacher", "students", "evaluate", "table1", "figure5", "table2"),
}

#: The paper's experiments over seeds: which of a stage's rows are compared seed by seed.
EXPERIMENT_COMPARISONS = {
    "table1": [
        ("+ external data", "baseline"),
        ("+ balancing", "+ external data"),
        ("+ balancing", "baseline"),
    ],
    "figure5": [
        ("multitask teacher", "single-task CNN"),
        ("students (mean)", "multitask teacher"),
        ("student ensemble", "multitask teacher"),
    ],
    "table2": [],  # each CNN-RNN row against the CNN's row of the same model, from the rows found
}


def parse_seeds(text: str) -> list[int]:
    """``mtl_distill.study.parse_seeds``, its error naming the ``--seeds`` option."""
    try:
        return md_study.parse_seeds(text)
    except ValueError as error:
        raise ConfigError(f"--seeds: {error}") from None


def variants_of(config: Config, names: Sequence[str] | None = None) -> dict[str, Any]:
    """Variant name -> its ``training.students`` settings (all of the config's, or those ``names``)."""
    declared = config.study.variants or {MAIN_VARIANT: {}}
    unknown = [name for name in names or () if name not in declared]
    if unknown:
        raise ConfigError(f"unknown study variant(s) {unknown}; the config declares {sorted(declared)}")
    chosen = names or list(declared)
    return {name: student_variant(config, name, declared[name]) for name in chosen}


def seed_config(config: Config, seed: int, variant: str) -> Config:
    """The configuration of one seed and variant: its own run folder, the shared ``prepare`` and teacher."""
    derived = copy.deepcopy(config)
    derived.seed = seed
    derived.training.students = variants_of(config, [variant])[variant]
    derived.name = f"{config.name}/study/seed_{seed}/{variant}"
    seed_dir = config.run_dir / "study" / f"seed_{seed}"
    derived.shared_stages = {
        "prepare": config.stage_dir("prepare"),
        # What does not depend on the students is trained once per seed, for every variant.
        "teacher": seed_dir / "teacher",
        "table1": seed_dir / "table1",
    }
    return derived


def run_study(
    config: Config,
    seeds: Sequence[int] | None = None,
    variants: Sequence[str] | None = None,
    force: bool = False,
    jobs: int = 1,
    stages: Sequence[str] = STUDY_STAGES,
    log: Callable[[str], None] = print,
) -> StudySummary | None:
    """Prepare once, then per seed the teacher and, per variant, the students and the evaluation; summarise.

    ``force`` redoes every seed's first stage (and so everything after it), not ``prepare``. ``jobs`` > 1
    trains that many seeds at once, each in its own process with an equal share of the CPU threads (on a
    CPU a small model keeps one thread busy far better than two, so two seeds at once nearly halve the
    time). ``stages`` may also name the paper's experiments (``table1``, ``figure5``, ``table2``, after the
    stages they read); each is then summarised over the seeds too (``study/<stage>.md``).
    """
    seeds = list(seeds if seeds is not None else config.study.seeds)
    names = list(variants_of(config, variants))
    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    run_stage("prepare", config, log=log)
    if jobs == 1:
        for seed in seeds:
            run_seed(config, seed, names, force, stages, log=log)
    else:
        level = logging.getLogger("emotion").getEffectiveLevel()  # -q / -v reach the workers
        work = functools.partial(
            _run_seed_quietly, config, variants=names, force=force, stages=stages, level=level
        )
        # The workers inherit the environment: no progress bars (several would overwrite each other; tqdm
        # reads this when it is imported, before a worker could set it).
        saved = os.environ.get("TQDM_DISABLE")
        os.environ["TQDM_DISABLE"] = "1"
        try:
            md_study.run_seeds(
                work, seeds, jobs, on_done=lambda seed, _: log(f"[study] seed {seed} finished")
            )
        finally:
            if saved is None:
                del os.environ["TQDM_DISABLE"]
            else:
                os.environ["TQDM_DISABLE"] = saved
    summary = None
    if "evaluate" in stages:
        summary = summarize_study(config, seeds, names)
        log(f"[study] summary: {config.run_dir / 'study' / 'summary.md'}")
    for stage in stages:
        if stage in EXPERIMENT_COMPARISONS:
            log(f"[study] {stage} over the seeds: {summarize_experiment(config, stage, seeds, names)}")
    return summary


def run_seed(
    config: Config,
    seed: int,
    variants: Sequence[str],
    force: bool = False,
    stages: Sequence[str] = STUDY_STAGES,
    log: Callable[[str], None] = print,
) -> None:
    """One seed of a study: its teacher, then each variant's students and evaluation (or other ``stages``)."""
    for index, variant in enumerate(variants):
        derived = seed_config(config, seed, variant)
        log(f"[study] seed {seed}, variant {variant!r}")
        for position, stage in enumerate(stages):
            # --force redoes a seed's first stage once (the later ones follow, their input having changed).
            run_stage(stage, derived, force=force and index == 0 and position == 0, log=log)


def _run_seed_quietly(
    config: Config,
    seed: int,
    variants: Sequence[str],
    force: bool,
    stages: Sequence[str],
    level: int,
) -> None:
    # A worker of run_study (mtl_distill.study.run_seeds gives it its share of the threads): its lines, the
    # trainer's log included, marked with its seed, at the parent's log level (a spawned process starts
    # without the parent's logging configuration).
    configure_logging(level, prefix=f"[seed {seed}] ")
    run_seed(
        config, seed, variants, force, stages, log=lambda line: print(f"[seed {seed}] {line}", flush=True)
    )


def study_scores(config: Config, seeds: Sequence[int], variants: Sequence[str]) -> dict[int, dict]:
    """``{seed: {model: {metric: value}}}`` from the evaluations: the teacher once per seed, and per variant
    its students' mean, its ensemble and each student (prefixed with the variant's name when there are
    several variants)."""
    table: dict[int, dict] = {}
    for seed in seeds:
        row: dict[str, dict[str, float]] = {}
        for variant in variants:
            folder = seed_config(config, seed, variant).stage_dir("evaluate")
            if read_marker(folder) is None:
                raise ConfigError(f"seed {seed}, variant {variant!r}: {folder} is not finished")
            models = json.loads((folder / "scores.json").read_text(encoding="utf-8"))["models"]
            prefix = f"{variant}: " if len(variants) > 1 else ""
            for name, values in score_rows(models, METRICS).items():
                row[name if name == TEACHER else prefix + name] = values
        table[seed] = row
    return table


def summarize_study(config: Config, seeds: Sequence[int], variants: Sequence[str]) -> StudySummary:
    """Write ``study/summary.md``, ``summary.png`` and ``scores.json``; return the summary."""
    folder = config.run_dir / "study"
    scores = study_scores(config, seeds, variants)
    prefixes = [f"{variant}: " if len(variants) > 1 else "" for variant in variants]
    models = [TEACHER]
    comparisons = []
    for prefix in prefixes:
        models += [prefix + MEAN, prefix + ENSEMBLE]
        comparisons += [
            (prefix + MEAN, TEACHER),
            (prefix + ENSEMBLE, TEACHER),
            (prefix + ENSEMBLE, prefix + MEAN),
        ]
    comparisons += [(prefix + MEAN, prefixes[0] + MEAN) for prefix in prefixes[1:]]
    summary = summarize(scores, comparisons, models=models, metrics=[name for name, _, _ in METRICS])
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "scores.json", {"seeds": list(seeds), "variants": list(variants), "scores": scores})
    text = f"# Study `{config.name}`\n\n{_setting(config, seeds, variants)}\n\n{summary.to_markdown()}"
    if len(variants) > 1:
        settings = variants_of(config, list(variants))
        # The control: students trained on ground truth alone (lam = 1), i.e. the teacher's loss, other seeds.
        control = next(
            (name for name, s in settings.items() if s.lam == 1.0 and not s.unlabelled_weight), None
        )
        questions = compare_variants(scores, variants, control=control, metrics=[n for n, _, _ in METRICS])
        text += f"\n## By question, a row per variant\n\n{questions}\n"
    (folder / "summary.md").write_text(text, encoding="utf-8")
    summary.plot(folder / "summary.png")
    return summary


def summarize_experiment(config: Config, stage: str, seeds: Sequence[int], variants: Sequence[str]) -> Path:
    """Write ``study/<stage>.md``: the stage's rows over the seeds and their paired differences (per variant
    when the stage depends on the students); for ``table1`` also the EXPR F1 of each class (the paper's claim
    that balancing helps the rare expressions)."""
    folder = config.run_dir / "study"
    folder.mkdir(parents=True, exist_ok=True)
    per_variant = stage != "table1"
    sections = [f"# `{stage}` over {len(seeds)} seeds\n\n{_setting(config, seeds, variants)}\n"]
    for variant in variants if per_variant else variants[:1]:
        rows = {seed: _stage_rows(seed_config(config, seed, variant), stage) for seed in seeds}
        names = list(rows[seeds[0]])
        comparisons = EXPERIMENT_COMPARISONS[stage] or _sequence_comparisons(names)
        summary = summarize(rows, [pair for pair in comparisons if set(pair) <= set(names)], models=names)
        title = f"## variant `{variant}`\n\n" if per_variant and len(variants) > 1 else ""
        sections.append(f"{title}{summary.to_markdown()}")
        if stage == "table1":
            per_class = {seed: _expr_class_f1(seed_config(config, seed, variant)) for seed in seeds}
            classes = summarize(per_class, EXPERIMENT_COMPARISONS["table1"], models=names)
            sections.append(f"### EXPR F1 per class\n\n{classes.to_markdown()}")
    path = folder / f"{stage}.md"
    path.write_text("\n".join(sections), encoding="utf-8")
    return path


def _stage_rows(config: Config, stage: str) -> dict[str, dict[str, float]]:
    marker = read_marker(config.stage_dir(stage))
    if marker is None:
        raise ConfigError(f"{config.stage_dir(stage)} is not finished")
    # "best student (student_k)" names another student in every seed: no row to pair across seeds.
    return {name: row for name, row in marker["summary"]["rows"].items() if "best student" not in name}


def _expr_class_f1(config: Config) -> dict[str, dict[str, float]]:
    scores = json.loads((config.stage_dir("table1") / "scores.json").read_text(encoding="utf-8"))
    return {
        row: {name: float(f1) for name, f1 in tasks["EXPR"]["f1"].items()} for row, tasks in scores.items()
    }


def _sequence_comparisons(names: Sequence[str]) -> list[tuple[str, str]]:
    """Table II: each CNN-RNN row against the CNN's row of the same model."""
    pairs = []
    for name in names:
        if name.startswith("CNN-RNN "):
            model = name.split(" ", 2)[2]
            if f"CNN {model}" in names:
                pairs.append((name, f"CNN {model}"))
    return pairs


def _setting(config: Config, seeds: Sequence[int], variants: Sequence[str]) -> str:
    training = config.training
    images_per_epoch = 3 * training.batch_per_task * (training.steps_per_epoch or 0)
    budget = (
        f"{images_per_epoch:,} images per epoch" if images_per_epoch else "one pass over the data per epoch"
    )
    lines = [
        f"{len(seeds)} seeds ({', '.join(map(str, seeds))}), CPU `{cpu_model()}`. Backbone "
        f"`{config.model.backbone}`; teacher {training.teacher.epochs} epochs ({budget}).",
        "",
        "| variant | students | epochs | start | lam | T | T^2 | weight of unlabelled | CCC term "
        "| soft labels |",
        "| --- | ---: | ---: | --- | ---: | ---: | --- | ---: | --- | --- |",
    ]
    for name, students in variants_of(config, list(variants)).items():
        lines.append(
            f"| {name} | {students.count} | {_epochs(students)} | {students.init} | {students.lam:g} | "
            f"{students.temperature:g} | {'yes' if students.t2_scaling else 'no'} | "
            f"{_unlabelled_weight(students)} | {students.batch_loss_weight.replace('_', ' ')} | "
            f"{_soft_labels(students.soft_labels)}{_weighted(students.soft_label_weight)} |"
        )
    return "\n".join(lines)


def _soft_labels(soft_labels: str | dict[str, str]) -> str:
    if isinstance(soft_labels, str):
        return soft_labels
    return ", ".join(f"{task} {kind}" for task, kind in soft_labels.items())


def _weighted(soft_label_weight: str) -> str:
    return "" if soft_label_weight == "uniform" else f", weighted by the teacher's {soft_label_weight}"


def _epochs(students: Any) -> str:
    generations = students.generations
    epochs = f"{students.epochs}" if generations == 1 else f"{students.epochs} x {generations} generations"
    return f"{epochs}, bagged" if students.bagging else epochs


def _unlabelled_weight(students: Any) -> str:
    weight = students.unlabelled_weight
    return f"{1 - students.lam:g} (1 - lam)" if weight is None else f"{weight:g}"
