"""The paper end to end: ``python examples/emotion/run.py STAGE --config FILE [--force] [--set KEY=VALUE]``.

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
``run.py STAGE --help`` says what a stage reads and writes and lists the options it takes; ``--set
training.lr=3e-4`` (repeatable) overrides a config value as an edit of the file would; ``-q`` shows only
warnings and errors (no progress bars), ``-v`` also debug messages.
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
from emotion.pipeline import (
    EXPERIMENT_STAGES,
    MAIN_STAGES,
    StageError,
    configure_logging,
    progress_bars,
    run_stage,
)
from emotion.predict import add_predict_options
from mtl_distill.distributed import setup_distributed

#: Stages that never use ``training.device`` (on one seed): they run on any machine, whatever the device.
DEVICE_FREE = ("prepare", "report", "export", "figure5")

#: The loggers of this repository's code: ``-q`` and ``-v`` set their level (other libraries' stay at WARNING,
#: so that ``-v`` does not bury the pipeline's lines under matplotlib's and PIL's debug records).
_log = logging.getLogger("emotion")

_RUN = "<run> is the run folder <run_root>/<name> of the config."

#: Each command's help: what it does, what it reads, what it writes (under the run folder).
COMMANDS: dict[str, tuple[str, str]] = {
    "prepare": (
        "load, merge and balance the data sets",
        "Write the synthetic corpus if the config names one and it is missing; load the data sets with "
        "affect_data's loaders, merge and balance them with the paper's recipe, and build the crop cache. "
        "Reads: the data sets of the config's data section. Writes: <run>/prepare/ (train_{AU,EXPR,VA}.csv, "
        "balanced_*.npy, validation.csv, test.csv on the synthetic corpus, crops/, summary.json).",
    ),
    "teacher": (
        "train the multitask CNN on ground truth (Eq. 13)",
        "Train the multitask CNN on ground truth only (Eq. 13), keeping the best epoch on validation. "
        "Reads: <run>/prepare/. Writes: <run>/teacher/ (model.pt, initial.pt, checkpoint.pt, metrics.csv).",
    ),
    "students": (
        "train the students on ground truth + soft labels (Eq. 14)",
        "Train training.students.count students (from the teacher's starting weights by default) on ground "
        "truth + the teacher's soft labels (Eq. 14). Reads: <run>/prepare/, <run>/teacher/. Writes: "
        "<run>/students/ (student_<k>/ per student, soft_labels.pt when the soft labels are cached).",
    ),
    "evaluate": (
        "score the teacher, the students and the ensemble (ABAW 2020)",
        "Predict the validation and test frames with the teacher, each student and the ensemble; tune the AU "
        "thresholds on validation; score with the ABAW 2020 metrics. Reads: <run>/prepare/, <run>/teacher/, "
        "<run>/students/. Writes: <run>/evaluate/ (scores.json, thresholds.json, ensemble.pt, "
        "predictions/<split>/*.npz).",
    ),
    "report": (
        "write the Markdown report with its tables and figures",
        "A Markdown report with the tables and PNG figures, then print the results table. Reads: "
        "<run>/prepare/, <run>/teacher/, <run>/students/, <run>/evaluate/. Writes: <run>/report/ "
        "(results.md, report.md, figure2_*.png, figure5.png, per_au_f1.png, per_class_f1.png, "
        "training_curves.png).",
    ),
    "export": (
        "write the ensemble as one model file (for predict --model)",
        "The run's ensemble, its tuned AU thresholds, its architecture and what it was trained on in one "
        "model file. Reads: <run>/evaluate/ (ensemble.pt). Writes: "
        "<run>/export/emotion_model.pt. With --sequence-length L: table2's CNN-GRU ensemble of clip length "
        "L instead, AU thresholds tuned on the validation frames (reads <run>/teacher/, "
        "<run>/table2/length_<L>/, <run>/prepare/; writes <run>/table2/length_<L>/emotion_model.pt).",
    ),
    "all": (
        "prepare, teacher, students, evaluate, report, export in turn",
        "The six main stages in turn (prepare, teacher, students, evaluate, report, export), then print the "
        "results table, the report's path and the model file's. Reads: the data sets of the config. Writes: "
        "the six stage folders of <run>/.",
    ),
    "table1": (
        "the paper's Table I: single-task CNNs (after all)",
        "The paper's Table I: single-task CNNs, each task three ways (Aff-Wild2 alone unbalanced, + the "
        "external data set, + balancing). Reads: <run>/prepare/. Writes: <run>/table1/ (table1.md, "
        "table1.png, scores.json); with --seeds, <run>/study/seed_<s>/ and <run>/study/table1.md.",
    ),
    "figure5": (
        "the paper's Figure 5: single-task vs multitask (after all, table1)",
        "The paper's Figure 5: single-task CNN vs multitask teacher vs students' mean vs ensemble. Reads: "
        "<run>/table1/, <run>/evaluate/. Writes: <run>/figure5/ (figure5.md, figure5.png); with --seeds, "
        "<run>/study/seed_<s>/ and <run>/study/figure5.md.",
    ),
    "table2": (
        "the paper's Table II: CNN vs CNN-RNN per sequence length (after all)",
        "The paper's Table II: the CNN-RNN (teacher, best student, students' mean, ensemble) at each "
        "sequence length next to the CNN. Reads: <run>/prepare/, <run>/teacher/, <run>/evaluate/. Writes: "
        "<run>/table2/ (table2.md, table2.png, scores.json); with --seeds, <run>/study/seed_<s>/ and "
        "<run>/study/table2.md.",
    ),
    "experiments": (
        "table1, figure5, table2 in turn (after all)",
        "table1, figure5 and table2 in turn, then print the three tables. Reads: <run>/prepare/, "
        "<run>/teacher/, <run>/evaluate/ (run `all` first). Writes: <run>/table1/, <run>/figure5/, "
        "<run>/table2/; with --seeds, <run>/study/seed_<s>/ and <run>/study/{table1,figure5,table2}.md.",
    ),
    "predict": (
        "the ensemble on your own video or folder of face images",
        "The run's student ensemble on every face of your own video or folder of images (--source). Reads: "
        "the finished run of --config (<run>/students/, <run>/evaluate/), or a model file from `export` "
        "alone (--model; from `export --sequence-length L`, the CNN-GRU, each face predicted from the window "
        "of its last L rows). Writes: <run>/predict/<source name>/ (with --model: predict/<source name>/; or "
        "--out): predictions.csv, predictions.json, predictions.png, crops/ with --save-crops, and the "
        "--video-out file.",
    ),
    "study": (
        "teacher, students and evaluation over seeds, compared with 95%% intervals",
        "Teacher, students and evaluation over several seeds (--seeds, default study.seeds) and the "
        "config's student variants, compared seed by seed with 95% intervals. Reads: <run>/prepare/ (run "
        "first when missing). Writes: <run>/study/ (seed_<s>/<variant>/ per seed and variant, summary.md, "
        "summary.png, scores.json).",
    ),
}

#: Commands that take --seeds (and --variants, --jobs): over seeds, the experiments train every seed's
#: teacher and students too.
OVER_SEEDS = ("study", *EXPERIMENT_STAGES, "experiments")


def main(argv: list[str] | None = None) -> int:
    parser, commands = build_parser()
    args, unknown = parser.parse_known_args(argv)
    command = commands[args.stage]
    if unknown:  # an option of another command: an error here, not silently ignored
        command.error(f"{args.stage} does not take {' '.join(unknown)} (see run.py {args.stage} --help)")
    if args.quiet and args.verbose:
        command.error("-q/--quiet and -v/--verbose exclude each other")
    seeds = getattr(args, "seeds", None)
    if args.stage in (*EXPERIMENT_STAGES, "experiments") and not seeds:
        # Without --seeds an experiment runs once, on the config's seed: these would be ignored.
        for option, value in (("--variants", args.variants), ("--jobs", args.jobs)):
            if value is not None:
                command.error(f"{option} goes with --seeds")
    if args.stage == "predict":
        if args.config is None and args.model is None:
            command.error("predict needs --config (or --model)")
        if args.model is not None and args.overrides:
            command.error("--set changes the config: it goes with --config, not --model")
    configure_logging(logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO)
    setup_distributed()  # under torchrun, join its process group before a stage builds a trainer

    try:
        if args.stage == "predict" and args.model is not None:
            return _predict(None, args)
        config = load_config(args.config, check_paths=args.stage != "predict", overrides=args.overrides)
        if _uses_configured_device(args):
            check_device(config, args.config)
        if args.stage == "predict":
            return _predict(config, args)
        if args.stage == "export" and args.sequence_length is not None:
            from emotion.export import export_sequence_model

            print(f"model file: {export_sequence_model(config, args.sequence_length)}")
            return 0
        if args.stage == "study" or seeds:
            return _study(config, args)
        groups = {"all": MAIN_STAGES, "experiments": EXPERIMENT_STAGES}
        for name in groups.get(args.stage, [args.stage]):
            run_stage(name, config, force=args.force, log=_log.info)
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


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The command line: one subcommand per command, each with only the options that apply to it."""
    paragraphs = __doc__.split("\n\n")
    parser = argparse.ArgumentParser(
        prog="run.py",
        description=paragraphs[0],
        epilog=paragraphs[-1],  # re-running, --help, --set, -q and -v; the commands are listed above it
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_verbosity(parser, default=False)
    # -q / -v are taken after the command too; there the default must not overwrite what came before it.
    verbosity = argparse.ArgumentParser(add_help=False)
    _add_verbosity(verbosity, default=argparse.SUPPRESS)
    subparsers = parser.add_subparsers(
        dest="stage",
        required=True,
        metavar="COMMAND",
        title="commands (run.py COMMAND --help for its options)",
    )
    commands = {}
    for name, (summary, description) in COMMANDS.items():
        command = subparsers.add_parser(
            name, parents=[verbosity], help=summary, description=f"{description} {_RUN}"
        )
        if name == "predict":
            _add_predict_arguments(command)
        else:
            command.add_argument("--config", type=Path, required=True, help="the YAML configuration file")
            _add_set(command)
            command.add_argument("--force", action="store_true", help="redo the stage(s) even if done")
        if name == "export":
            command.add_argument(
                "--sequence-length",
                type=int,
                metavar="L",
                help="export table2's CNN-GRU ensemble of clip length L instead (after `run.py table2`; "
                "written anew each time)",
            )
        if name in OVER_SEEDS:
            _add_seed_arguments(command, name)
        commands[name] = command
    return parser, commands


def _add_verbosity(parser: argparse.ArgumentParser, default: object) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=default,
        help="warnings and errors only, no progress bars",
    )
    group.add_argument("-v", "--verbose", action="store_true", default=default, help="also debug messages")


