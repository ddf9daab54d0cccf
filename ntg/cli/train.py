"""`ntg train` and `ntg sample`: fit a generator on a prepared dataset, draw flows from it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ntg.errors import NtgError
from ntg.families import BASELINE_FAMILIES, FAMILIES, NEURAL_FAMILIES

FAMILIES_HELP = " | ".join(NEURAL_FAMILIES + BASELINE_FAMILIES)


def register(sub: argparse._SubParsersAction) -> None:
    _add_train(sub)
    _add_sample(sub)


# ---------------------------------------------------------------------------------------------- train
def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        add_help=False,
        help="fit a generator on a prepared dataset",
        description="Fit one generator family on the training split of a prepared dataset (validation split "
        "for early stopping) and write RUN_DIR: config.json + model.safetensors (Hugging Face layout), "
        "run.json, train_log.json and a loss curve. Re-running resumes from the last epoch checkpoint.",
    )
    p.add_argument("-h", "--help", action=FamilyHelp, help="show this help; with --family F before it, also "
                   "F's model and train settings (defaults, ranges)")
    p.add_argument("--family", required=True, choices=FAMILIES, metavar="FAMILY",
                   help=FAMILIES_HELP)  # checked here, before the models' imports (about 3 s)
    p.add_argument("--data", required=True, type=Path, help="prepared dataset folder (ntg data prepare)")
    p.add_argument("--out", required=True, type=Path, help="run folder to write")
    p.add_argument("--config", type=Path, help='JSON file {"model": {...}, "train": {...}}')
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting, e.g. model.d_model=128 or train.epochs=3 (repeatable)")
    p.add_argument("--force", action="store_true", help="replace --out even if it is not a run folder ntg wrote")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    ray = p.add_argument_group("on a Ray cluster (Ray Train, DDP; the same loop and run folder)")
    ray.add_argument("--workers", type=int, metavar="W",
                     help="train with W Ray Train workers (data-parallel); train.batch_size is per worker")
    ray.add_argument("--gpus-per-worker", type=float, default=0.0, metavar="G", help="GPUs per worker (default 0)")
    ray.add_argument("--cpus-per-worker", type=int, default=1, metavar="C", help="CPUs (torch threads) per worker")
    ray.add_argument("--address", metavar="auto|HOST:PORT",
                     help="the Ray cluster (default: a local Ray instance started for the run); RUN_DIR and "
                          "--data must be paths every node reads")
    p.set_defaults(func=cmd_train)


class FamilyHelp(argparse.Action):
    """``--help``: the usual help, then the settings table of the family named before it (``--family F``)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, nargs=0,
                         help=kwargs.get("help"))  # type: ignore[arg-type]

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        family = getattr(namespace, "family", None)
        if family is None:
            parser.print_help()
            print("\nadd --family F before --help to list the family's settings, e.g. "
                  "`ntg train --family transformer --help`")
            parser.exit()
        from ntg.models.settings import settings_help

        try:
            table = settings_help(family)
        except NtgError as err:
            parser.exit(2, f"ntg: error: {err}\n")
        parser.print_help()
        print(f"\n{table}")
        parser.exit()


def cmd_train(args: argparse.Namespace) -> int:
    from ntg.training.runs import train_run

    if args.workers is not None or args.address:
        run_dir = _train_on_ray(args)
    else:
        run_dir = train_run(args.family, args.data, args.out, config=args.config, overrides=args.overrides,
                            progress=not args.quiet, force=args.force)
    log = json.loads((Path(run_dir) / "train_log.json").read_text())
    params = log.get("num_parameters")
    print(f"{run_dir}: {args.family} trained ({params:,} parameters)" if params is not None else str(run_dir))
    return 0


def _train_on_ray(args: argparse.Namespace) -> Path:
    """``--workers``/``--address``: Ray Train DDP through :func:`ntg.training.ray_train.train_distributed`."""
    import ray

    from ntg.training.ray_train import connect, train_distributed
    from ntg.utils.io import claim_output_dir, read_json

    workers = args.workers if args.workers is not None else 1
    if workers < 1 or args.cpus_per_worker < 1 or args.gpus_per_worker < 0:
        raise NtgError("--workers and --cpus-per-worker must be ≥ 1 and --gpus-per-worker ≥ 0")
    claim_output_dir(args.out, "run", force=args.force, mark=False)
    config = read_json(args.config) if args.config else None
    owned = connect(args.address)
    try:
        return train_distributed(args.family, args.data, args.out, config, num_workers=workers,
                                 overrides=args.overrides, threads_per_worker=args.cpus_per_worker,
                                 gpus_per_worker=args.gpus_per_worker)
    finally:
        if owned:
            ray.shutdown()


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
    p.add_argument("--force", action="store_true", help="replace --out even if it is not a flow file ntg wrote")
    p.set_defaults(func=cmd_sample)


def cmd_sample(args: argparse.Namespace) -> int:
    from ntg.data.dataset import FLOWS_FILE
    from ntg.data.schema import is_flow_file
    from ntg.training.runs import sample_run
    from ntg.utils.io import claim_output_file, output_kind

    if args.n < 1:
        raise NtgError(f"--n must be positive, not {args.n}")
    if args.out.suffix not in (".parquet", ".csv"):
        raise NtgError(f"--out {args.out}: use a .parquet or .csv file name")
    if args.out.name == FLOWS_FILE and output_kind(args.out.parent) == "dataset" and not args.force:
        raise NtgError(f"--out {args.out}: holds the real flows of a prepared dataset; choose another file name "
                       "(nothing was changed)")
    claim_output_file(args.out, [is_flow_file], force=args.force)
    out = sample_run(args.run, n=args.n, label=args.label, seed=args.seed, out=args.out)
    print(f"{out}: {args.n} flows")
    return 0
