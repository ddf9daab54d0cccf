"""`ntg sweep`: multi-objective architecture search on Ray Tune + Optuna, persisted and resumable."""

from __future__ import annotations

import argparse
from pathlib import Path

DESCRIPTION = """\
Search the generator families' spaces (search_spaces/*.yaml) for the configurations that are as faithful as
possible for as little compute as possible. Ray Tune runs the trials (each: parameter budget check, the one
training loop, a fast evaluation on the validation split); Optuna proposes them (multi-objective TPE,
NSGA-II or random). SWEEP_DIR gets sweep.json, trials/<id>.json with each trial's generator, the Optuna study
(study.db) and Tune's folder (tune/). A trial over the parameter budget is never trained; one whose samples
copy training flows (the privacy gate) is infeasible: neither joins the front (`ntg pareto SWEEP_DIR`).

Interrupted (Ctrl-C, kill, reboot)? Run the same command again (or add --resume): finished trials are kept,
the sweep continues to --trials in all."""

EPILOG = """\
examples:
  ntg sweep --space search_spaces/transformer.yaml --data data/iot --trials 40 --out sweeps/tf
  ntg sweep --space search_spaces/markov.yaml search_spaces/transformer.yaml --data data/iot --trials 20 \\
            --out sweeps/mix --objectives fidelity,flops_per_flow --max-epochs 5 --scheduler asha
  ntg pareto sweeps/tf                                   # the front, tables and plots
  ntg sweep --space search_spaces/markov.yaml --data data/iot --trials 20 --out s3://my-bucket/sweeps/mk
  ntg pareto s3://my-bucket/sweeps/mk                    # from any machine with the bucket's credentials
  optuna-dashboard sqlite:///$PWD/sweeps/tf/study.db    # the study in Optuna's dashboard
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="multi-objective architecture search (Ray Tune + Optuna)",
                       description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--space", nargs="+", required=True, metavar="FILE", help="search space YAML file(s)")
    p.add_argument("--data", required=True, type=Path, help="prepared dataset folder (ntg data prepare)")
    p.add_argument("--trials", required=True, type=int, metavar="N", help="trials in all (finished ones count)")
    p.add_argument("--out", required=True, metavar="SWEEP_DIR",
                   help="sweep folder: a path (on a cluster: one every node mounts), file:///path, or an object "
                        "store URI s3://bucket/prefix or gs://bucket/prefix (S3-compatible servers: "
                        "?endpoint_override=HOST:PORT&scheme=http), mirrored locally by the driver")
    p.add_argument("--objectives", metavar="LIST",
                   help="comma-separated, e.g. fidelity:min,flops_per_flow:min (the default); also tstr_f1, "
                        "parameters, sample_flows_per_s, train_seconds")
    p.add_argument("--sampler", default="tpe", choices=("tpe", "nsga2", "random"), help="Optuna sampler")
    p.add_argument("--seed", type=int, default=0, help="sampler seed (default 0)")
    p.add_argument("--concurrency", type=int, metavar="K", help="trials at a time (default: CPUs / cpus-per-trial)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0, metavar="C", help="CPUs (and torch threads)")
    p.add_argument("--gpus-per-trial", type=float, default=0.0, metavar="G", help="GPUs per trial (fractions ok)")
    p.add_argument("--max-epochs", type=int, metavar="E", help="cap on every trial's train.epochs")
    p.add_argument("--time-budget", metavar="DURATION", help="stop starting trials after e.g. 90s, 30m, 2h")
    p.add_argument("--max-parameters", type=int, metavar="P", help="parameter budget (default: the space's, 2 M)")
    p.add_argument("--scheduler", default="fifo", choices=("fifo", "asha"),
                   help="asha: successive halving on validation loss within each family")
    p.add_argument("--study-storage", metavar="URL",
                   help="Optuna storage: SWEEP_DIR/study.db (SQLite) by default on a local disk, "
                        "journal:study.journal on a network file system (NFS, EFS, FUSE) or an s3:// / gs:// "
                        "--out (one driver per sweep); journal:PATH or an "
                        "SQLAlchemy URL (postgresql://...) to choose")
    p.add_argument("--address", metavar="auto|HOST:PORT",
                   help="run on this Ray cluster (default: start a local Ray instance for the sweep)")
    p.add_argument("--workers-per-trial", type=int, default=1, metavar="W",
                   help="W > 1: each neural trial trains with Ray Train (W DDP workers, --cpus-per-trial and "
                        "--gpus-per-trial each); its evaluation runs once, on the trained model")
    p.add_argument("--allow-autoscale", action="store_true",
                   help="skip the check that a trial fits on a node now (an autoscaler will add such nodes)")
    p.add_argument("--max-failures", type=int, default=2, metavar="M",
                   help="retries of a failed trial (a lost node), from its last checkpoint (default 2)")
    p.add_argument("--resume", action="store_true", help="continue the sweep in SWEEP_DIR (it must exist)")
    p.add_argument("--force", action="store_true", help="write into SWEEP_DIR even if it is not a sweep folder")
    p.set_defaults(func=cmd_sweep)


def cmd_sweep(args: argparse.Namespace) -> int:
    from ntg.search.sweep import SweepOptions, parse_duration, run_sweep

    options = SweepOptions(
        spaces=args.space, data_dir=args.data, n_trials=args.trials, out=args.out, objectives=args.objectives,
        sampler=args.sampler, seed=args.seed, concurrency=args.concurrency, cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial, max_epochs=args.max_epochs,
        time_budget_s=parse_duration(args.time_budget), max_parameters=args.max_parameters,
        scheduler=args.scheduler, study_storage=args.study_storage, address=args.address, resume=args.resume,
        force=args.force, allow_autoscale=args.allow_autoscale, workers_per_trial=args.workers_per_trial,
        max_failures=args.max_failures,
    )
    run_sweep(options, log=lambda line: print(line, flush=True))
    return 0
