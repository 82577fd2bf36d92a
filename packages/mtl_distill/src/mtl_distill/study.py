"""Comparing trainings over seeds: means with confidence intervals and paired differences.

One training run says little: on small problems the seed-to-seed spread of a single model is often larger
than the gap between two methods. A *study* repeats every method with the same seeds and compares them
seed by seed. The input is a table of per-seed scores::

    scores = {
        0: {"teacher": {"digit": 0.93, "shape": 0.66}, "students (mean)": {"digit": 0.94, "shape": 0.67}},
        1: {...},
        ...
    }

that is ``{seed: {model: {metric: value}}}``. :func:`summarize` gives, per model and metric, the mean over
seeds with a Student-t confidence interval, and for each requested pair of models the **paired**
differences (computed seed by seed, so that what the seed changes for both models cancels), their
interval, and on how many seeds the first model won. :meth:`StudySummary.to_markdown` writes both as
Markdown tables.

The intervals are ``mean +- t_{(1 + confidence) / 2, n - 1} * sd / sqrt(n)`` with the sample standard
deviation (``ddof=1``); with one seed the interval is undefined (NaN).
"""

from __future__ import annotations

import math
import multiprocessing
import platform
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from mtl_distill._optional import require

__all__ = [
    "Interval",
    "PairedDifference",
    "StudySummary",
    "compare_variants",
    "confidence_interval",
    "cpu_model",
    "paired_difference",
    "parse_seeds",
    "run_seeds",
    "student_t_quantile",
    "summarize",
]

Result = TypeVar("Result")

SeedScores = Mapping[int | str, Mapping[str, Mapping[str, float]]]


@dataclass(frozen=True)
class Interval:
    """The mean of ``n`` values and its two-sided confidence interval ``[low, high]``."""

    mean: float
    low: float
    high: float
    n: int
    confidence: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def excludes_zero(self) -> bool:
        """Whether the whole interval lies above or below zero (a difference that holds over seeds)."""
        return bool(self.low > 0 or self.high < 0)

    def format(self, digits: int = 3, sign: bool = False) -> str:
        """``"0.812 ± 0.014"`` (``sign=True``: ``"+0.012 ± 0.009"``); the mean alone when ``n < 2``."""
        spec = f"{'+' if sign else ''}.{digits}f"
        if not math.isfinite(self.half_width):
            return format(self.mean, spec)
        return f"{format(self.mean, spec)} ± {self.half_width:.{digits}f}"


@dataclass(frozen=True)
class PairedDifference(Interval):
    """Seed-by-seed differences ``a - b``: their mean and interval, and how often ``a`` won, tied or lost."""

    wins: int = 0
    ties: int = 0
    losses: int = 0


def student_t_quantile(probability: float, df: float) -> float:
    """Quantile of Student's t distribution with ``df`` degrees of freedom (inverse of its CDF).

    Computed by bisection on the CDF (from the regularised incomplete beta function), to about 1e-12.

    Example
    -------
    >>> round(student_t_quantile(0.975, 4), 4)  # the 95% interval of 5 seeds
    2.7764
    """
    if not 0.0 < probability < 1.0:
        raise ValueError(f"probability must lie in (0, 1), got {probability!r}")
    if not df > 0:
        raise ValueError(f"df must be > 0, got {df!r}")
    if probability < 0.5:
        return -student_t_quantile(1.0 - probability, df)
    low, high = 0.0, 1.0
    while _student_t_cdf(high, df) < probability:
        high *= 2.0
    for _ in range(200):
        middle = (low + high) / 2
        if _student_t_cdf(middle, df) < probability:
            low = middle
        else:
            high = middle
        if high - low <= 1e-13 * max(1.0, high):
            break
    return (low + high) / 2


def confidence_interval(values: Iterable[float], confidence: float = 0.95) -> Interval:
    """Mean of ``values`` with its Student-t confidence interval (NaN bounds for fewer than 2 values).

    Example
    -------
    >>> interval = confidence_interval([0.80, 0.82, 0.81, 0.83, 0.79])
    >>> round(interval.mean, 3), round(interval.low, 4), round(interval.high, 4)
    (0.81, 0.7904, 0.8296)
    """
    array = _finite_values(values, "values")
    _check_confidence(confidence)
    n = len(array)
    mean = float(array.mean()) if n else math.nan
    if n < 2:
        return Interval(mean, math.nan, math.nan, n, confidence)
    half = student_t_quantile((1 + confidence) / 2, n - 1) * float(array.std(ddof=1)) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, confidence)


