"""The report's plain-words comparison with the teacher (examples/emotion/report.py) and the result tables
that report, experiments and study share (examples/emotion/results.py)."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

from emotion.report import findings, results_table
from emotion.results import PAPER_COLUMNS, figure5, markdown_table, score_rows


def test_findings_say_where_the_students_do_not_beat_the_teacher():
    table = pd.DataFrame(
        {"AU score": [0.70, 0.65, 0.72], "EXPR score": [0.30, 0.35, 0.30], "VA mean CCC": [0.2, 0.25, 0.3]},
        index=["teacher", "students (mean)", "ensemble"],
    )
    lines = findings(table).splitlines()
    assert lines[0] == (
        "- students (mean) vs the teacher: AU does not beat it (0.6500 vs 0.7000); "
        "EXPR beats it (0.3500 vs 0.3000); VA beats it (0.2500 vs 0.2000)."
    )
    assert lines[1].startswith("- ensemble vs the teacher: AU beats it (0.7200 vs 0.7000); EXPR ties it")


def test_no_findings_without_a_teacher():
    assert findings(pd.DataFrame({"AU score": [0.5]}, index=["ensemble"])) == ""


def scores(au: float, valence: float = 0.2) -> dict:
    return {
        "AU": {"score": au, "mean_f1": au - 0.1},
        "AU@0.5": {"score": au - 0.05},
        "EXPR": {"score": 0.3, "macro_f1": 0.25},
        "VA": {"score": valence, "ccc": {"valence": valence, "arousal": 0.1}},
    }


EVALUATED = {
    "models": {
        "teacher": scores(0.6),
        "student_0": scores(0.5, valence=0.1),
        "student_1": scores(0.7, valence=0.4),
        "ensemble": scores(0.8),
    },
    "students": ["student_0", "student_1"],
}


def test_rows_put_the_students_mean_before_the_ensemble():
    rows = score_rows(EVALUATED["models"], PAPER_COLUMNS)
    assert list(rows) == ["teacher", "student_0", "student_1", "students (mean)", "ensemble"]
    assert rows["students (mean)"]["AU"] == 0.6 and rows["students (mean)"]["Valence"] == 0.25
    assert list(score_rows({"teacher": scores(0.6)}, PAPER_COLUMNS)) == ["teacher"]  # no students, no mean
    table = results_table(EVALUATED)
    assert table.loc["students (mean)", "AU score (t=0.5)"] == pytest.approx(0.55)
    assert list(table.index) == list(rows)


def test_a_missing_number_is_an_empty_cell():
    single_task = {"AU": {"score": 0.61234}}  # scored on its task only
    table = pd.DataFrame(score_rows({"AU CNN": single_task, "teacher": scores(0.6)}, PAPER_COLUMNS)).T
    lines = markdown_table(table).splitlines()
    assert lines[0] == "| model | AU | EXPR | Valence | Arousal |"
    assert lines[2] == "| AU CNN | 0.6123 |  |  |  |"
    assert lines[3] == "| teacher | 0.6000 | 0.3000 | 0.2000 | 0.1000 |"
    assert markdown_table(pd.DataFrame({"t": [np.nan, 0.25]}, index=["a", "b"]), digits=1).splitlines()[
        2:
    ] == [
        "| a |  |",
        "| b | 0.2 |",
    ]


def test_figure5_has_one_row_per_model_and_draws_them(tmp_path):
    rows = figure5(EVALUATED, tmp_path / "figure5.png", single_task=scores(0.55))
    assert list(rows) == ["single-task CNN", "multitask teacher", "students (mean)", "student ensemble"]
    assert rows["student ensemble"]["AU"] == 0.8 and rows["students (mean)"]["Valence"] == 0.25
    assert (tmp_path / "figure5.png").stat().st_size > 1000
    without = figure5({"models": {"teacher": scores(0.6)}}, tmp_path / "teacher.png")
    assert list(without) == ["multitask teacher"]  # the report's: no single-task CNN, no students
