"""Trial scratch folders: a SIGKILLed trial's folder is removed by the next trial, a live one's never."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ntg.training.scratch import PREFIX, STALE_AFTER_S, remove_stale, trial_scratch

HOLD_SCRATCH = """
import sys, time
from ntg.training.scratch import trial_scratch
with trial_scratch() as folder:
    (folder / "checkpoint.pt").write_bytes(b"x" * 1000)
    print(folder, flush=True)
    time.sleep(600)
"""


def _holder(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    """A process inside ``trial_scratch()`` with its temp directory in ``tmp_path``, and its folder."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD_SCRATCH], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(tmp_path)})
    folder = Path(proc.stdout.readline().strip())
    assert folder.parent == tmp_path and folder.name.startswith(f"{PREFIX}{proc.pid}-")
    return proc, folder


def test_a_killed_trials_folder_is_removed_and_a_live_ones_kept(tmp_path: Path) -> None:
    killed, killed_folder = _holder(tmp_path)
    live, live_folder = _holder(tmp_path)
    try:
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait(timeout=30)
        assert killed_folder.is_dir()  # its finally never ran
        later = time.time() + STALE_AFTER_S + 1
        assert remove_stale(tmp_path, now=time.time()) == []  # written just now: left alone whatever the pid
        assert remove_stale(tmp_path, now=later) == [killed_folder]
        assert not killed_folder.exists() and live_folder.is_dir()
    finally:
        live.kill()
        live.wait(timeout=30)


def test_the_context_removes_its_own_folder_and_leaves_other_names(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    other = tmp_path / f"{PREFIX}not-a-pid"
    other.mkdir()
    os.utime(other, (0, 0))
    with trial_scratch() as folder:
        assert folder.is_dir() and folder.parent == tmp_path
    assert not folder.exists() and other.is_dir()
