"""Resumable steps: each finished step is recorded in ``WORKDIR/steps.json`` and skipped on the next run.

A step is recorded only once it returned, so an interrupted step (Ctrl-C, a killed process) runs again; the
steps themselves resume where that is worth it (the sweep continues from its trial records).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ntg.utils.io import read_json, write_json

STEPS_FILE = "steps.json"


def say(message: str) -> None:
    """One progress line on stderr, stamped with the time of day."""
    print(f"[demo {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class StepRow:
    """One line of the final summary."""

    step: str
    seconds: float
    path: str
    reused: bool = False


@dataclass
class Steps:
    """Runs the demo's steps in order, records each one finished, and keeps the rows of the summary."""

    workdir: Path
    names: tuple[str, ...]
    rows: list[StepRow] = field(default_factory=list)

    def __post_init__(self) -> None:
        file = self.workdir / STEPS_FILE
        self._done: dict[str, Any] = read_json(file).get("steps", {}) if file.exists() else {}

    def done(self, name: str) -> bool:
        return name in self._done

    def info(self, name: str) -> Any:
        return self._done.get(name, {}).get("info")

    def run(self, name: str, path: str | Path, fn: Callable[[], Any]) -> Any:
        """``fn()`` unless a previous run finished this step; returns its (JSON) result either way.

        A step that runs again makes every later step run again too: they were built on its old result.
        """
        label = f"{self.names.index(name) + 1}/{len(self.names)} {name}"
        if name in self._done:
            record = self._done[name]
            say(f"{label}: done before ({record['seconds']:.0f} s), reusing {record['path']}")
            self.rows.append(StepRow(name, float(record["seconds"]), record["path"], reused=True))
            return record.get("info")
        self.forget(*self.names[self.names.index(name):])
        say(label)
        started = time.perf_counter()
        info = fn()
        seconds = time.perf_counter() - started
        self._done[name] = {"seconds": round(seconds, 1), "path": str(path), "info": info,
                            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        write_json(self.workdir / STEPS_FILE, {"steps": self._done})
        say(f"    {name} done in {seconds:.0f} s: {path}")
        self.rows.append(StepRow(name, seconds, str(path)))
        return info

    def forget(self, *names: str) -> None:
        """Mark steps to run again."""
        if not any(name in self._done for name in names):
            return
        for name in names:
            self._done.pop(name, None)
        write_json(self.workdir / STEPS_FILE, {"steps": self._done})

    def table(self, total_s: float) -> str:
        """The summary as a Markdown table: step, seconds (a reused step: its first run's, marked), path."""
        lines = ["| step | seconds | path |", "|---|---|---|"]
        for row in self.rows:
            seconds = f"{row.seconds:.0f} (reused)" if row.reused else f"{row.seconds:.0f}"
            lines.append(f"| {row.step} | {seconds} | {row.path} |")
        lines.append(f"| total (this run) | {total_s:.0f} | |")
        return "\n".join(lines)
