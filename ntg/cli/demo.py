"""`ntg demo`: the platform end to end in one command (what `make demo` runs)."""

from __future__ import annotations

import argparse
from pathlib import Path

DESCRIPTION = """\
Prepare iot-sentinel, run two sweeps on a local Ray instance (Ray Tune + Optuna): "baseline" (the Markov
chain) and "neural" (small transformer, SSM and diffusion models); compute each Pareto front (fidelity
against FLOPs per flow), publish both to a local zoo with test-split evaluation cards, serve the zoo (olah)
to the plain Hugging Face client, download one generator back and check it samples the same flows as the
published one, compare the two fronts from the cards, and stop the server. 15-20 minutes on 2 CPU cores; a
final table says where every artefact is. Every finished step is recorded in WORKDIR/steps.json: run it
again and it resumes. Afterwards `ntg zoo serve --zoo WORKDIR/zoo` serves the demo's zoo again and
`ntg pareto WORKDIR/sweeps/neural` redraws a front."""


def register(sub: argparse._SubParsersAction) -> None:
    from ntg.demo.budget import SWEEP_FAMILIES

    p = sub.add_parser("demo", help="the platform end to end: prepare, sweep, front, publish, serve, download, "
                       "sample, compare", description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="iot-sentinel", help="registry name or capture folder")
    p.add_argument("--workdir", type=Path, default=Path("artifacts/demo"), help="where everything is written")
    p.add_argument("--families", nargs="+", metavar="FAMILY",
                   help=f"families to sweep (default: all of {', '.join(SWEEP_FAMILIES)})")
    p.add_argument("--trials", type=int, metavar="N",
                   help="trials of each sweep (default: baseline 6, neural 12; --quick 3)")
    p.add_argument("--split-seeds", type=int, metavar="K",
                   help="split seeds of the published test-split evaluations (default 1)")
    p.add_argument("--quick", action="store_true", help="tiny budgets: every step, a smoke run of a few minutes")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from ntg.demo import run_demo

    run_demo(args.dataset, args.workdir, families=args.families, split_seeds=args.split_seeds, quick=args.quick,
             trials=args.trials)
    return 0
