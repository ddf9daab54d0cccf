"""The ``ntg`` command line: one module per command group, each exposing ``register(sub)``.

Every sub-command has ``--help``. User errors (bad paths, unknown names, bad values, unwritable folders)
print one line ``ntg: error: ...`` and exit with status 2; no traceback. ``main`` is the only place that
turns exceptions into messages, so every command goes through the same door.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from ntg import __version__
from ntg.errors import NtgError

#: Command-group modules under ``ntg.cli``, registered in this order (each exposes ``register(sub)``).
COMMAND_MODULES: tuple[str, ...] = ("data", "train", "evaluate", "demo", "sweep", "pareto", "zoo")

EPILOG = """examples:
  ntg data prepare iot-sentinel --out data/iot          # registry name (NTG_DATA_ROOT is looked up first)
  ntg data prepare ./captures --labels ndpi --out data/mine
  ntg train --family transformer --data data/iot --out runs/tf
  ntg sample runs/tf --n 10000 --out synth.parquet
  ntg evaluate --data data/iot --generator runs/tf --out reports/tf
"""


class NtgParser(argparse.ArgumentParser):
    """Usage errors (a missing option, ``--n abc``) end like every other user error: one line, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"ntg: error: {self.prog}: {message}; see `{self.prog} --help`\n")


def build_parser() -> argparse.ArgumentParser:
    parser = NtgParser(
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
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return status
    except NtgError as err:
        return _fail(str(err))
    except BrokenPipeError:  # output piped into `head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as err:
        if err.filename is None and err.errno not in _DISK_ERRNOS:
            raise  # not about a user's path: a bug, keep the traceback
        return _fail(os_error_message(err))
    except KeyboardInterrupt:
        print("ntg: interrupted; finished work is kept (re-run to resume)", file=sys.stderr)
        return 130


_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def os_error_message(err: OSError) -> str:
    """One line for an operating-system error on a user's path: which path, what happened, what to do."""
    path = err.filename or "output"
    advice = {
        PermissionError: "check its permissions or choose a folder you can write to",
        IsADirectoryError: "it is a folder; give a file name",
        NotADirectoryError: "a part of the path is a file, not a folder; choose another path",
        FileNotFoundError: "check the path",
        FileExistsError: "choose another path",
    }.get(type(err), "free some space or choose another path" if err.errno in _DISK_ERRNOS else "check the path")
    return f"{path}: {err.strerror or err}; {advice}"


def _fail(message: str) -> int:
    print(f"ntg: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