def _add_set(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY.PATH=VALUE",
        help="override a config value, checked like the file (repeatable; the value is YAML), e.g. "
        "--set training.lr=3e-4",
    )


def _add_seed_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    study = name == "study"
    parser.add_argument(
        "--seeds",
        help="seeds, e.g. 0-4 or 0,2,5 (default: the config's study.seeds)"
        if study
        else "run over these seeds, e.g. 0-4 or 0,2,5, and summarise with 95%% intervals",
    )
    parser.add_argument(
        "--variants",
        help="comma-separated study variants (default: all of the config's)"
        + ("" if study else "; with --seeds"),
    )
    parser.add_argument(
        "--jobs",
        type=int,
        help="seeds trained at once, one process each (default 1)" + ("" if study else "; with --seeds"),
    )


def _add_predict_arguments(parser: argparse.ArgumentParser) -> None:
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--config", type=Path, help="the YAML configuration file of a finished run")
    model.add_argument(
        "--model",
        type=Path,
        help="a model file from `run.py export` (the CNN ensemble; with --sequence-length, table2's "
        "CNN-GRU, run over sliding windows of each face's track): predict with it, no --config needed",
    )
    _add_set(parser)
    parser.add_argument("--source", type=Path, help="a video file or a folder of images")
    parser.add_argument(
        "--out",
        type=Path,
        help="output folder (default <run>/predict/<source name>; with --model predict/<source name>)",
    )
    add_predict_options(parser)


