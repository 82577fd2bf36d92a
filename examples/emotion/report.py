"""The ``report`` stage: a Markdown report and PNG figures from what the earlier stages wrote.

- ``results.md``: the headline table (teacher, each student, the students' mean, the ensemble; ABAW 2020
  scores), printed at the end of ``run.py all``;
- ``report.md``: that table, the data summary, per-AU and per-expression F1, AU thresholds, training history
  and the figures;
- ``figure2_<task>.png``: label distributions before and after balancing (the paper's Figure 2);
- ``figure5.png``: the metric comparison (the paper's Figure 5);
- ``per_au_f1.png``, ``per_class_f1.png``, ``training_curves.png``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from affect_data.schema import AU_NAMES, EXPR_NAMES
from emotion.config import Config
from emotion.pipeline import read_marker
from emotion.results import figure5, grouped_bars, markdown_table, score_rows

__all__ = ["findings", "results_table", "run_report"]

#: Headline columns: (title, task key in scores.json, path to the number).
COLUMNS = (
    ("AU score", "AU", ("score",)),
    ("AU mean F1", "AU", ("mean_f1",)),
    ("AU score (t=0.5)", "AU@0.5", ("score",)),
    ("EXPR score", "EXPR", ("score",)),
    ("EXPR macro F1", "EXPR", ("macro_f1",)),
    ("Valence CCC", "VA", ("ccc", "valence")),
    ("Arousal CCC", "VA", ("ccc", "arousal")),
    ("VA mean CCC", "VA", ("score",)),
)


def run_report(config: Config, folder: Path) -> dict[str, Any]:
    """Write ``results.md``, ``report.md`` and the figures into ``folder``."""
    scores = json.loads((config.stage_dir("evaluate") / "scores.json").read_text(encoding="utf-8"))
    thresholds = json.loads((config.stage_dir("evaluate") / "thresholds.json").read_text(encoding="utf-8"))
    prepare = json.loads((config.stage_dir("prepare") / "summary.json").read_text(encoding="utf-8"))
    table = results_table(scores)
    source = _source(config, prepare, scores)

    results = f"{source}\n\n{markdown_table(table)}\n\n{findings(table)}\n"
    (folder / "results.md").write_text(results, encoding="utf-8")

    figure5(scores, folder / "figure5.png")
    figures = {
        "figure5": folder / "figure5.png",
        "per_au_f1": _plot_details(scores, "AU", AU_NAMES, folder / "per_au_f1.png"),
        "per_class_f1": _plot_details(scores, "EXPR", EXPR_NAMES, folder / "per_class_f1.png"),
        "training_curves": _plot_curves(config, folder / "training_curves.png"),
    }
    figures.update(_plot_distributions(config, folder))
    report = _report_markdown(config, scores, thresholds, prepare, table, source, figures)
    (folder / "report.md").write_text(report, encoding="utf-8")
    return {"figures": sorted(figures), "rows": list(table.index)}


def results_table(scores: dict[str, Any]) -> pd.DataFrame:
    """Rows ``teacher``, ``student_k``, ``students (mean)``, ``ensemble``; one column per metric."""
    return pd.DataFrame.from_dict(score_rows(scores["models"], COLUMNS), orient="index")


#: The headline number of each task, for the plain-words comparison with the teacher.
HEADLINES = (("AU", "AU score"), ("EXPR", "EXPR score"), ("VA", "VA mean CCC"))


def findings(table: pd.DataFrame) -> str:
    """Say in words, task by task, whether the students' mean and the ensemble beat the teacher.

    Only what the table holds: a tie or a loss is said as plainly as a win.
    """
    if "teacher" not in table.index:
        return ""
    lines = []
    for name in ("students (mean)", "ensemble"):
        if name not in table.index:
            continue
        verdicts = []
        for task, column in HEADLINES:
            ours, teacher = table.at[name, column], table.at["teacher", column]
            word = "beats" if ours > teacher else "does not beat" if ours < teacher else "ties"
            verdicts.append(f"{task} {word} it ({ours:.4f} vs {teacher:.4f})")
        lines.append(f"- {name} vs the teacher: " + "; ".join(verdicts) + ".")
    return "\n".join(lines)


def _source(config: Config, prepare: dict[str, Any], scores: dict[str, Any]) -> str:
    frames = scores["n_frames"]
    split = scores.get("split", "validation")
    videos = scores.get("n_videos", prepare.get(f"{split}_videos", "?"))
    synthetic = config.data.synthetic
    if synthetic is not None:
        selection = " (epochs selected on the separate validation videos)" if split == "test" else ""
        return (
            f"Synthetic affect corpus (preset `{synthetic.preset}`, seed {synthetic.seed}): {frames} frames "
            f"of {videos} held-out {split} videos, every task scored on every frame against the corpus's "
            f"complete hidden truth{selection}. {METRICS.format(tuned_on='the validation frames')}"
        )
    return (
        f"Aff-Wild2 validation set (the ABAW 2020 protocol: the test labels are withheld): {frames} frames "
        f"of {videos} videos, each task scored on the frames annotated for it. "
        f"{METRICS.format(tuned_on='these same frames, which flatters the tuned AU score')}"
    )


METRICS = (
    "AU score = 0.5 mean F1 + 0.5 accuracy with per-AU thresholds tuned on {tuned_on} (t=0.5: fixed "
    "threshold 0.5); EXPR score = 0.67 macro F1 + 0.33 accuracy; VA: concordance correlation (CCC)."
)


def _plot_details(scores: dict[str, Any], task: str, names: tuple[str, ...], path: Path) -> Path:
    models = [name for name in ("teacher", "ensemble") if name in scores["models"]]
    f1 = pd.DataFrame([scores["models"][name][task]["f1"] for name in models], index=models)[list(names)]
    kind = "action unit" if task == "AU" else "expression"
    return grouped_bars(f1, path, f"{task}: F1 per {kind}", ylabel="F1", ylim=(0, 1))


def _training_histories(config: Config) -> dict[str, pd.DataFrame]:
    histories = {}
    for path in [
        config.stage_dir("teacher") / "metrics.csv",
        *sorted(config.stage_dir("students").glob("student_*/metrics.csv")),
    ]:
        if path.is_file():
            histories[path.parent.name] = pd.read_csv(path)
    return histories


def _plot_curves(config: Config, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    histories = _training_histories(config)
    panels = ["train_loss", *(f"val/{task}/score" for task in ("AU", "EXPR", "VA"))]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.4))
    for ax, column in zip(axes, panels, strict=True):
        for name, history in histories.items():
            if column in history:
                ax.plot(history["epoch"] + 1, history[column], marker="o", label=name)
        ax.set_title(column)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plot_distributions(config: Config, folder: Path) -> dict[str, Path]:
    from emotion.prepare import plot_balancing

    return plot_balancing(config.stage_dir("prepare"), folder)


def _report_markdown(
    config: Config,
    scores: dict[str, Any],
    thresholds: dict[str, dict[str, float]],
    prepare: dict[str, Any],
    table: pd.DataFrame,
    source: str,
    figures: dict[str, Path],
) -> str:
    model_names = list(scores["models"])
    per_au = pd.DataFrame({name: scores["models"][name]["AU"]["f1"] for name in model_names}).T
    per_class = pd.DataFrame({name: scores["models"][name]["EXPR"]["f1"] for name in model_names}).T
    threshold_table = pd.DataFrame(thresholds).T
    training = config.training
    timing = {
        stage: (read_marker(config.stage_dir(stage)) or {}).get("seconds")
        for stage in ("prepare", "teacher", "students", "evaluate")
    }
    lines = [
        f"# Multitask emotion recognition with incomplete labels: run `{config.name}`",
        "",
        f"Backbone `{config.model.backbone}` (weights: {config.model.weights or 'random initialisation'}), "
        f"{config.data.image_size} px inputs; teacher {training.teacher.epochs} epochs, "
        f"{training.students.count} students of {training.students.epochs} epochs "
        f"(lambda {training.students.lam}, T {training.students.temperature}, soft labels "
        f"{training.students.soft_labels}); N = {training.batch_per_task} samples per task per batch; "
        f"Adam lr {training.lr:g}, multiplied by {training.lr_gamma:g} every {training.lr_step_epochs} "
        "epochs.",
        "",
        "## Results",
        "",
        source,
        "",
        markdown_table(table),
        "",
        findings(table),
        "",
        "![Figure 5](figure5.png)",
        "",
        "## Data",
        "",
        _markdown_counts(prepare),
        "",
        *(f"![{name}]({figures[name].name})" for name in sorted(figures) if name.startswith("figure2")),
        "",
        "## Per action unit (F1, tuned thresholds)",
        "",
        markdown_table(per_au),
        "",
        "![per-AU F1](per_au_f1.png)",
        "",
        "## Per expression (F1)",
        "",
        markdown_table(per_class),
        "",
        "![per-class F1](per_class_f1.png)",
        "",
        "## AU decision thresholds (tuned on validation, per model)",
        "",
        markdown_table(threshold_table, digits=3),
        "",
        "## Training",
        "",
        "Seconds per stage: " + ", ".join(f"{k} {v:.0f}" for k, v in timing.items() if v is not None) + ".",
        "",
        "![training curves](training_curves.png)",
        "",
    ]
    return "\n".join(lines)


def _markdown_counts(prepare: dict[str, Any]) -> str:
    lines = [
        "| task | source | labelled rows | down-sampling step | training rows | balanced list |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for task, info in prepare["tasks"].items():
        for source, counts in info["sources"].items():
            lines.append(f"| {task} | {source} | {counts['rows']} | {counts['step']} | {counts['kept']} | |")
        lines.append(f"| {task} | **merged** | | | {info['rows']} | {info['balanced']} |")
    lines.append(f"| validation | aff_wild2 | {prepare['validation_frames']} frames | | | |")
    return "\n".join(lines)