def paired_difference(a: Iterable[float], b: Iterable[float], confidence: float = 0.95) -> PairedDifference:
    """The differences ``a[i] - b[i]`` of paired values (the same seed): mean, interval, wins / ties / losses.

    Example
    -------
    >>> difference = paired_difference([0.84, 0.86, 0.85, 0.83, 0.88], [0.82, 0.85, 0.83, 0.83, 0.85])
    >>> difference.format(sign=True), (difference.wins, difference.ties, difference.losses)
    ('+0.016 ± 0.014', (4, 1, 0))
    """
    first, second = _finite_values(a, "a"), _finite_values(b, "b")
    if first.shape != second.shape:
        raise ValueError(f"paired values need the same length, got {len(first)} and {len(second)}")
    differences = first - second
    interval = confidence_interval(differences, confidence)
    return PairedDifference(
        interval.mean,
        interval.low,
        interval.high,
        interval.n,
        confidence,
        wins=int((differences > 0).sum()),
        ties=int((differences == 0).sum()),
        losses=int((differences < 0).sum()),
    )


@dataclass
class StudySummary:
    """What :func:`summarize` found.

    Attributes
    ----------
    seeds : list
        The seeds of the table, in order.
    models, metrics : list of str
        Row and column order of the tables.
    intervals : dict
        ``intervals[model][metric]``: the :class:`Interval` of that model's scores over the seeds it has.
    differences : dict
        ``differences[(a, b)][metric]``: the :class:`PairedDifference` ``a - b`` over the seeds both have.
    confidence : float
    """

    seeds: list
    models: list[str]
    metrics: list[str]
    intervals: dict[str, dict[str, Interval]]
    differences: dict[tuple[str, str], dict[str, PairedDifference]] = field(default_factory=dict)
    confidence: float = 0.95

    def to_markdown(self, digits: int = 3, metric_names: Mapping[str, str] | None = None) -> str:
        """Two Markdown tables: per model the mean ± half-width, and per comparison the paired difference
        ± half-width with the seeds won (``wins/n``)."""
        names = [(metric_names or {}).get(metric, metric) for metric in self.metrics]
        level = f"{self.confidence:.0%}"
        lines = [
            f"Mean ± half-width of the {level} interval over {len(self.seeds)} seeds "
            f"({', '.join(map(str, self.seeds))}):",
            "",
            _row(["model", *names]),
            _row(["---", *["---:"] * len(names)]),
        ]
        for model in self.models:
            cells = [
                self.intervals[model][m].format(digits) if m in self.intervals[model] else ""
                for m in self.metrics
            ]
            lines.append(_row([model, *cells]))
        if self.differences:
            lines += [
                "",
                f"Paired differences (seed by seed), mean ± half-width of the {level} interval, and the "
                "seeds won; **bold** where the interval excludes zero:",
                "",
                self.differences_table(
                    {f"{a} − {b}": (a, b) for a, b in self.differences}, digits, metric_names, "comparison"
                ),
            ]
        return "\n".join(lines) + "\n"

    def differences_table(
        self,
        rows: Mapping[str, tuple[str, str]],
        digits: int = 3,
        metric_names: Mapping[str, str] | None = None,
        header: str = "",
    ) -> str:
        """One Markdown table of chosen paired differences, a row per label: ``rows`` maps a row's label to
        a compared pair ``(a, b)`` of :attr:`differences`. Each cell is ``mean ± half-width (wins/n)``,
        **bold** where the interval excludes zero; a metric the pair lacks is an empty cell.

        Example
        -------
        >>> scores = {s: {"t": {"f1": 0.8 + s / 100}, "kd": {"f1": 0.81 + s / 100}} for s in range(5)}
        >>> print(summarize(scores, [("kd", "t")]).differences_table({"kd": ("kd", "t")}))
        |  | f1 |
        | --- | ---: |
        | kd | **+0.010 ± 0.000** (5/5) |
        """
        missing = [pair for pair in rows.values() if tuple(pair) not in self.differences]
        if missing:
            raise ValueError(f"no paired differences for {missing}; the summary has {list(self.differences)}")
        names = [(metric_names or {}).get(metric, metric) for metric in self.metrics]
        lines = [_row([header, *names]), _row(["---", *["---:"] * len(names)])]
        for label, pair in rows.items():
            per_metric = self.differences[tuple(pair)]
            cells = []
            for metric in self.metrics:
                difference = per_metric.get(metric)
                if difference is None:
                    cells.append("")
                    continue
                text = difference.format(digits, sign=True)
                if difference.excludes_zero():
                    text = f"**{text}**"
                cells.append(f"{text} ({difference.wins}/{difference.n})")
            lines.append(_row([label, *cells]))
        return "\n".join(lines)

    def plot(self, path: str | Path, pairs: Sequence[tuple[str, str]] | None = None) -> Path:
        """Draw the paired differences into an image file: a panel per metric, a row per compared pair, each
        difference's mean with its interval (green where it lies above zero, red below, grey across it).

        ``pairs`` picks and orders the compared pairs (default: every pair of :attr:`differences`). Needs
        matplotlib (``pip install "mtl-distill[plot]"``); the format follows the file's suffix.

        Example
        -------
        >>> import tempfile
        >>> scores = {s: {"t": {"f1": 0.8 + s / 100}, "kd": {"f1": 0.81 + s / 99}} for s in range(5)}
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = summarize(scores, [("kd", "t")]).plot(Path(folder) / "summary.png")
        ...     path.stat().st_size > 0
        True
        """
        require("matplotlib", "matplotlib", "StudySummary.plot")
        import matplotlib

        matplotlib.use("Agg")  # files only: no display is needed, and none is opened
        import matplotlib.pyplot as plt

        pairs = [tuple(pair) for pair in (self.differences if pairs is None else pairs)]
        missing = [pair for pair in pairs if pair not in self.differences]
        if missing or not pairs:
            raise ValueError(
                f"no paired differences for {missing or 'any pair'}; the summary has {list(self.differences)}"
            )
        fig, axes = plt.subplots(
            1, len(self.metrics), figsize=(3.2 * len(self.metrics), 0.5 * len(pairs) + 1.6), squeeze=False
        )
        for ax, metric in zip(axes[0], self.metrics, strict=True):
            for row, pair in enumerate(pairs):
                difference = self.differences[pair].get(metric)
                if difference is None:
                    continue
                error = difference.half_width if difference.n > 1 else 0.0
                colour = "tab:gray"
                if difference.excludes_zero():
                    colour = "tab:green" if difference.mean > 0 else "tab:red"
                ax.errorbar(difference.mean, row, xerr=error, fmt="o", color=colour, capsize=3)
            ax.axvline(0.0, color="black", linewidth=0.8)
            ax.set_yticks(range(len(pairs)), [f"{a} − {b}" for a, b in pairs] if ax is axes[0][0] else [])
            ax.set_ylim(len(pairs) - 0.5, -0.5)  # the first pair on top, as in the tables
            ax.set_title(metric)
            ax.grid(axis="x", alpha=0.3)
        fig.suptitle(
            f"paired differences over {len(self.seeds)} seeds, mean and {self.confidence:.0%} interval",
            fontsize="medium",
        )
        fig.tight_layout()
        path = Path(path)
        try:
            fig.savefig(path, dpi=110)
        finally:
            plt.close(fig)
        return path


