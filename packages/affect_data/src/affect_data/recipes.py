"""The paper's merging and balancing recipes (section III-A) as data, and the code that applies them.

A recipe is a plain dict (so it can live in a YAML or JSON file): for each task, the sources to merge with
their temporal down-sampling step and the split they train from, and the balancing method of the ``imbalance``
package with its parameters; plus where the validation frames come from. :data:`PAPER_RECIPE` is the paper's:

- AU: Aff-Wild2 + DISFA (its 8 shared AUs), then ML-ROS. The paper does not state ML-ROS's percentage ``P``;
  25 is used (Charte et al. 2015 report P = 10, 20, 25; 25 is also ``imbalance.MLROS``'s default).
- EXPR: Aff-Wild2 down-sampled by 10 ("10 times larger than ExpW", so about ExpW's size) + ExpW, then every
  class the same probability per epoch (``ClassBalancedSampler``). ``"step": "auto"`` instead picks the step
  that brings a source to the size of the task's other sources.
- VA: Aff-Wild2 down-sampled by 5 + AFEW-VA, then 20 equal bins per dimension over [-1, 1], balanced over the
  joint 20 x 20 grid (as the authors' code) with each frame drawn at most 10 times per epoch (a cap the paper
  lacks: without it a lone frame in a rare cell such as (V, A) = (1, -1) would be repeated hundreds of times).
- Validation: Aff-Wild2's validation split only, every frame.

:func:`prepare_tasks` takes loaded frame tables (``{"aff_wild2": table, "disfa": table, ...}``, keyed by the
source names the recipe uses) and returns, per task, the merged training table (only rows with that task's
complete label), the validation table, and a balanced index list into the training table.
"""

from __future__ import annotations

import copy
import inspect
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from affect_data.schema import SPLITS, TASK_COLUMNS, as_frame_table
from affect_data.splits import temporal_downsample

PAPER_RECIPE: dict[str, Any] = {
    "tasks": {
        "AU": {
            "sources": {"aff_wild2": {"step": 1}, "disfa": {"step": 1}},
            "balance": {"method": "MLROS", "percentage": 25},
        },
        "EXPR": {
            "sources": {"aff_wild2": {"step": 10}, "expw": {"step": 1}},
            "balance": {"method": "ClassBalancedSampler"},
        },
        "VA": {
            "sources": {"aff_wild2": {"step": 5}, "afew_va": {"step": 1}},
            "balance": {"method": "BinnedSampler", "n_bins": 20, "joint": True, "max_repeats": 10},
        },
    },
    "validation": {"source": "aff_wild2", "split": "validation", "step": 1},
}

#: The ``imbalance`` resamplers that fit each task's target (AU: 0/1 matrix, EXPR: classes, VA: values).
BALANCE_METHODS: dict[str, tuple[str, ...]] = {
    "AU": ("MLROS", "MLRUS", "LPROS", "LPRUS"),
    "EXPR": ("ClassBalancedSampler",),
    "VA": ("BinnedSampler",),
}

_SOURCE_DEFAULTS = {"step": 1, "split": "train"}
_VALIDATION_DEFAULTS = {"source": "aff_wild2", "split": "validation", "step": 1}


@dataclass
class TaskData:
    """What :func:`prepare_task` produces for one task.

    Attributes
    ----------
    task : str
    train : pandas.DataFrame
        The merged training frame table (RangeIndex; every row has the task's complete label).
    validation : pandas.DataFrame
        The validation frame table (RangeIndex; every row has the task's complete label).
    indices : numpy.ndarray of int64
        A balanced, shuffled list of ``train`` rows for one epoch (all rows once when the recipe has no
        balancing).
    resampler : object or None
        The configured ``imbalance`` resampler, for drawing a new list every epoch, e.g.
        ``imbalance.torch.ResampledSampler(data.resampler, data.targets, seed=...)``.
    targets : numpy.ndarray
        The training targets in the form the resampler takes (AU: int8 [n, 8]; EXPR: int64 [n]; VA: [n, 2]).
    sources : dict
        Per source: ``rows`` labelled for the task in its training split, ``step`` applied, ``kept`` rows.
    """

    task: str
    train: pd.DataFrame
    validation: pd.DataFrame
    indices: np.ndarray
    resampler: Any
    targets: np.ndarray
    sources: dict[str, dict[str, int]] = field(default_factory=dict)


