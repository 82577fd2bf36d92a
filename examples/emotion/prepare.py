"""The ``prepare`` stage: data sets -> training tables, balanced index lists, validation and test tables.

1. The synthetic corpus is written first when the config asks for it and it is missing (the partial folders
   that killed writes of it left beside it are deleted).
2. The four data sets are loaded with affect_data's loaders (exactly as distributed).
3. affect_data's recipes (the paper's section III-A) merge them per task and balance them with ``imbalance``:
   ``train_<TASK>.csv`` holds the rows labelled for that task, ``balanced_<TASK>.npy`` the balanced list of
   row indices into it that the trainer draws its N samples per task from.
4. ``validation.csv``: every Aff-Wild2 validation frame once, with all the labels it has. On the synthetic
   corpus the labels are replaced by the complete hidden truth (``truth.csv``), so every task is scored on
   every frame. Model selection (epochs, AU thresholds) happens on these frames.
5. ``test.csv``, on the synthetic corpus only: every frame of its held-out Aff-Wild2 test videos, with the
   complete hidden truth (:func:`affect_data.synthetic.aff_wild2_truth_table`), to report scores on frames
   that played no part in model selection. Like the real ABAW 2020 test set, those videos have frames but
   no annotation files. On the real data sets no ``test.csv`` is written (and one left by an earlier run of
   the folder is removed): the ABAW test labels are withheld, so, as in the ABAW protocol, the validation
   scores are the ones reported.
6. Every image above is decoded once, whatever ``data.frame_cache`` says, and rows whose image cannot be
   read (missing, zero bytes, corrupt, truncated) are dropped and counted in the summary
   (``unreadable_images``), so that no training epoch meets one. With ``data.frame_cache`` the decoding
   builds ``crops/``, affect_data's crop cache at the datasets' resize size; without it,
   :func:`affect_data.cache.unreadable_images` decodes and discards.
7. ``summary.json``: row counts per task and source, before and after balancing; validation frames and
   videos; test frames and videos (synthetic corpus only).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from affect_data.cache import PARTIAL_FOLDER
from affect_data.schema import EXPR_NAMES, LABEL_COLUMNS, TASK_COLUMNS, as_frame_table
from emotion.config import Config
from emotion.factory import frame_cache_folder, write_table
from emotion.pipeline import process_alive, progress_bars, write_json

__all__ = [
    "held_out_table",
    "keep_rows",
    "load_sources",
    "plot_balancing",
    "run_prepare",
    "validation_table",
    "verify_prepare",
]

KEYS = ["dataset", "video", "frame"]

_log = logging.getLogger(__name__)


def run_prepare(config: Config, folder: Path) -> dict[str, Any]:
    """Write the training tables, balanced index lists, validation (and test) tables and summary."""
    from affect_data.recipes import PAPER_RECIPE, prepare_tasks

    synthetic = config.data.synthetic
    if synthetic is not None:
        _ensure_corpus(Path(synthetic.root), synthetic.preset, synthetic.seed)
    sources = load_sources(config)
    prepared = prepare_tasks(sources, config.data.recipe or PAPER_RECIPE, random_state=config.seed)
    truth = Path(synthetic.root) / "truth.csv" if synthetic is not None else None
    validation = validation_table(sources["aff_wild2"], truth)
    test = held_out_table(Path(synthetic.root)) if synthetic is not None else None
    tasks = {task: (data.train, data.indices) for task, data in prepared.items()}

    if config.data.frame_cache:
        tasks, validation, test, unreadable = _cache_crops(config, tasks, validation, test)
    else:
        tasks, validation, test, unreadable = _drop_unreadable(config, tasks, validation, test)

    summary: dict[str, Any] = {"tasks": {}, "unreadable_images": unreadable}
    for task, (table, indices) in tasks.items():
        write_table(table, folder / f"train_{task}.csv")
        np.save(folder / f"balanced_{task}.npy", indices)
        summary["tasks"][task] = {
            "sources": prepared[task].sources,
            "rows": len(table),
            "balanced": len(indices),
        }
    write_table(validation, folder / "validation.csv")
    summary["validation_frames"] = len(validation)
    summary["validation_videos"] = int(validation["video"].nunique())
    held_out = {}
    if test is not None:
        write_table(test, folder / "test.csv")
        held_out = {"test_frames": len(test), "test_videos": int(test["video"].nunique())}
    else:  # real data: no test split; a test.csv of an earlier synthetic run here would be stale
        (folder / "test.csv").unlink(missing_ok=True)
    summary.update(held_out)
    write_json(folder / "summary.json", summary)
    return {
        "validation_frames": len(validation),
        **held_out,
        **{t: v["rows"] for t, v in summary["tasks"].items()},
    }


def held_out_table(corpus: Path) -> pd.DataFrame:
    """The synthetic corpus's held-out Aff-Wild2 test frames, one row each, with the complete hidden truth.

    The loader does not see these videos (they have no annotation files, like the real ABAW 2020 test set),
    so they are read from the corpus's truth with :func:`affect_data.synthetic.aff_wild2_truth_table`: the
    columns and dtypes of :func:`validation_table`, ``split == "test"``.
    """
    from affect_data.synthetic import aff_wild2_truth_table

    return aff_wild2_truth_table(corpus, split="test")


#: Each task's training table and balanced list.
TaskTables = dict[str, tuple[pd.DataFrame, np.ndarray]]


def _cache_crops(
    config: Config,
    tasks: TaskTables,
    validation: pd.DataFrame,
    test: pd.DataFrame | None = None,
) -> tuple[TaskTables, pd.DataFrame, pd.DataFrame | None, int]:
    """Build the crop cache of every training, validation and test image; drop rows whose image is unreadable.

    Test rows are dropped by the same rule as validation rows: a frame that cannot be read cannot be scored.
    """
    from affect_data.cache import build_frame_cache
    from affect_data.transforms import resized_size

    paths = _all_paths(tasks, validation, test)
    size = resized_size(config.data.image_size)
    _log.info("[prepare] caching %d face crops at %d px", paths.nunique(), size)
    cache = build_frame_cache(
        paths,
        frame_cache_folder(config),
        size=size,
        num_workers=config.data.num_workers,
        overwrite=True,
        progress=progress_bars(),
    )
    return (*_keep_where(cache.covers, tasks, validation, test), len(cache.skipped))


def _drop_unreadable(
    config: Config,
    tasks: TaskTables,
    validation: pd.DataFrame,
    test: pd.DataFrame | None = None,
) -> tuple[TaskTables, pd.DataFrame, pd.DataFrame | None, int]:
    """Without a crop cache: decode every image once and drop the rows of those that cannot be read.

    Training reads the files themselves then, and one zero-byte or truncated frame would otherwise stop it
    mid-epoch; this is the test the crop cache applies, so both settings keep the same rows.
    """
    from affect_data.cache import unreadable_images

    paths = _all_paths(tasks, validation, test)
    _log.info("[prepare] checking that %d face images decode", paths.nunique())
    bad = unreadable_images(paths, num_workers=config.data.num_workers, progress=progress_bars())
    if bad:
        path, error = next(iter(bad.items()))
        _log.warning(
            "[prepare] dropping the rows of %d unreadable image(s), e.g. %s (%s)", len(bad), path, error
        )
    return (
        *_keep_where(lambda table: ~table["path"].isin(bad).to_numpy(), tasks, validation, test),
        len(bad),
    )


def _all_paths(tasks: TaskTables, validation: pd.DataFrame, test: pd.DataFrame | None) -> pd.Series:
    held_out = [validation] if test is None else [validation, test]
    return pd.concat([table["path"] for table, _ in tasks.values()] + [t["path"] for t in held_out])


def _keep_where(
    keep: Callable[[pd.DataFrame], np.ndarray],
    tasks: TaskTables,
    validation: pd.DataFrame,
    test: pd.DataFrame | None,
) -> tuple[TaskTables, pd.DataFrame, pd.DataFrame | None]:
    """The tables with only the rows where ``keep`` is True; balanced lists renumbered."""
    kept = {task: keep_rows(table, indices, keep(table)) for task, (table, indices) in tasks.items()}
    validation = validation[keep(validation)].reset_index(drop=True)
    if test is not None:
        test = test[keep(test)].reset_index(drop=True)
    return kept, validation, test


def verify_prepare(config: Config, folder: Path) -> None:
    """Check that a finished ``prepare``'s crop cache is intact before it is reused (sizes and sampled
    checksums, ``affect_data.cache.FrameCache.verify``); a damaged one is a StageError saying to rebuild."""
    from affect_data.cache import CacheError, FrameCache
    from affect_data.transforms import resized_size
    from emotion.pipeline import StageError

    if not config.data.frame_cache:
        return
    try:
        FrameCache(frame_cache_folder(config), size=resized_size(config.data.image_size)).verify()
    except (CacheError, FileNotFoundError) as error:
        raise StageError(
            f"the crop cache of {folder} is damaged ({error}); rebuild it: run.py prepare --force"
        ) from None


def keep_rows(table: pd.DataFrame, indices: np.ndarray, keep: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """Drop table rows (and the balanced list's entries for them), renumbering the list."""
    if keep.all():
        return table, indices
    new_position = np.cumsum(keep) - 1
    return table[keep].reset_index(drop=True), new_position[indices[keep[indices]]]


def load_sources(config: Config) -> dict[str, pd.DataFrame]:
    """Data set name -> frame table, for every data set the config names."""
    from affect_data import load_afew_va, load_aff_wild2, load_disfa, load_expw

    roots = config.data.roots()
    cache = Path(config.data.crop_cache) if config.data.crop_cache is not None else None
    loaders = {
        "aff_wild2": lambda root: load_aff_wild2(root),
        "disfa": lambda root: load_disfa(root),
        "expw": lambda root: load_expw(root, cache_dir=cache / "expw" if cache else None),
        "afew_va": lambda root: load_afew_va(root, cache_dir=cache / "afew_va" if cache else None),
    }
    sources = {}
    for name, root in roots.items():
        if root is not None:
            # A loader logs what it read once it is done; ExpW's and AFEW-VA's first load also crops faces.
            _log.info("[prepare] loading %s from %s", name, root)
            sources[name] = loaders[name](root)
    return sources


def validation_table(aff_wild2: pd.DataFrame, truth: Path | None = None) -> pd.DataFrame:
    """Aff-Wild2's validation frames, one row each, with every label any task set gives it.

    The loader gives one row per (task set, frame); rows of one frame are merged, keeping each label column's
    value from the set that has it. With ``truth`` (the synthetic corpus's ``truth.csv``), the labels are the
    complete hidden truth instead.
    """
    rows = aff_wild2[aff_wild2["split"] == "validation"]
    if rows.empty:
        raise ValueError("the Aff-Wild2 table has no validation rows: nothing to evaluate on")
    merged = rows.groupby(KEYS, sort=True, as_index=False).first()  # first non-missing value per column
    if truth is not None:
        hidden = pd.read_csv(truth, usecols=[*KEYS, *LABEL_COLUMNS], dtype={"video": str})
        merged = merged.drop(columns=list(LABEL_COLUMNS)).merge(hidden, on=KEYS, how="left", validate="1:1")
        unmatched = merged[list(LABEL_COLUMNS)].isna().all(axis=1)
        if unmatched.any():
            first = merged.loc[unmatched.idxmax()]
            raise ValueError(
                f"{truth}: {int(unmatched.sum())} validation frame(s) have no row in the hidden truth, e.g. "
                f"video {first['video']!r} frame {first['frame']}"
            )
    return as_frame_table(merged)


def _ensure_corpus(root: Path, preset: str, seed: int) -> None:
    _remove_partial_corpora(root)
    manifest = root / "corpus.json"
    if manifest.is_file():
        written = json.loads(manifest.read_text())
        found = (written.get("preset", {}).get("name"), written.get("seed"))
        if found != (preset, seed):
            raise ValueError(
                f"{manifest} holds the synthetic corpus of preset {found[0]!r}, seed {found[1]}, but the "
                f"config asks for preset {preset!r}, seed {seed}: point data.synthetic.root at another "
                f"folder, or delete {root} to have it written again"
            )
        if "test_videos" not in written.get("aff_wild2", {}):
            # Its training and validation videos are those a new corpus would have, but test.csv needs the
            # held-out test videos: say so here, before minutes of loading and balancing.
            raise ValueError(
                f"{manifest} was written before the synthetic corpus had held-out test videos: delete "
                f"{root} to have it written again (its training and validation videos stay the same)"
            )
        return
    from affect_data.synthetic import write_corpus

    _log.info("[prepare] writing the synthetic corpus (preset %r, seed %d) into %s", preset, seed, root)
    # The corpus is the same whatever the number of rendering processes: use the machine's cores.
    write_corpus(root, preset=preset, seed=seed, n_jobs=min(os.cpu_count() or 1, 8), progress=progress_bars())


def _remove_partial_corpora(root: Path) -> None:
    """Delete the folders that killed writes of the corpus ``root`` left beside it.

    ``write_corpus`` renders into ``.<root name>.tmp-<pid>-<hex>`` and renames it to ``root`` once complete
    (an earlier corpus moved aside to ``.<root name>.old-<pid>-<hex>`` meanwhile); a process killed part-way
    leaves them (the size of the corpus). Only those of processes that no longer run are deleted: another run
    may be writing the same corpus (its run folder's lock does not cover the data folder).
    """
    if not root.parent.is_dir():
        return
    for path in root.parent.iterdir():
        match = PARTIAL_FOLDER.fullmatch(path.name)
        mine = match is not None and match.group(1) == root.name
        if mine and path.is_dir() and not process_alive(int(match.group(2))):
            _log.info("[prepare] deleting %s, left by a write of the corpus that was cut short", path)
            shutil.rmtree(path, ignore_errors=True)


def plot_balancing(prepared: Path, folder: Path) -> dict[str, Path]:
    """The paper's Figure 2: each task's label distribution before and after balancing, one PNG per task."""
    from imbalance.plot import save_before_after

    paths = {}
    for task, columns in TASK_COLUMNS.items():
        table = pd.read_csv(prepared / f"train_{task}.csv", usecols=list(columns))
        balanced = table.iloc[np.load(prepared / f"balanced_{task}.npy")]
        path = folder / f"figure2_{task}.png"
        title = {"title": f"{task}: before and after balancing"}
        if task == "AU":
            save_before_after(table.astype(np.int8), balanced.astype(np.int8), path, kind="labels", **title)
        elif task == "EXPR":
            names = np.asarray([f"{k} {name}" for k, name in enumerate(EXPR_NAMES)])  # sorts in class order
            before, after = (names[t["expr"].to_numpy(dtype=np.int64)] for t in (table, balanced))
            save_before_after(before, after, path, kind="classes", **title)
        else:
            before, after = (t.to_numpy(np.float64) for t in (table, balanced))
            x_name, y_name = columns  # valence along x, arousal along y
            save_before_after(before, after, path, kind="bins", xlabel=x_name, ylabel=y_name)
        paths[f"figure2_{task}"] = path
    return paths