def summarize(
    scores: SeedScores,
    comparisons: Sequence[tuple[str, str]] = (),
    *,
    models: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    confidence: float = 0.95,
) -> StudySummary:
    """Means with confidence intervals per model and metric, and paired differences between models.

    Parameters
    ----------
    scores : mapping
        ``{seed: {model: {metric: value}}}``. A model or metric missing for some seed is summarised over
        the seeds that have it (and a difference over the seeds that have both); non-finite values raise.
    comparisons : sequence of (str, str)
        Pairs ``(a, b)`` whose seed-by-seed differences ``a - b`` are summarised.
    models, metrics : sequence of str, optional
        Which to include, in this order (default: all, in order of first appearance).
    confidence : float, default 0.95

    Example
    -------
    >>> scores = {
    ...     seed: {"teacher": {"f1": 0.80 + 0.01 * seed}, "student": {"f1": 0.811 + 0.01 * seed}}
    ...     for seed in range(5)
    ... }
    >>> summary = summarize(scores, [("student", "teacher")])
    >>> summary.differences["student", "teacher"]["f1"].format(sign=True)
    '+0.011 ± 0.000'
    """
    _check_confidence(confidence)
    if not scores:
        raise ValueError("scores is empty: need {seed: {model: {metric: value}}} for at least one seed")
    seeds = list(scores)
    found_models, found_metrics = [], []
    for seed in seeds:
        if not isinstance(scores[seed], Mapping):
            raise TypeError(f"scores[{seed!r}] must map model names to {{metric: value}}")
        for model, values in scores[seed].items():
            if model not in found_models:
                found_models.append(model)
            if not isinstance(values, Mapping):
                raise TypeError(f"scores[{seed!r}][{model!r}] must map metric names to values")
            found_metrics.extend(metric for metric in values if metric not in found_metrics)
    models = list(models) if models is not None else found_models
    metrics = list(metrics) if metrics is not None else found_metrics
    for name in {name for pair in comparisons for name in pair} | set(models):
        if name not in found_models:
            raise ValueError(f"model {name!r} has no scores; the table has {found_models}")

    def series(model: str, metric: str) -> dict:
        return {
            seed: scores[seed][model][metric]
            for seed in seeds
            if model in scores[seed] and metric in scores[seed][model]
        }

    intervals = {
        model: {
            metric: confidence_interval(values.values(), confidence)
            for metric in metrics
            if (values := series(model, metric))
        }
        for model in models
    }
    differences = {}
    for a, b in comparisons:
        per_metric = {}
        for metric in metrics:
            first, second = series(a, metric), series(b, metric)
            common = [seed for seed in first if seed in second]
            if common:
                per_metric[metric] = paired_difference(
                    [first[seed] for seed in common], [second[seed] for seed in common], confidence
                )
        differences[(a, b)] = per_metric
    return StudySummary(seeds, models, metrics, intervals, differences, confidence)