def check_recipe(recipe: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a recipe and return a normalised deep copy with the defaults filled in.

    Raises
    ------
    ValueError
        Naming the offending key by its path (e.g. ``tasks.AU.balance.percentag``) and what is allowed.

    Examples
    --------
    >>> check_recipe({"tasks": {"EXPR": {"sources": {"expw": {}}}}})["tasks"]["EXPR"]
    {'sources': {'expw': {'step': 1, 'split': 'train'}}, 'balance': None}
    >>> check_recipe({"tasks": {"EXPR": {"source": {}}}})
    Traceback (most recent call last):
    ...
    ValueError: recipe key 'tasks.EXPR.source' is unknown; allowed: balance, sources
    """
    _check_keys(recipe, {"tasks", "validation"}, "")
    tasks = _mapping(recipe.get("tasks"), "tasks")
    if not tasks:
        raise ValueError("recipe key 'tasks' must name at least one task")
    normal: dict[str, Any] = {"tasks": {}}
    for task, spec in tasks.items():
        where = f"tasks.{task}"
        if task not in TASK_COLUMNS:
            raise ValueError(f"recipe key {where!r} is unknown; allowed tasks: {', '.join(TASK_COLUMNS)}")
        spec = _mapping(spec, where)
        _check_keys(spec, {"sources", "balance"}, where)
        sources = _mapping(spec.get("sources"), f"{where}.sources")
        if not sources:
            raise ValueError(f"recipe key '{where}.sources' must name at least one source")
        normal_sources = {}
        for name, source in sources.items():
            source_where = f"{where}.sources.{name}"
            source = _mapping({} if source is None else source, source_where)
            _check_keys(source, set(_SOURCE_DEFAULTS), source_where)
            source = {**_SOURCE_DEFAULTS, **source}
            _check_step(source["step"], f"{source_where}.step", allow_auto=True)
            _check_split(source["split"], f"{source_where}.split")
            normal_sources[str(name)] = source
        if sum(s["step"] == "auto" for s in normal_sources.values()) > 1:
            raise ValueError(f"recipe key '{where}.sources': at most one source may use step 'auto'")
        if len(normal_sources) == 1 and next(iter(normal_sources.values()))["step"] == "auto":
            raise ValueError(f"recipe key '{where}.sources': step 'auto' needs another source to match")
        balance = spec.get("balance")
        normal["tasks"][task] = {
            "sources": normal_sources,
            "balance": None if balance is None else _check_balance(balance, task, f"{where}.balance"),
        }
    validation = _mapping(recipe.get("validation", {}), "validation")
    _check_keys(validation, set(_VALIDATION_DEFAULTS), "validation")
    validation = {**_VALIDATION_DEFAULTS, **validation}
    _check_step(validation["step"], "validation.step", allow_auto=False)
    _check_split(validation["split"], "validation.split")
    normal["validation"] = validation
    return copy.deepcopy(normal)


def make_resampler(balance: Mapping[str, Any] | None, random_state=None):
    """The ``imbalance`` resampler that a recipe's ``balance`` entry describes (None for no balancing).

    Examples
    --------
    >>> make_resampler({"method": "MLROS", "percentage": 10}, random_state=0)
    MLROS(percentage=10, random_state=0)
    """
    if balance is None:
        return None
    import imbalance  # imported here so that the rest of this module works without it installed

    params = {key: value for key, value in balance.items() if key != "method"}
    return getattr(imbalance, balance["method"])(**params, random_state=random_state)


def task_targets(table: pd.DataFrame, task: str) -> np.ndarray:
    """A task's labels in the form its resamplers take: AU int8 [n, 8], EXPR int64 [n], VA float64 [n, 2].

    Raises
    ------
    ValueError
        If a row lacks the label (filter with :func:`labelled_rows` first).
    """
    values = table[list(TASK_COLUMNS[task])].to_numpy(dtype=np.float64, na_value=np.nan)
    if np.isnan(values).any():
        raise ValueError(
            f"task_targets: {int(np.isnan(values).any(axis=1).sum())} row(s) lack the {task} label"
        )
    if task == "AU":
        return values.astype(np.int8)
    if task == "EXPR":
        return values[:, 0].astype(np.int64)
    return values


def labelled_rows(table: pd.DataFrame, task: str) -> np.ndarray:
    """Boolean mask of the rows that hold the task's complete label (all 8 AUs; expr; valence and arousal)."""
    return table[list(TASK_COLUMNS[task])].notna().all(axis=1).to_numpy()


def prepare_task(
    tables: Mapping[str, pd.DataFrame],
    task: str,
    recipe: Mapping[str, Any] = PAPER_RECIPE,
    random_state: int | np.random.Generator | None = None,
) -> TaskData:
    """Merge, down-sample and balance one task's training data as the recipe says.

    From each source it takes the rows of the source's training split that hold the task's complete label,
    keeps every ``step``-th of them per video (:func:`~affect_data.splits.temporal_downsample`), and stacks
    the sources; then draws the balanced list with the recipe's resampler.

    Parameters
    ----------
    tables : mapping of str to pandas.DataFrame
        Loaded frame tables keyed by the recipe's source names (``aff_wild2``, ``disfa``, ``expw``,
        ``afew_va`` in :data:`PAPER_RECIPE`). Not modified.
    task : {"AU", "EXPR", "VA"}
    recipe : dict, default PAPER_RECIPE
        Checked with :func:`check_recipe`.
    random_state : int, numpy.random.Generator or None
        Seed of the balanced list (and of its shuffle).

    Returns
    -------
    TaskData

    Examples
    --------
    >>> rows = {"dataset": "expw", "video": ["a#0", "b#0", "c#0"], "frame": 0, "path": "x.jpg",
    ...         "subject": pd.NA, "split": "train", "expr": [4, 4, 1]}
    >>> recipe = {"tasks": {"EXPR": {"sources": {"expw": {}}, "balance": {"method": "ClassBalancedSampler"}}},
    ...           "validation": {"source": "expw", "split": "train"}}
    >>> data = prepare_task({"expw": pd.DataFrame(rows)}, "EXPR", recipe, random_state=0)
    >>> len(data.train), sorted(data.train["expr"].iloc[data.indices].tolist()).count(1) >= 1
    (3, True)
    """
    recipe = check_recipe(recipe)
    if task not in recipe["tasks"]:
        raise ValueError(f"the recipe has no task {task!r}; it has {sorted(recipe['tasks'])}")
    spec = recipe["tasks"][task]
    _require_sources(tables, [*spec["sources"], recipe["validation"]["source"]], task)
    rng = np.random.default_rng(random_state)

    candidates, summary = {}, {}
    for name, source in spec["sources"].items():
        table = tables[name]
        keep = labelled_rows(table, task) & (table["split"] == source["split"]).fillna(False).to_numpy()
        candidates[name] = table[keep]
        summary[name] = {"rows": int(keep.sum())}
        if not keep.any():
            warnings.warn(_no_rows(task, name, source["split"], table), stacklevel=2)
    parts = []
    for name, source in spec["sources"].items():
        step = source["step"]
        if step == "auto":  # bring this source to the size of the others together
            others = sum(
                len(_downsample(candidates[n], s["step"])) for n, s in spec["sources"].items() if n != name
            )
            step = max(1, round(len(candidates[name]) / max(others, 1)))
        part = _downsample(candidates[name], step)
        summary[name] |= {"step": int(step), "kept": len(part)}
        parts.append(part)
    train = _concat(parts)
    if train.empty:
        raise ValueError(
            f"the {task} recipe's sources {sorted(spec['sources'])} hold no training row: "
            + "; ".join(_no_rows(task, n, s["split"], tables[n]) for n, s in spec["sources"].items())
        )

    validation_spec = recipe["validation"]
    source = tables[validation_spec["source"]]
    keep = (
        labelled_rows(source, task) & (source["split"] == validation_spec["split"]).fillna(False).to_numpy()
    )
    validation = _concat([_downsample(source[keep], validation_spec["step"])])

    targets = task_targets(train, task)
    resampler = make_resampler(spec["balance"], random_state=rng)
    indices = np.arange(len(train)) if resampler is None else resampler.fit_indices(targets)
    # ML-ROS lists come as originals then clones; a trainer reading the list in order needs it mixed.
    indices = rng.permutation(np.asarray(indices, dtype=np.int64))
    return TaskData(task, train, validation, indices, resampler, targets, summary)


def prepare_tasks(
    tables: Mapping[str, pd.DataFrame],
    recipe: Mapping[str, Any] = PAPER_RECIPE,
    random_state: int | None = None,
) -> dict[str, TaskData]:
    """:func:`prepare_task` for every task of the recipe; task ``k`` is seeded with ``(random_state, k)``.

    Examples
    --------
    >>> tables = {"expw": pd.DataFrame({"dataset": "expw", "video": ["a#0", "b#0"], "frame": 0,
    ...           "path": "x.jpg", "subject": pd.NA, "split": ["train", "validation"], "expr": [4, 1]})}
    >>> recipe = {"tasks": {"EXPR": {"sources": {"expw": {}}}}, "validation": {"source": "expw"}}
    >>> {task: len(data.train) for task, data in prepare_tasks(tables, recipe, random_state=0).items()}
    {'EXPR': 1}
    """
    recipe = check_recipe(recipe)
    seeds = np.random.SeedSequence(random_state).spawn(len(recipe["tasks"]))
    return {
        task: prepare_task(tables, task, recipe, random_state=np.random.default_rng(seed))
        for task, seed in zip(recipe["tasks"], seeds, strict=True)
    }


def _downsample(table: pd.DataFrame, step: int) -> pd.DataFrame:
    return table if step == 1 else temporal_downsample(table, step)


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    # Loader reports in .attrs describe a source, not the merge: drop them rather than guess.
    cleaned = []
    for part in parts:
        part = part.copy()
        part.attrs = {}
        cleaned.append(as_frame_table(part))
    return pd.concat(cleaned, ignore_index=True)


def _no_rows(task: str, name: str, split: str, table: pd.DataFrame) -> str:
    columns = ", ".join(TASK_COLUMNS[task])
    return (
        f"source {name!r} has no row in split {split!r} with the complete {task} label ({columns}) "
        f"among its {len(table)} rows"
    )


def _require_sources(tables: Mapping[str, pd.DataFrame], names: list[str], task: str) -> None:
    missing = sorted({n for n in names if n not in tables})
    if missing:
        raise ValueError(
            f"the {task} recipe needs source table(s) {missing}; got {sorted(tables)} "
            "(load them, or edit the recipe's sources)"
        )


def _check_balance(balance: Any, task: str, where: str) -> dict[str, Any]:
    balance = dict(_mapping(balance, where))
    method = balance.get("method")
    if method not in BALANCE_METHODS[task]:
        allowed_methods = ", ".join(BALANCE_METHODS[task])
        raise ValueError(f"recipe key '{where}.method' is {method!r}; allowed for {task}: {allowed_methods}")
    import imbalance

    parameters = inspect.signature(getattr(imbalance, method)).parameters
    allowed = {"method"} | {name for name in parameters if name != "random_state"}
    if "random_state" in balance:
        raise ValueError(
            f"recipe key '{where}.random_state': seeds are passed to prepare_task, not the recipe"
        )
    _check_keys(balance, allowed, where)
    return balance


def _check_step(step: Any, where: str, allow_auto: bool) -> None:
    if allow_auto and step == "auto":
        return
    if isinstance(step, bool) or not isinstance(step, int) or step < 1:
        extra = " or 'auto'" if allow_auto else ""
        raise ValueError(f"recipe key {where!r} must be a positive integer{extra}, got {step!r}")


def _check_split(split: Any, where: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"recipe key {where!r} is {split!r}; allowed: {', '.join(SPLITS)}")


def _check_keys(mapping: Mapping[str, Any], allowed: set[str], where: str) -> None:
    for key in mapping:
        if key not in allowed:
            path = f"{where}.{key}" if where else str(key)
            raise ValueError(f"recipe key {path!r} is unknown; allowed: {', '.join(sorted(allowed))}")


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"recipe key {where!r} must be a mapping, got {type(value).__name__}")
    return value
