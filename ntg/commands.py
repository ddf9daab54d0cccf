"""Sub-commands beyond ``ntg data``: train, sample, evaluate, demo."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ntg.errors import NtgError

FAMILIES_HELP = "transformer | ssm | diffusion | markov | bootstrap | marginals | gmm"


def register_all(sub: argparse._SubParsersAction) -> None:
    _add_train(sub)
    _add_sample(sub)
    _add_evaluate(sub)
    _add_demo(sub)


# ---------------------------------------------------------------------------------------------- train
def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="fit a generator on a prepared dataset",
        description="Fit one generator family on the training split of a prepared dataset (validation split "
        "for early stopping) and write RUN_DIR: config.json + model.safetensors (Hugging Face layout), "
        "run.json, train_log.json and a loss curve. Re-running resumes from the last epoch checkpoint.",
    )
    p.add_argument("--family", required=True, help=FAMILIES_HELP)
    p.add_argument("--data", required=True, type=Path, help="prepared dataset folder (ntg data prepare)")
    p.add_argument("--out", required=True, type=Path, help="run folder to write")
    p.add_argument("--config", type=Path, help='JSON file {"model": {...}, "train": {...}}')
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting, e.g. model.d_model=128 or train.epochs=3 (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from ntg.training.runs import train_run

    config = None
    if args.config:
        if not args.config.exists():
            raise NtgError(f"{args.config}: no such config file")
        try:
            config = json.loads(args.config.read_text())
        except json.JSONDecodeError as err:
            raise NtgError(f"{args.config}: not valid JSON ({err})") from None
    run_dir = train_run(args.family, args.data, args.out, config=config, overrides=args.overrides,
                        progress=not args.quiet)
    log = json.loads((Path(run_dir) / "train_log.json").read_text())
    params = log.get("num_parameters")
    print(f"{run_dir}: {args.family} trained ({params:,} parameters)" if params is not None else str(run_dir))
    return 0


# ---------------------------------------------------------------------------------------------- sample
def _add_sample(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sample",
        help="generate flows from a trained generator",
        description="Generate flows in the dataset schema from a run folder or a Hugging Face Hub repo id; "
        "writes parquet or CSV by the --out suffix.",
    )
    p.add_argument("run", help="run folder (ntg train) or Hub repo id")
    p.add_argument("--n", type=int, default=10000, help="number of flows (default 10000)")
    p.add_argument("--label", help="one class name (default: the training class mix)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, type=Path, help="FILE.parquet or FILE.csv")
    p.set_defaults(func=cmd_sample)


def cmd_sample(args: argparse.Namespace) -> int:
    from ntg.training.runs import sample_run

    if args.n < 1:
        raise NtgError(f"--n must be positive, not {args.n}")
    if args.out.suffix not in (".parquet", ".csv"):
        raise NtgError(f"--out {args.out}: use a .parquet or .csv file name")
    out = sample_run(args.run, n=args.n, label=args.label, seed=args.seed, out=args.out)
    print(f"{out}: {args.n} flows")
    return 0


# ---------------------------------------------------------------------------------------------- evaluate
AXES = ("fidelity", "tstr", "augmentation", "privacy", "cost")


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="fidelity, synthetic-only training, augmentation, privacy and cost of a generator",
        description="Judge a generator (run folder) or a synthetic flow file against the real test split; "
        "writes REPORT_DIR/report.json, report.md and figures.",
    )
    p.add_argument("--data", required=True, type=Path, help="prepared dataset folder")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--generator", help="run folder or Hub repo id")
    src.add_argument("--synthetic", type=Path, help="synthetic flows (.parquet or .csv)")
    p.add_argument("--out", required=True, type=Path, help="report folder")
    p.add_argument("--axes", nargs="+", default=list(AXES), choices=AXES, help="axes to evaluate (default all)")
    p.add_argument("--split-seeds", type=int, default=3, help="split seeds for utility figures (default 3)")
    p.add_argument("--retrain", action="store_true",
                   help="fit a fresh generator per split seed (same family and settings)")
    p.add_argument("--n-packets", type=int, help="packets per flow to judge (default: the generator's)")
    p.add_argument("--classifiers", nargs="+", default=["rf", "cnn"], choices=("rf", "cnn"),
                   help="TSTR classifiers: Random Forest (the paper's) and a 1-D CNN (default both)")
    p.add_argument("--augmentation-seeds", type=int, default=3, help="seeds of the low-data subsets (default 3)")
    p.add_argument("--no-augmentation-refit", dest="augmentation_refit", action="store_false",
                   help="skip fitting a generator on each low-data fraction (costly for neural families on CPU)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ntg.evaluation.evaluate import evaluate

    if args.split_seeds < 1:
        raise NtgError(f"--split-seeds must be at least 1, not {args.split_seeds}")
    report = evaluate(
        args.data,
        generator=args.generator,
        synthetic=args.synthetic,
        out_dir=args.out,
        axes=tuple(args.axes),
        split_seeds=args.split_seeds,
        retrain=args.retrain,
        n_packets=args.n_packets,
        progress=not args.quiet,
        classifiers=tuple(args.classifiers),
        augmentation_seeds=args.augmentation_seeds,
        augmentation_refit=args.augmentation_refit,
    )
    print((Path(args.out) / "report.md").read_text() if (Path(args.out) / "report.md").exists() else report)
    return 0


# ---------------------------------------------------------------------------------------------- demo
def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="the paper's comparison on iot-sentinel: prepare, train every family, evaluate, compare",
        description="Prepare iot-sentinel, train each generator family and baseline with its default config, "
        "evaluate all, and print one comparison table plus a fidelity-vs-cost plot (about 30 minutes on 2 "
        "CPU cores). Finished steps are reused when re-run.",
    )
    p.add_argument("--dataset", default="iot-sentinel", help="registry name or capture folder")
    p.add_argument("--workdir", type=Path, default=Path("artifacts/demo"), help="where everything is written")
    p.add_argument("--families", nargs="+", help="subset of families (default: all)")
    p.add_argument("--split-seeds", type=int, default=2, help="split seeds for utility figures (default 2)")
    p.add_argument("--quick", action="store_true", help="tiny budgets (a smoke run in a few minutes)")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from ntg.demo import run_demo

    run_demo(args.dataset, args.workdir, families=args.families, split_seeds=args.split_seeds, quick=args.quick)
    return 0