#: The questions :func:`compare_variants` answers, each a pair of a variant's rows (``None``: its teacher).
VARIANT_QUESTIONS = (
    ("students' mean − teacher", "students (mean)", None),
    ("ensemble − teacher", "ensemble", None),
    ("ensemble − students' mean", "ensemble", "students (mean)"),
)


def compare_variants(
    scores: SeedScores,
    variants: Sequence[str],
    *,
    control: str | None = None,
    teachers: Mapping[str, str] | None = None,
    metrics: Sequence[str] | None = None,
    metric_names: Mapping[str, str] | None = None,
    digits: int = 3,
    confidence: float = 0.95,
) -> str:
    """Markdown tables comparing ways of training students over seeds, one table per question and a row per
    variant: students' mean − teacher, ensemble − teacher, ensemble − students' mean, and with ``control``
    each variant's students' mean − the control's (did the soft labels add anything to another run?) and
    ensemble − the control's (did they add anything to an ensemble of other runs?), for the variants that
    share the control's teacher.

    ``scores`` is :func:`summarize`'s input holding, per seed, ``"teacher"`` (or ``teachers[variant]``)
    and for each variant ``"<variant>: students (mean)"`` and ``"<variant>: ensemble"``.

    Example
    -------
    >>> scores = {s: {"teacher": {"f1": 0.8}, "kd: students (mean)": {"f1": 0.81 + s / 1000},
    ...               "kd: ensemble": {"f1": 0.82}} for s in range(5)}
    >>> print(compare_variants(scores, ["kd"]).splitlines()[4])
    | kd | **+0.012 ± 0.002** (5/5) |
    """
    teachers = teachers or {}
    questions: dict[str, dict[str, tuple[str, str]]] = {}
    for question, first, second in VARIANT_QUESTIONS:
        questions[question] = {
            name: (f"{name}: {first}", f"{name}: {second}" if second else teachers.get(name, "teacher"))
            for name in variants
        }
    if control is not None:
        if control not in variants:
            raise ValueError(f"control {control!r} is not one of the variants {list(variants)}")
        compared = [
            name
            for name in variants
            if name != control and teachers.get(name, "teacher") == teachers.get(control, "teacher")
        ]
        for row, label in (("students (mean)", "students' mean"), ("ensemble", "ensemble")):
            questions[f"{label} − {control}'s"] = {
                name: (f"{name}: {row}", f"{control}: {row}") for name in compared
            }
    pairs = list(dict.fromkeys(pair for rows in questions.values() for pair in rows.values()))
    summary = summarize(scores, pairs, metrics=metrics, confidence=confidence)
    return "\n\n".join(
        f"{question}:\n\n{summary.differences_table(rows, digits, metric_names, 'variant')}"
        for question, rows in questions.items()
        if rows
    )


