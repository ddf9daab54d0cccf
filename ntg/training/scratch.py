"""Scratch folders for trials that a killed process would leave behind.

A Tune trial trains in a temporary folder (its per-epoch checkpoint, then the generator it reports) and removes
it in a ``finally``. A trial killed with SIGKILL (a lost node, ``ray stop --force``, the out-of-memory killer)
never runs that ``finally``: before this module, every such trial left its ``ntg-trial-*`` folder in the temp
directory, up to a few hundred KB each (35 of them after a few days of resume tests here).

:func:`trial_scratch` names each folder after the process that owns it (``ntg-trial-<pid>-<random>``) and, before
making one, removes the folders whose owner is gone: no process with that pid on this machine, and nothing
written in the folder for ``STALE_AFTER_S`` seconds (so a folder of another PID namespace sharing the temp
directory, where the pid means nothing, is left alone while its trial is writing checkpoints).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PREFIX = "ntg-trial-"
STALE_AFTER_S = 600.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _owner(folder: Path) -> int | None:
    """The pid in ``ntg-trial-<pid>-<random>``, or None for a name of another shape (left alone)."""
    parts = folder.name[len(PREFIX):].split("-", 1)
    return int(parts[0]) if len(parts) == 2 and parts[0].isdigit() else None


def remove_stale(root: Path | None = None, now: float | None = None) -> list[Path]:
    """Remove the scratch folders in ``root`` (the temp directory) whose owner process is gone; return them."""
    root = Path(root or tempfile.gettempdir())
    now = time.time() if now is None else now
    removed = []
    for folder in root.glob(f"{PREFIX}*"):
        pid = _owner(folder)
        try:
            idle = now - folder.stat().st_mtime
        except FileNotFoundError:  # removed by another process meanwhile
            continue
        if pid is None or pid == os.getpid() or idle < STALE_AFTER_S or _alive(pid):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


@contextmanager
def trial_scratch() -> Iterator[Path]:
    """A fresh scratch folder for one trial, removed on exit; stale folders of killed trials go first."""
    remove_stale()
    folder = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
