"""`ntg pareto SWEEP_DIR`: the non-dominated trials of a sweep, their hypervolume, a table and plots."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pareto",
        help="Pareto front and hypervolume of a sweep (works while it runs)",
        description="Read SWEEP_DIR/trials/*.json (what has finished so far), keep feasible trials once per "
        "configuration, and write front.csv, front.json, front.png, front.html and hypervolume.png. "
        "Objectives are normalised (log10(1+x) for compute, min-max over the feasible trials) against the "
        "reference point 1.1 per objective; see search_spaces/README.md.",
    )
    p.add_argument("sweep_dir", metavar="SWEEP_DIR",
                   help="the --out of `ntg sweep`: a folder, or an s3:// / gs:// URI (read through a local mirror)")
    p.add_argument("--objectives", metavar="NAME[:DIR],...",
                   help="objectives to rank on, e.g. fidelity:min,flops_per_flow:min (default: the sweep's)")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="folder for the front files and plots (default: SWEEP_DIR; for a URI, uploaded there)")
    p.add_argument("--rows", type=int, default=30, help="front rows shown in the terminal (default 30)")
    p.set_defaults(func=cmd_pareto)


def cmd_pareto(args: argparse.Namespace) -> int:
    from ntg.errors import NtgError
    from ntg.search.pareto import compute_front, format_table, write_front
    from ntg.search.storage import open_sweep

    if args.rows < 1:
        raise NtgError(f"--rows must be at least 1, not {args.rows}")
    sweep_dir, store = open_sweep(args.sweep_dir)
    result = compute_front(sweep_dir, args.objectives)
    paths = write_front(result, args.out or sweep_dir)
    print(format_table(result, max_rows=args.rows))
    print("wrote " + ", ".join(str(path) for path in paths.values()))
    if store is not None and args.out is None:
        store.push()
        print(f"uploaded to {store.uri}")
    return 0
