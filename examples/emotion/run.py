"""The paper end to end: ``python examples/emotion/run.py STAGE --config FILE [--force]``.

Stages, in order, all writing into the run folder ``<run_root>/<name>/`` of the config:

- ``prepare``  - write the synthetic corpus if the config asks for it and it is missing; load the data sets,
  merge them with the paper's recipes, balance them, and save the per-task training tables, the balanced index
  lists and the validation table (with the complete hidden truth on the synthetic corpus);
- ``teacher``  - train the multitask CNN on ground truth only (Eq. 13);
- ``students`` - train students from the teacher's starting weights on ground truth + soft labels (Eq. 14);
- ``evaluate`` - score the teacher, each student and the ensemble on the validation videos with the ABAW 2020
  metrics, AU thresholds tuned on validation;
- ``report``   - a Markdown report with the tables and PNG figures;
- ``export``   - the run's ensemble, its tuned AU thresholds, its architecture and what it was trained on in
  one model file, ``<run>/export/emotion_model.pt`` (``predict --model``);
- ``all``      - the six stages above in turn;
- ``predict``  - the run's student ensemble on your own video or folder of face images (``--source``);
  ``--model FILE`` in place of ``--config`` predicts with an exported model file alone;
- ``table1``, ``figure5``, ``table2`` - the paper's experiments (single-task CNNs; single-task vs multitask;
  CNN vs CNN-RNN at each sequence length), after ``all``; ``experiments`` runs the three.
- ``study``    - teacher, students and evaluation over several seeds (``--seeds 0-4``) and the config's
  student variants, compared seed by seed with 95% intervals (``<run>/study/summary.md``).

A finished stage is a no-op when run again; ``--force`` redoes it (and so the stages after it).
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

# run.py is started as a script: make this folder importable as the `emotion` package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from affect_data.loaders import AnnotationError
from emotion.config import ConfigError, check_device, load_config
from emotion.pipeline import EXPERIMENT_STAGES, MAIN_STAGES, STAGES, StageError, run_stage
from emotion.predict import add_predict_options
from mtl_distill.distributed import setup_distributed

#: Stages that never use ``training.device`` (on one seed): they run on any machine, whatever the device.
DEVICE_FREE = ("prepare", "report", "export", "figure5")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="run.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "stage",
        choices=[*STAGES, "all", "experiments", "predict", "study"],
        help="the stage to run (`all`: the five main stages, `experiments`: table1, figure5, table2)",
    )
    parser.add_argument(
        "--config", type=Path, help="the YAML configuration file (every stage but `predict --model`)"
    )
    parser.add_argument("--force", action="store_true", help="redo the stage(s) even if done")
    study = parser.add_argument_group("study")
    study.add_argument(
        "--seeds",
        help="seeds, e.g. 0-4 or 0,2,5 (study: default the config's study.seeds); with table1, figure5, "
        "table2 or experiments: run them over these seeds and summarise with 95%% intervals",
    )
    study.add_argument("--variants", help="comma-separated study variants (default: all of the config's)")
    study.add_argument("--jobs", type=int, default=1, help="seeds trained at once, one process each")
    video = parser.add_argument_group("predict")
    video.add_argument(
        "--model", type=Path, help="a model file from `run.py export`: predict with it, no --config needed"
    )
    video.add_argument("--source", type=Path, help="a video file or a folder of images")
    video.add_argument(
        "--out",
        type=Path,
        help="output folder (default <run>/predict/<source name>; with --model predict/<source name>)",
    )
    add_predict_options(video)
    args = parser.parse_args(argv)
    # The trainer logs one line per epoch at INFO: show them on stdout, where the stages print.
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    setup_distributed()  # under torchrun, join its process group before a stage builds a trainer

    if args.model is not None and (args.stage != "predict" or args.config is not None):
        parser.error("--model goes with the predict stage, in place of --config")
    if args.config is None and args.model is None:
        parser.error(f"{args.stage} needs --config" + (" (or --model)" if args.stage == "predict" else ""))
    try:
        if args.model is not None:
            return _predict(None, args)
        config = load_config(args.config, check_paths=args.stage != "predict")
        if _uses_configured_device(args):
            check_device(config, args.config)
        if args.stage == "predict":
            return _predict(config, args)
        if args.stage == "study" or args.seeds:
            return _study(config, args)
        groups = {"all": MAIN_STAGES, "experiments": EXPERIMENT_STAGES}
        names = groups.get(args.stage, [args.stage])
        for name in names:
            run_stage(name, config, force=args.force)
    except (ConfigError, StageError, FileNotFoundError, AnnotationError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to resume", file=sys.stderr)
        return 130
    if args.stage in ("all", "report"):
        report = config.run_dir / "report" / "report.md"
        summary = report.parent / "results.md"
        if summary.is_file():
            print(summary.read_text(encoding="utf-8"))
        print(f"report: {report}")
    if args.stage == "all":
        print(f"model file: {config.run_dir / 'export' / 'emotion_model.pt'}")
    if args.stage in ("experiments", *EXPERIMENT_STAGES):
        for name in EXPERIMENT_STAGES:
            for table in sorted((config.run_dir / name).glob("*.md")):
                print(table.read_text(encoding="utf-8"))
                print(f"({table}, plot: {table.with_suffix('.png')})\n")
    return 0


def _uses_configured_device(args: argparse.Namespace) -> bool:
    """Whether the command computes on the config's ``training.device`` (over seeds, figure5 trains table1;
    ``predict --device`` overrides the config's)."""
    if args.stage == "predict":
        return not args.device
    return args.stage not in DEVICE_FREE or bool(args.seeds)


def _study(config, args: argparse.Namespace) -> int:
    from emotion.study import EXPERIMENT_STAGES_OVER_SEEDS, STUDY_STAGES, parse_seeds, run_study

    if args.stage != "study" and args.stage not in EXPERIMENT_STAGES_OVER_SEEDS:
        raise ConfigError(
            f"--seeds applies to study and {', '.join(EXPERIMENT_STAGES_OVER_SEEDS)}, not {args.stage}"
        )
    seeds = parse_seeds(args.seeds) if args.seeds else None
    variants = args.variants.split(",") if args.variants else None
    stages = STUDY_STAGES if args.stage == "study" else EXPERIMENT_STAGES_OVER_SEEDS[args.stage]
    run_study(config, seeds, variants, force=args.force, jobs=args.jobs, stages=stages)
    folder = config.run_dir / "study"
    summaries = (["summary"] if "evaluate" in stages else []) + [s for s in EXPERIMENT_STAGES if s in stages]
    for name in summaries:
        print((folder / f"{name}.md").read_text(encoding="utf-8"))
    return 0


def _predict(config, args: argparse.Namespace) -> int:
    from emotion.inference import predict_model_file, predict_run
    from emotion.predict import SyntheticModelWarning, predict_options, summary

    if args.source is None:
        print("error: predict needs --source VIDEO_OR_FOLDER", file=sys.stderr)
        return 2
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntheticModelWarning)  # printed below as one plain line
            if config is None:
                table = predict_model_file(args.model, args.source, args.out, **predict_options(args))
            else:
                table = predict_run(config, args.source, args.out, **predict_options(args))
    except ValueError as error:  # an undecodable video, a model that does not fit the run, ...
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(
        f"{summary(table)}\npredictions: {table.attrs['csv']}\nmodel, options, counts: {table.attrs['json']}"
    )
    for name in ("plot", "video"):
        if name in table.attrs:
            print(f"{name}: {table.attrs[name]}")
    if table.attrs["warning"] is not None:
        print(f"warning: {table.attrs['warning']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
