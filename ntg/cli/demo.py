"""`ntg demo`: the paper's comparison on iot-sentinel in one command."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    _add_demo(sub)


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
