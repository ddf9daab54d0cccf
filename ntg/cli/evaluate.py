"""`ntg evaluate`: judge a generator or a synthetic flow file against held-out real flows."""

from __future__ import annotations

import argparse
from pathlib import Path

from ntg.errors import NtgError
from ntg.evaluation.options import AXES, CLASSIFIER_NAMES, FRACTIONS, PROFILES


def register(sub: argparse._SubParsersAction) -> None:
    _add_evaluate(sub)


# ---------------------------------------------------------------------------------------------- evaluate


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="fidelity, synthetic-only training, augmentation, privacy and cost of a generator",
        description="Judge a generator (run folder or Hub repo id) or a synthetic flow file against held-out "
        "real flows (the test split; the validation split with --profile fast); "
        "writes REPORT_DIR/report.json, report.md and figures.",
    )
    p.add_argument("--data", required=True, type=Path, help="prepared dataset folder")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--generator", help="run folder or Hub repo id")
    src.add_argument("--synthetic", type=Path, help="synthetic flows (.parquet or .csv)")
    p.add_argument("--out", required=True, type=Path, help="report folder")
    p.add_argument("--profile", choices=PROFILES, default="full",
                   help="full (default): every axis against the test split; fast (what a sweep runs per trial, "
                   "seconds): fidelity, TSTR with the Random Forest on one split seed and the privacy figures, "
                   "against the validation split (the test split untouched); --axes, --split-seeds and "
                   "--classifiers given beside it still apply")
    p.add_argument("--axes", nargs="+", default=list(AXES), choices=AXES, help="axes to evaluate (default all)")
    p.add_argument("--split-seeds", type=int, default=3, help="split seeds for utility figures (default 3)")
    p.add_argument("--retrain", action="store_true",
                   help="fit a fresh generator per split seed (same family and settings)")
    p.add_argument("--n-packets", type=int, help="packets per flow to judge (default: the generator's)")
    p.add_argument("--classifiers", nargs="+", default=list(CLASSIFIER_NAMES), choices=CLASSIFIER_NAMES,
                   help="TSTR classifiers: Random Forest (the paper's) and a 1-D CNN (default both)")
    p.add_argument("--augmentation-seeds", type=int, default=3, help="seeds of the low-data subsets (default 3)")
    p.add_argument("--augmentation-fractions", type=float, nargs="+", metavar="F",
                   help="shares of the training split the low-data subsets keep, each in (0, 1) "
                   f"(default {' '.join(str(f) for f in FRACTIONS)})")
    p.add_argument("--no-augmentation-refit", dest="augmentation_refit", action="store_false",
                   help="skip fitting a generator on each low-data fraction (costly for neural families on CPU)")
    p.add_argument("--force", action="store_true", help="replace --out even if it is not a report folder ntg wrote")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ntg.data.schema import MAX_PACKETS
    from ntg.evaluation.evaluate import evaluate

    if args.split_seeds < 1:
        raise NtgError(f"--split-seeds must be at least 1, not {args.split_seeds}")
    if args.n_packets is not None and not 1 <= args.n_packets <= MAX_PACKETS:
        raise NtgError(f"--n-packets {args.n_packets}: give 1..{MAX_PACKETS} (or leave it out: the generator's)")
    fast = args.profile == "fast"  # there, options left at the full profile's defaults take the fast ones

    def chosen(value, full_default):
        return None if fast and value == full_default else value

    report = evaluate(
        args.data,
        generator=args.generator,
        synthetic=args.synthetic,
        out_dir=args.out,
        profile=args.profile,
        axes=chosen(tuple(args.axes), AXES),
        split_seeds=chosen(args.split_seeds, 3),
        retrain=args.retrain,
        n_packets=args.n_packets,
        progress=not args.quiet,
        classifiers=chosen(tuple(args.classifiers), CLASSIFIER_NAMES),
        augmentation_seeds=args.augmentation_seeds,
        fractions=tuple(args.augmentation_fractions) if args.augmentation_fractions else None,
        augmentation_refit=args.augmentation_refit,
        force=args.force,
    )
    print((Path(args.out) / "report.md").read_text() if (Path(args.out) / "report.md").exists() else report)
    return 0
