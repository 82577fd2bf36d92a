"""mtl_distill.study: Student-t intervals, paired differences over seeds, the summary tables."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from mtl_distill.study import confidence_interval, paired_difference, student_t_quantile, summarize


@pytest.mark.parametrize("df", [1, 2, 4, 9, 29, 250, 0.5, 3.5])
@pytest.mark.parametrize("probability", [0.5, 0.8, 0.95, 0.975, 0.995, 0.9999, 0.025])
def test_t_quantile_matches_scipy(df, probability):
    assert student_t_quantile(probability, df) == pytest.approx(
        stats.t.ppf(probability, df), rel=1e-9, abs=1e-12
    )


def test_t_quantile_rejects_impossible_arguments():
    with pytest.raises(ValueError, match="probability"):
        student_t_quantile(1.0, 4)
    with pytest.raises(ValueError, match="df"):
        student_t_quantile(0.9, 0)


def test_interval_matches_scipy_t_interval():
    values = np.array([0.71, 0.69, 0.75, 0.70, 0.73, 0.68])
    interval = confidence_interval(values, confidence=0.9)
    low, high = stats.t.interval(0.9, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
    assert (interval.mean, interval.n) == (pytest.approx(values.mean()), 6)
    assert (interval.low, interval.high) == (pytest.approx(low), pytest.approx(high))


def test_interval_of_one_value_is_undefined_and_formats_as_the_mean():
    interval = confidence_interval([0.5])
    assert math.isnan(interval.low) and math.isnan(interval.high)
    assert interval.format() == "0.500" and not interval.excludes_zero()


def test_non_finite_values_are_refused():
    with pytest.raises(ValueError, match="finite"):
        confidence_interval([0.1, float("nan")])


def test_paired_difference_cancels_the_seed_effect():
    # The seed moves both models by a lot; model a is always 0.01 better: paired, that is certain.
    seed_effect = np.array([0.0, 0.2, -0.15, 0.1, 0.05])
    b = 0.5 + seed_effect
    a = b + 0.01 + np.array([0.001, -0.001, 0.0, 0.002, -0.002])
    paired = paired_difference(a, b)
    unpaired = confidence_interval(a).mean - confidence_interval(b).mean
    assert paired.mean == pytest.approx(unpaired)
    assert paired.excludes_zero() and paired.low > 0.005
    assert (paired.wins, paired.ties, paired.losses) == (5, 0, 0)
    # Compared unpaired, the seed effect swamps the gain: the intervals overlap widely.
    assert confidence_interval(a).low < confidence_interval(b).high


def test_paired_difference_needs_equal_lengths():
    with pytest.raises(ValueError, match="same length"):
        paired_difference([1.0, 2.0], [1.0])


def test_summarize_pairs_by_seed_and_skips_missing_seeds():
    scores = {
        seed: {"teacher": {"f1": 0.8 + 0.01 * seed, "ccc": 0.5}, "student": {"f1": 0.82 + 0.01 * seed}}
        for seed in range(4)
    }
    scores[4] = {"teacher": {"f1": 0.9, "ccc": 0.5}}  # the student of seed 4 did not finish
    summary = summarize(scores, [("student", "teacher")])
    assert summary.models == ["teacher", "student"] and summary.metrics == ["f1", "ccc"]
    assert summary.intervals["teacher"]["f1"].n == 5
    assert summary.intervals["student"]["f1"].n == 4
    difference = summary.differences["student", "teacher"]["f1"]
    assert difference.n == 4 and difference.mean == pytest.approx(0.02) and difference.wins == 4
    assert "ccc" not in summary.differences["student", "teacher"]  # the student has no ccc


def test_summarize_names_an_unknown_model():
    with pytest.raises(ValueError, match="'ensemble' has no scores"):
        summarize({0: {"teacher": {"f1": 1.0}}}, [("ensemble", "teacher")])


def test_markdown_bolds_differences_whose_interval_excludes_zero():
    scores = {
        seed: {
            "teacher": {"f1": 0.8 + 0.01 * seed, "ccc": 0.5 + 0.01 * seed},
            "student": {"f1": 0.81 + 0.01 * seed, "ccc": 0.5 + 0.01 * seed + 0.01 * (-1) ** seed},
        }
        for seed in range(5)
    }
    text = summarize(scores, [("student", "teacher")]).to_markdown(metric_names={"f1": "F1"})
    assert "over 5 seeds (0, 1, 2, 3, 4)" in text
    assert "| model | F1 | ccc |" in text
    row = next(line for line in text.splitlines() if line.startswith("| student − teacher"))
    f1_cell, ccc_cell = row.split("|")[2:4]
    assert f1_cell.strip() == "**+0.010 ± 0.000** (5/5)"
    assert not ccc_cell.strip().startswith("**") and ccc_cell.strip().endswith("(3/5)")


def test_differences_table_gathers_chosen_pairs_under_their_labels():
    scores = {
        seed: {
            "teacher": {"f1": 0.8 + 0.01 * seed},
            "kd": {"f1": 0.81 + 0.01 * seed},
            "online": {"f1": 0.8 + 0.01 * seed + 0.01 * (-1) ** seed},
        }
        for seed in range(5)
    }
    summary = summarize(scores, [("kd", "teacher"), ("online", "teacher")])
    lines = summary.differences_table(
        {"kd": ("kd", "teacher"), "online": ("online", "teacher")},
        metric_names={"f1": "F1"},
        header="variant",
    ).splitlines()
    assert lines[:2] == ["| variant | F1 |", "| --- | ---: |"]
    assert lines[2] == "| kd | **+0.010 ± 0.000** (5/5) |"
    assert lines[3].startswith("| online | +0.002 ± ") and lines[3].endswith("(3/5) |")
    with pytest.raises(ValueError, match=r"no paired differences for \[\('teacher', 'kd'\)\]"):
        summary.differences_table({"reversed": ("teacher", "kd")})


def test_compare_variants_answers_each_question_per_variant():
    from mtl_distill.study import compare_variants

    scores = {}
    for seed in range(5):
        scores[seed] = {
            "teacher": {"f1": 0.80},
            "teacher (short)": {"f1": 0.70},
            "kd: students (mean)": {"f1": 0.82},
            "kd: ensemble": {"f1": 0.83},
            "plain: students (mean)": {"f1": 0.80 + 0.01 * (-1) ** seed},
            "plain: ensemble": {"f1": 0.81},
            "short: students (mean)": {"f1": 0.69},
            "short: ensemble": {"f1": 0.70},
        }
    text = compare_variants(
        scores, ["kd", "plain", "short"], control="plain", teachers={"short": "teacher (short)"}
    )
    assert "students' mean − teacher:" in text and "students' mean − plain's:" in text
    assert "| short | **-0.010 ± 0.000** (0/5) |" in text  # against its own (short) teacher
    control = text[text.index("students' mean − plain's:") :]
    assert "| kd | **+0.018 ± 0.014** (5/5) |" in control  # plain: 0.81, 0.79, 0.81, 0.79, 0.81
    assert "| short |" not in control  # another teacher: no row against the control
    ensembles = text[text.index("ensemble − plain's:") :]
    assert ensembles.splitlines()[4:] == ["| kd | **+0.020 ± 0.000** (5/5) |"]
    with pytest.raises(ValueError, match="control 'none' is not one of the variants"):
        compare_variants(scores, ["kd"], control="none")


def test_parse_seeds_reads_ranges_and_lists_and_names_bad_text():
    from mtl_distill.study import parse_seeds

    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("0, 2,5-6") == [0, 2, 5, 6]
    with pytest.raises(ValueError, match="seeds must look like 0-4 or 0,1,5, got 'a-b'"):
        parse_seeds("a-b")
    with pytest.raises(ValueError, match=r"distinct.*got '1,0-2'"):
        parse_seeds("1,0-2")
    with pytest.raises(ValueError, match="got '3-1'"):  # an empty range names no seed
        parse_seeds("3-1")


def test_run_seeds_calls_once_per_seed_in_order_here_and_in_processes():
    import operator

    import torch

    from mtl_distill.study import run_seeds

    finished = []
    assert run_seeds(
        operator.neg, [3, 1, 2], on_done=lambda seed, result: finished.append((seed, result))
    ) == {
        3: -3,
        1: -1,
        2: -2,
    }
    assert finished == [(3, -3), (1, -1), (2, -2)]
    # In processes the seeds finish in any order; the result keeps the order asked for.
    assert list(run_seeds(operator.neg, [5, 4, 6], jobs=2).items()) == [(5, -5), (4, -4), (6, -6)]

    before = torch.get_num_threads()
    assert run_seeds(lambda seed: torch.get_num_threads(), [0], threads=1) == {0: 1}
    assert torch.get_num_threads() == before  # restored


def test_run_seeds_raises_a_seeds_error_and_refuses_bad_counts():
    import math

    from mtl_distill.study import run_seeds

    with pytest.raises(ValueError, match="factorial"):  # math.factorial(-1), raised in a worker
        run_seeds(math.factorial, [2, -1], jobs=2)
    with pytest.raises(ValueError, match="jobs must be >= 1, got 0"):
        run_seeds(abs, [0], jobs=0)
    with pytest.raises(ValueError, match="threads must be >= 1, got 0"):
        run_seeds(abs, [0], threads=0)


def _plotted_study():
    # kd wins on f1 in every seed (interval above zero), loses on ccc (below), and alternates on loss
    scores = {
        s: {
            "t": {"f1": 0.8, "ccc": 0.5, "loss": 1.0},
            "kd": {"f1": 0.81 + s / 1000, "ccc": 0.49 - s / 1000, "loss": 1.0 + (-1) ** s / 100},
            "cached": {"f1": 0.80 + s / 500, "ccc": 0.5, "loss": 1.0},
        }
        for s in range(5)
    }
    return summarize(scores, [("kd", "t"), ("cached", "t")])


def test_plot_draws_a_point_per_pair_and_metric_coloured_by_its_interval(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    drawn = {}
    save = Figure.savefig
    monkeypatch.setattr(
        Figure, "savefig", lambda fig, *a, **k: (drawn.setdefault("fig", fig), save(fig, *a, **k))
    )
    path = _plotted_study().plot(tmp_path / "study.png")
    assert path == tmp_path / "study.png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    axes = drawn["fig"].axes
    assert [ax.get_title() for ax in axes] == ["f1", "ccc", "loss"]
    assert [label.get_text() for label in axes[0].get_yticklabels()] == ["kd − t", "cached − t"]
    colours = [[line.get_color() for line in ax.lines if line.get_marker() == "o"] for ax in axes]
    # cached's ccc and loss equal the teacher's in every seed: a zero-width interval on zero, grey
    assert colours == [["tab:green", "tab:green"], ["tab:red", "tab:gray"], ["tab:gray", "tab:gray"]]


def test_plot_picks_pairs_and_names_an_unknown_one(tmp_path):
    summary = _plotted_study()
    summary.plot(tmp_path / "one.pdf", pairs=[("cached", "t")])
    assert (tmp_path / "one.pdf").read_bytes()[:4] == b"%PDF"
    with pytest.raises(ValueError, match=r"no paired differences for \[\('t', 'kd'\)\]"):
        summary.plot(tmp_path / "bad.png", pairs=[("t", "kd")])
    assert not (tmp_path / "bad.png").exists()
