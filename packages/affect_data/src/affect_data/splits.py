"""Temporal down-sampling and group-level (video or subject) stratified splits of frame tables.

Frames of one video are nearly duplicates of their neighbours, so two rules hold throughout:

- down-sampling keeps every k-th frame *of each video*, counted in frame order among the frames that exist
  (Aff-Wild2 drops frames without a detected face, so ``frame % k`` would not thin videos evenly);
- a split never cuts a video (or a subject) in two: whole groups go to one side, chosen by iterative
  stratification (Sechidis, Tsoumakas and Vlahavas, "On the stratification of multi-label data", ECML PKDD
  2011) over each group's label counts, so that both sides see similar label distributions.

Why not scikit-multilearn's ``IterativeStratification``: version 0.2.0 (the latest) cannot be seeded under
scikit-learn >= 0.24 (passing ``random_state`` raises "Setting a random_state has no effect since shuffle is
False", and without it the ties are broken with the global ``np.random``), it treats any non-zero value as a
positive label (so counts or shares are reduced to presence), and with ``order=1`` it processes labels in
order of first appearance rather than the rarest label first as the algorithm prescribes; its tie between
folds that desire a label equally is broken at random instead of by the desired size (it passes the label's
desires where the size desires belong), and label-free samples go to a random fold with room rather than the
one that most desires size.
:func:`iterative_stratification` below is the published algorithm, seeded with a ``numpy.random.Generator``
and generalised to weighted evidence.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from affect_data.schema import AU_NAMES, EXPR_NAMES, TASK_COLUMNS, VA_NAMES


def temporal_downsample(table: pd.DataFrame, step: int, offset: int = 0) -> pd.DataFrame:
    """Keep every ``step``-th frame of each video, in frame order.

    Rows are grouped by ``(dataset, video)`` and ranked by ``frame``; rows whose rank ``r`` satisfies
    ``r % step == offset`` are kept. The result keeps the input's row order and index; the input is not
    modified.

    Parameters
    ----------
    table : pandas.DataFrame
        A frame table (at least ``dataset``, ``video`` and ``frame`` columns).
    step : int
        Keep one frame in ``step`` (1 keeps everything).
    offset : int, default 0
        Rank of the first kept frame of each video, in ``0..step-1``.

    Returns
    -------
    pandas.DataFrame

    Examples
    --------
    >>> t = pd.DataFrame({"dataset": "d", "video": ["a"] * 5 + ["b"] * 3, "frame": [0, 1, 2, 3, 4, 7, 9, 12]})
    >>> temporal_downsample(t, 2)["frame"].tolist()
    [0, 2, 4, 7, 12]
    """
    if isinstance(step, bool) or not isinstance(step, int | np.integer) or step < 1:
        raise ValueError(f"temporal_downsample: step must be a positive integer, got {step!r}")
    if not 0 <= offset < step:
        raise ValueError(f"temporal_downsample: offset must be in 0..{step - 1}, got {offset!r}")
    missing = [c for c in ("dataset", "video", "frame") if c not in table.columns]
    if missing:
        raise ValueError(f"temporal_downsample: table lacks column(s) {missing}")
    if step == 1:
        return table.copy()
    order, starts, lengths = video_runs(table)
    # Rank within a video = position in the sorted order minus the position where that video starts.
    rank = np.empty(len(table), dtype=np.int64)
    rank[order] = np.arange(len(order)) - np.repeat(starts, lengths)
    return table[rank % step == offset].copy()


def group_label_counts(
    table: pd.DataFrame, task: str, group: str = "video", va_bins: int = 4
) -> pd.DataFrame:
    """Count, per video (or subject), the frames carrying each label of ``task``; the stratification evidence.

    Parameters
    ----------
    table : pandas.DataFrame
        A frame table.
    task : {"AU", "EXPR", "VA"}
        AU: frames with each AU present; EXPR: frames of each class; VA: frames in each of ``va_bins``
        equal-width bins of valence over [-1, 1], then of arousal (``2 * va_bins`` columns).
    group : {"video", "subject"}, default "video"
        Groups are ``(dataset, video)`` or ``(dataset, subject)`` pairs.
    va_bins : int, default 4
        Bins per VA dimension.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``(dataset, group)``; one column per label plus ``n_frames`` (frames of the group labelled
        for ``task``). Dividing by ``n_frames`` gives the group's label shares.
    """
    if task not in TASK_COLUMNS:
        raise ValueError(f"unknown task {task!r}; expected one of {sorted(TASK_COLUMNS)}")
    if group not in ("video", "subject"):
        raise ValueError(f"group must be 'video' or 'subject', got {group!r}")
    if group == "subject" and table["subject"].isna().any():
        n = int(table["subject"].isna().sum())
        raise ValueError(f"{n} row(s) have no subject; split by group='video' or fill the subject column")
    labels = table[list(TASK_COLUMNS[task])].to_numpy(dtype=np.float64, na_value=np.nan)
    labelled = ~np.isnan(labels).any(axis=1)
    if task == "AU":
        evidence, names = np.nan_to_num(labels) == 1, list(AU_NAMES)
    elif task == "EXPR":
        evidence = np.nan_to_num(labels[:, 0], nan=-1)[:, None] == np.arange(len(EXPR_NAMES))
        names = list(EXPR_NAMES)
    else:
        edges = np.linspace(-1.0, 1.0, va_bins + 1)[1:-1]
        bins = np.digitize(np.nan_to_num(labels), edges)
        evidence = np.hstack([bins[:, [d]] == np.arange(va_bins) for d in range(len(VA_NAMES))])
        names = [f"{dim}_bin{b}" for dim in VA_NAMES for b in range(va_bins)]
    counts = pd.DataFrame(evidence & labelled[:, None], columns=names, index=table.index).astype(np.int64)
    counts["n_frames"] = labelled.astype(np.int64)
    keys = [table["dataset"].astype("string"), table[group].astype("string")]
    return counts.groupby(keys, sort=True).sum().rename_axis(["dataset", group])


def iterative_stratification(
    evidence: np.ndarray,
    proportions: Sequence[float],
    sizes: np.ndarray | None = None,
    min_share: float = 0.0,
    random_state: int | np.random.Generator | None = None,
) -> np.ndarray:
    """Assign units (samples, videos, subjects) to folds by iterative stratification (Sechidis et al. 2011).

    The algorithm, with ``r_j`` the desired proportions: every fold ``j`` desires ``r_j`` of the total size
    and ``r_j`` of the evidence of each label. Repeatedly take the label with the fewest remaining units
    carrying it (ties at random) and hand each of those units (in random order; with counts, heaviest evidence
    first, which packs better) to the fold that most desires that label, ties broken by the fold that most
    desires size, then at random; subtract the unit's evidence and size from that fold's desires. Units
    without evidence go, one by one, to the fold that most desires size.

    With 0/1 evidence and unit sizes this is exactly the published algorithm. Counts generalise it: a video
    with 300 frames of AU12 carries 300 units of AU12 evidence and weighs its frame count in size. A unit
    *carries* a label (is handed out while that label is processed) when its evidence is at least
    ``min_share`` of its size; evidence below that still counts in the desires. Without such a floor every
    video that shows a label for a frame or two would be placed for that label, and the rarest label would
    decide nearly every video.

    Parameters
    ----------
    evidence : array-like of shape (n_units, n_labels)
        Non-negative label evidence per unit (0/1 labels or counts).
    proportions : sequence of float
        Desired share of each fold; normalised to sum to 1.
    sizes : array-like of shape (n_units,), optional
        Size of each unit (default 1 each).
    min_share : float, default 0.0
        Smallest ``evidence / size`` with which a unit carries a label (0: any positive evidence, as
        published).
    random_state : int, numpy.random.Generator or None

    Returns
    -------
    numpy.ndarray of shape (n_units,)
        The fold of each unit (int64).

    Examples
    --------
    >>> y = np.array([[1, 0], [1, 0], [0, 1], [0, 1], [1, 1], [0, 0]])
    >>> folds = iterative_stratification(y, [0.5, 0.5], random_state=0)
    >>> sorted(np.bincount(folds).tolist())
    [3, 3]
    """
    evidence = np.asarray(evidence, dtype=np.float64)
    if evidence.ndim != 2:
        raise ValueError(f"evidence must be 2-D (units x labels); got shape {evidence.shape}")
    if (evidence < 0).any() or np.isnan(evidence).any():
        raise ValueError("evidence must be non-negative and not NaN")
    n_units = len(evidence)
    sizes = np.ones(n_units) if sizes is None else np.asarray(sizes, dtype=np.float64)
    if sizes.shape != (n_units,):
        raise ValueError(f"sizes has shape {sizes.shape}; expected ({n_units},)")
    if not (sizes >= 0).all():  # NaN fails too
        raise ValueError("sizes must be non-negative and not NaN")
    ratios = np.asarray(proportions, dtype=np.float64)
    if ratios.ndim != 1 or len(ratios) < 2 or not (ratios >= 0).all() or ratios.sum() <= 0:
        raise ValueError(f"proportions must be at least two non-negative shares, got {proportions!r}")
    if not 0 <= min_share <= 1:
        raise ValueError(f"min_share must be in [0, 1], got {min_share!r}")
    ratios = ratios / ratios.sum()
    rng = np.random.default_rng(random_state)

    desired_size = sizes.sum() * ratios
    desired_label = evidence.sum(axis=0)[:, None] * ratios[None, :]  # (n_labels, n_folds)
    fold = np.full(n_units, -1, dtype=np.int64)
    carries = (evidence > 0) & (evidence >= min_share * sizes[:, None])

    while True:
        remaining = (fold < 0)[:, None] & carries
        per_label = remaining.sum(axis=0)
        candidates = np.flatnonzero(per_label > 0)
        if len(candidates) == 0:
            break
        fewest = candidates[per_label[candidates] == per_label[candidates].min()]
        label = rng.choice(fewest)
        units = rng.permutation(np.flatnonzero(remaining[:, label]))
        units = units[np.argsort(-evidence[units, label], kind="stable")]  # 0/1 evidence: order stays random
        for unit in units:
            m = _most_desiring_fold(desired_label[label], desired_size, rng)
            fold[unit] = m
            desired_label[:, m] -= evidence[unit]
            desired_size[m] -= sizes[unit]

    for unit in rng.permutation(np.flatnonzero(fold < 0)):
        m = _most_desiring_fold(desired_size, desired_size, rng)
        fold[unit] = m
        desired_label[:, m] -= evidence[unit]
        desired_size[m] -= sizes[unit]
    return fold


def stratified_group_split(
    table: pd.DataFrame,
    task: str,
    validation_size: float = 0.2,
    group: str = "video",
    va_bins: int = 4,
    min_share: float = 0.1,
    random_state: int | np.random.Generator | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a frame table into train and validation parts, whole videos (or subjects) on one side.

    Groups are assigned by :func:`iterative_stratification` over their per-label frame counts for ``task``
    (see :func:`group_label_counts`), weighted by their number of labelled frames, so that the validation part
    holds about ``validation_size`` of the labelled frames and of each label's frames. A group carries a label
    when at least ``min_share`` of its labelled frames show it. Groups with no label for ``task`` are split
    apart from the others, by their number of rows, so that they too go about ``validation_size`` to the
    validation part.

    Parameters
    ----------
    table : pandas.DataFrame
        A frame table.
    task : {"AU", "EXPR", "VA"}
        The task whose labels stratify the split.
    validation_size : float, default 0.2
        Desired share of labelled frames in the validation part, in (0, 1).
    group : {"video", "subject"}, default "video"
        Keep whole videos, or whole subjects (every video of one person), on one side.
    va_bins : int, default 4
        Bins per dimension when ``task="VA"``.
    min_share : float, default 0.1
        See :func:`iterative_stratification`.
    random_state : int, numpy.random.Generator or None

    Returns
    -------
    train, validation : pandas.DataFrame
        Row subsets of ``table`` (index and row order kept); the ``split`` column is set to ``"train"`` /
        ``"validation"``.

    Examples
    --------
    >>> videos, classes = list("abcdefghij"), [0, 0, 0, 0, 4, 4, 4, 4, 6, 6]
    >>> t = pd.DataFrame({"dataset": "d", "video": np.repeat(videos, 3), "frame": np.tile([0, 1, 2], 10),
    ...                   "subject": "s", "split": "train", "expr": np.repeat(classes, 3)})
    >>> train, val = stratified_group_split(t, "EXPR", validation_size=0.5, random_state=0)
    >>> sorted(val.groupby("expr")["video"].nunique().tolist())
    [1, 2, 2]
    """
    if not 0 < validation_size < 1:
        raise ValueError(f"validation_size must be in (0, 1), got {validation_size!r}")
    counts = group_label_counts(table, task, group=group, va_bins=va_bins)
    sizes = counts.pop("n_frames").to_numpy()
    proportions = [1 - validation_size, validation_size]
    rng = np.random.default_rng(random_state)
    folds = iterative_stratification(
        counts.to_numpy(), proportions, sizes=sizes, min_share=min_share, random_state=rng
    )
    keys = pd.MultiIndex.from_arrays([table["dataset"].astype("string"), table[group].astype("string")])
    # Groups without a single label for the task (videos of another task set) weigh nothing above and would
    # all fall to one side; spread them by their row counts instead.
    unlabelled = sizes == 0
    if unlabelled.any():
        rows = pd.Series(1, index=keys).groupby(level=[0, 1]).size().reindex(counts.index[unlabelled])
        folds[unlabelled] = iterative_stratification(
            np.zeros((int(unlabelled.sum()), 0)), proportions, sizes=rows.to_numpy(), random_state=rng
        )
    in_validation = keys.isin(counts.index[folds == 1])
    train, validation = table[~in_validation].copy(), table[in_validation].copy()
    train["split"] = pd.Series("train", index=train.index, dtype="string")
    validation["split"] = pd.Series("validation", index=validation.index, dtype="string")
    return train, validation


