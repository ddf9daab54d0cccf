"""The ``ntg`` command line: one module per command group, each exposing ``register(sub)``.

Every sub-command has ``--help``. User errors (bad paths, unknown names, bad values, unwritable folders)
print one line ``ntg: error: ...`` and exit with status 2; no traceback. ``main`` is the only place that
turns exceptions into messages, so every command goes through the same door.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from ntg import __version__
from ntg.errors import NtgError

#: Command-group modules under ``ntg.cli``, registered in this order (each exposes ``register(sub)``).
COMMAND_MODULES: tuple[str, ...] = ("data", "train", "evaluate", "demo")

EPILOG = """examples:
  ntg data prepare iot-sentinel --out data/iot          # registry name (NTG_DATA_ROOT is looked up first)
  ntg data prepare ./captures --labels ndpi --out data/mine
  ntg train --family transformer --data data/iot --out runs/tf
  ntg sample runs/tf --n 10000 --out synth.parquet
  ntg evaluate --data data/iot --generator runs/tf --out reports/tf
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ntg",
        description="ntg — lightweight generative models of network traffic: learn from real captures, "
        "synthesise labelled biflows, and judge them on fidelity, utility, privacy and cost.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ntg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"ntg.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except NtgError as err:
        print(f"ntg: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ntg: interrupted; finished work is kept (re-run to resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
