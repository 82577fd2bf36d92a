"""Result tables and bar plots of the emotion example, from the scores that ``evaluate`` and the experiments
write: score rows, the students' mean, the Markdown table, grouped bars and the paper's Figure 5.

The report, the experiments and the study all build their tables here, so a number reads the same in every
file, and a missing number (NaN: a task a model was not scored on) is an empty cell in every Markdown table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "PAPER_COLUMNS",
    "STUDENTS_MEAN",
    "figure5",
    "grouped_bars",
    "markdown_table",
    "score_row",
    "score_rows",
]

#: A table's columns: (title, task key in ``scores.json``, path to the number in that task's scores).
Columns = Sequence[tuple[str, str, tuple[str, ...]]]

#: The paper's four headline numbers (Table I, Figure 5, Table II).
PAPER_COLUMNS: Columns = (
    ("AU", "AU", ("score",)),
    ("EXPR", "EXPR", ("score",)),
    ("Valence", "VA", ("ccc", "valence")),
    ("Arousal", "VA", ("ccc", "arousal")),
)

#: The row of the students' mean, beside each student's own.
STUDENTS_MEAN = "students (mean)"


def score_row(scores: Mapping[str, Any], columns: Columns) -> dict[str, float]:
    """One model's numbers, ``{title: value}``, from its entry of ``scores.json`` (``{task: scores}``).

    A column whose task the model was not scored on (a single-task CNN) is left out.

    Example
    -------
    >>> score_row({"AU": {"score": 0.5}}, PAPER_COLUMNS)
    {'AU': 0.5}
    """
    row = {}
    for title, task, path in columns:
        if task in scores:
            value = scores[task]
            for key in path:
                value = value[key]
            row[title] = float(value)
    return row


def score_rows(models: Mapping[str, Mapping[str, Any]], columns: Columns) -> dict[str, dict[str, float]]:
    """A row per model of ``models`` (``scores.json``'s ``"models"``, in its order), and, when there are
    students (``student_<k>``), the row of their mean (:data:`STUDENTS_MEAN`) just before ``ensemble``.

    Example
    -------
    >>> models = {"teacher": {"AU": {"score": 0.5}}, "student_0": {"AU": {"score": 0.6}},
    ...           "student_1": {"AU": {"score": 0.7}}, "ensemble": {"AU": {"score": 0.8}}}
    >>> {name: round(row["AU"], 2) for name, row in score_rows(models, PAPER_COLUMNS).items()}
    {'teacher': 0.5, 'student_0': 0.6, 'student_1': 0.7, 'students (mean)': 0.65, 'ensemble': 0.8}
    """
    rows = {name: score_row(scores, columns) for name, scores in models.items()}
    students = [rows[name] for name in rows if name.startswith("student_")]
    if students:
        ensemble = rows.pop("ensemble", None)
        rows[STUDENTS_MEAN] = {
            title: float(np.mean([row[title] for row in students])) for title in students[0]
        }
        if ensemble is not None:
            rows["ensemble"] = ensemble
    return rows


def markdown_table(table: pd.DataFrame, digits: int = 4) -> str:
    """``table`` as a Markdown table: a row per index entry (the models), numbers with ``digits`` decimals,
    an empty cell where a number is missing (NaN)."""
    lines = ["| model | " + " | ".join(table.columns) + " |", "| --- |" + " ---: |" * len(table.columns)]
    for name, row in table.iterrows():
        cells = ("" if pd.isna(value) else f"{value:.{digits}f}" for value in row)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def grouped_bars(
    table: pd.DataFrame,
    path: Path,
    title: str,
    ylabel: str = "score",
    errors: Mapping[str, np.ndarray] | None = None,
    ylim: tuple[float, float] | None = None,
) -> Path:
    """Bar plot of ``table``: a group of bars per column, a bar per row (the models), saved as ``path``.

    ``errors`` maps a row to its ``[2, columns]`` error bar lengths (below, above).
    """
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(7.0, 1.1 * len(table), 1.1 * len(table.columns)), 4))
    width = 0.8 / len(table)
    x = np.arange(len(table.columns))
    colors = plt.get_cmap("tab10" if len(table) <= 10 else "tab20").colors
    for i, (name, row) in enumerate(table.iterrows()):
        offset = (i - (len(table) - 1) / 2) * width
        yerr = (errors or {}).get(name)
        ax.bar(
            x + offset, row.to_numpy(dtype=float), width, label=name, color=colors[i % len(colors)],
            yerr=yerr, capsize=3,
        )  # fmt: skip
    ax.set_xticks(x, table.columns)
    ax.set_ylabel(ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_title(title)
    ax.legend(fontsize="small", ncols=2)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def figure5(
    evaluated: Mapping[str, Any], path: Path, single_task: Mapping[str, Any] | None = None
) -> dict[str, dict[str, float]]:
    """The paper's Figure 5: the single-task CNN (when ``single_task``, its scores, is given), the multitask
    teacher, the students' mean (error bars: the best and the worst student) and the student ensemble.

    ``evaluated`` is ``evaluate``'s ``scores.json``. Draws the bars into ``path``; returns the rows.
    """
    models = score_rows(evaluated["models"], PAPER_COLUMNS)
    rows = {} if single_task is None else {"single-task CNN": score_row(single_task, PAPER_COLUMNS)}
    rows["multitask teacher"] = models["teacher"]
    errors = {}
    if STUDENTS_MEAN in models:
        rows[STUDENTS_MEAN] = models[STUDENTS_MEAN]
        rows["student ensemble"] = models["ensemble"]
        spread = pd.DataFrame([models[name] for name in models if name.startswith("student_")])
        mean = pd.Series(models[STUDENTS_MEAN])
        errors[STUDENTS_MEAN] = np.vstack([mean - spread.min(), spread.max() - mean])
    compared = "multitask CNNs" if single_task is None else "single-task vs multitask CNNs"
    title = f"Figure 5: {compared} (error bars: the best and the worst student)"
    grouped_bars(pd.DataFrame(rows).T, path, title, errors=errors)
    return rows