def _most_desiring_fold(desire: np.ndarray, desired_size: np.ndarray, rng: np.random.Generator) -> int:
    best = np.flatnonzero(desire == desire.max())
    if len(best) > 1:
        best = best[desired_size[best] == desired_size[best].max()]
    return int(best[0] if len(best) == 1 else rng.choice(best))


def video_runs(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows of a frame table ordered by video, then frame, as runs of one video each.

    Returns ``order`` (row positions sorted by ``(dataset, video)`` in order of first appearance, then by
    ``frame``), and the start and length of each video's run within ``order``.

    Examples
    --------
    >>> t = pd.DataFrame({"dataset": "d", "video": ["b", "a", "b", "a", "a"], "frame": [1, 5, 0, 2, 9]})
    >>> [part.tolist() for part in video_runs(t)]
    [[2, 0, 3, 1, 4], [0, 2], [2, 3]]
    """
    keys = pd.MultiIndex.from_arrays([table["dataset"].astype("string"), table["video"].astype("string")])
    codes = pd.factorize(keys)[0]
    order = np.lexsort((table["frame"].to_numpy(), codes))
    starts = np.r_[0, np.flatnonzero(np.diff(codes[order])) + 1]
    lengths = np.diff(np.r_[starts, len(order)])
    return order, starts, lengths