def cpu_model() -> str:
    """This machine's CPU model (Linux's ``model name``, else what :mod:`platform` knows), to print next to a
    study's table: float results differ between CPU models, so figures are only reproducible on the same one.

    Examples
    --------
    >>> isinstance(cpu_model(), str) and cpu_model() != ""
    True
    """
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def parse_seeds(text: str) -> list[int]:
    """Seeds written as ranges and lists: ``"0-4"`` -> ``[0, 1, 2, 3, 4]``, ``"0,2,5-6"`` -> ``[0, 2, 5, 6]``.

    Raises
    ------
    ValueError
        Naming ``text`` when it is not of that form or names a seed twice.

    Examples
    --------
    >>> parse_seeds("0-2,7")
    [0, 1, 2, 7]
    """
    seeds: list[int] = []
    try:
        for part in text.split(","):
            first, _, last = part.strip().partition("-")
            seeds.extend(range(int(first), int(last if last else first) + 1))
    except ValueError:
        raise ValueError(f"seeds must look like 0-4 or 0,1,5, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct and at least one, got {text!r}")
    return seeds


def run_seeds(
    work: Callable[[int], Result],
    seeds: Sequence[int],
    jobs: int = 1,
    *,
    threads: int | None = None,
    on_done: Callable[[int, Result], None] | None = None,
) -> dict[int, Result]:
    """Call ``work(seed)`` for every seed, ``jobs`` at a time; return ``{seed: result}`` in ``seeds`` order.

    With ``jobs`` > 1 the calls run in ``jobs`` spawned worker processes (each reused for several seeds),
    so ``work`` and its results must pickle: a module-level function, or a :func:`functools.partial` of one.
    Each call gets ``threads`` torch CPU threads, by default an equal share of this process's
    (``torch.get_num_threads() // jobs``, at least 1): a small model keeps one thread busy far better than
    two, so two seeds at once on two cores nearly halve the time of a study. With ``jobs`` = 1 the calls run
    here, one after the other, and the thread count is restored afterwards. ``on_done(seed, result)`` is
    called here as each seed finishes (in the order they finish); the first error of a call is raised here.

    Examples
    --------
    >>> run_seeds(abs, [-1, -2])
    {-1: 1, -2: 2}
    """
    import torch  # here: summarising a study needs no torch

    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    threads = threads if threads is not None else max(1, torch.get_num_threads() // jobs)
    results: dict[int, Result] = {}
    if jobs == 1:
        saved = torch.get_num_threads()
        try:
            for seed in seeds:
                results[seed] = _call_with_threads(work, threads, seed)
                if on_done is not None:
                    on_done(seed, results[seed])
        finally:
            torch.set_num_threads(saved)
    else:
        # spawn, not fork: a forked child would inherit this process's torch thread pools in whatever state.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(jobs, mp_context=context) as pool:
            futures = {pool.submit(_call_with_threads, work, threads, seed): seed for seed in seeds}
            for future in as_completed(futures):
                seed = futures[future]
                results[seed] = future.result()
                if on_done is not None:
                    on_done(seed, results[seed])
    return {seed: results[seed] for seed in seeds}


def _call_with_threads(work: Callable[[int], Result], threads: int, seed: int) -> Result:
    import torch

    torch.set_num_threads(threads)
    return work(seed)


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _finite_values(values: Iterable[float], what: str) -> np.ndarray:
    array = np.asarray(list(values), dtype=np.float64).reshape(-1)
    if not np.isfinite(array).all():
        raise ValueError(f"{what} must be finite, got {array.tolist()}")
    return array


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")


def _student_t_cdf(t: float, df: float) -> float:
    """P(T <= t) for t >= 0: 1 - I_x(df / 2, 1 / 2) / 2 with x = df / (df + t^2)."""
    return 1.0 - 0.5 * _regularized_beta(df / (df + t * t), df / 2, 0.5)


def _regularized_beta(x: float, a: float, b: float) -> float:
    """I_x(a, b) by its continued fraction (modified Lentz), using the symmetry for fast convergence."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x > (a + 1) / (a + b + 2):
        return 1.0 - _regularized_beta(1.0 - x, b, a)
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    fraction = d
    for m in range(1, 500):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            fraction *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return math.exp(log_front) * fraction / a
