"""The report's plain-words comparison with the teacher (examples/emotion/report.py)."""

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

from emotion.report import findings


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