def _uses_configured_device(args: argparse.Namespace) -> bool:
    """Whether the command computes on the config's ``training.device`` (over seeds, figure5 trains table1;
    ``predict --device`` overrides the config's)."""
    if args.stage == "predict":
        return not args.device
    if args.stage == "export":  # the CNN-GRU's thresholds: its CNN runs on the validation frames
        return args.sequence_length is not None
    return args.stage not in DEVICE_FREE or bool(getattr(args, "seeds", None))


def _study(config, args: argparse.Namespace) -> int:
    from emotion.study import EXPERIMENT_STAGES_OVER_SEEDS, STUDY_STAGES, parse_seeds, run_study

    seeds = parse_seeds(args.seeds) if args.seeds else None
    variants = args.variants.split(",") if args.variants else None
    stages = STUDY_STAGES if args.stage == "study" else EXPERIMENT_STAGES_OVER_SEEDS[args.stage]
    jobs = 1 if args.jobs is None else args.jobs
    run_study(config, seeds, variants, force=args.force, jobs=jobs, stages=stages, log=_log.info)
    folder = config.run_dir / "study"
    summaries = (["summary"] if "evaluate" in stages else []) + [s for s in EXPERIMENT_STAGES if s in stages]
    for name in summaries:
        print((folder / f"{name}.md").read_text(encoding="utf-8"))
    return 0


def _predict(config, args: argparse.Namespace) -> int:
    from affect_data.prediction import SyntheticModelWarning
    from emotion.inference import predict_model_file, predict_run
    from emotion.predict import predict_options, summary

    if args.source is None:
        print("error: predict needs --source VIDEO_OR_FOLDER", file=sys.stderr)
        return 2
    options = {**predict_options(args), "progress": progress_bars()}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntheticModelWarning)  # printed below as one plain line
            if config is None:
                table = predict_model_file(args.model, args.source, args.out, **options)
            else:
                table = predict_run(config, args.source, args.out, **options)
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
