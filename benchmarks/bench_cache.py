"""The quality benchmark's cell cache: where a cell is stored, when a stored cell counts, and seeding the cache
from an earlier run's results.

A cell is stored as one JSON record under ``--cache``/cells, keyed by its settings (``config``: the prepared
split's digest, the neural settings, a digest of the scoring code, the scoring seeds). A record counts only where
that key equals the planned cell's, so a record written by other code or on other data is never reused.

``--reuse RESULTS.json`` (e.g. the committed ``benchmarks/results/quality.json``) seeds the cache with the records
of that run, under the same rule: after a change to one family, ``--reuse ... --fresh FAMILY`` (or
``DATASET:FAMILY`` for one set's cells) refits those cells and takes every other cell from the committed run
instead of computing the whole benchmark again (a cold run takes about 135 min on 2 cores). Reused records bring no
fitted generator, so a cell whose scoring changed since is refitted, not scored again.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

CELL_KEY = ("kind", "dataset", "seed", "family")


def cache_name(dataset: str) -> str:
    """A dataset's name in the cache's folder and file names: a registry name as it is; a path to the user's own
    captures or flow file as its stem and a digest of the resolved path (two ``captures/`` folders stay apart)."""
    if "/" not in dataset and os.sep not in dataset:
        return dataset
    resolved = str(Path(dataset).expanduser().resolve())
    return f"{Path(resolved).stem}-{hashlib.sha256(resolved.encode()).hexdigest()[:8]}"


def cached(task: dict[str, Any]) -> dict[str, Any] | None:
    """The stored record of a cell computed with the same dataset and settings, else None."""
    from ntg.utils.io import read_json

    path = Path(task["path"])
    try:
        record = read_json(path) if path.exists() else None
    except ValueError:
        return None
    return record if record and record.get("config") == task["config"] else None


def chosen(task: dict[str, Any], names: list[str] | set[str]) -> bool:
    """Whether ``names`` (``--fresh``'s FAMILY or DATASET:FAMILY entries) name this cell."""
    return task["family"] in names or f"{task['dataset']}:{task['family']}" in names


def seed_from_results(tasks: list[dict[str, Any]], results: Path, skip: set[str]) -> int:
    """Store, for each planned cell with no usable cached record and not named by ``skip`` (:func:`chosen`), the
    record of the same cell in ``results`` (a ``bench_quality.py`` JSON) whose settings match; how many were
    stored."""
    from ntg.errors import NtgError
    from ntg.utils.io import read_json, write_json

    try:
        run = read_json(results)
    except (OSError, ValueError) as exc:
        raise NtgError(f"--reuse {results}: not a readable benchmark result ({exc}); pass the .json that "
                       "bench_quality.py wrote, e.g. benchmarks/results/quality.json") from exc
    if not isinstance(run, dict) or "records" not in run:
        raise NtgError(f"--reuse {results}: no 'records' in it; pass the .json that bench_quality.py wrote")
    earlier = {tuple(r.get(k) for k in CELL_KEY): r for r in [*run["records"], *run.get("augmentation", [])]}
    stored = 0
    for task in tasks:
        record = earlier.get(tuple(task[k] for k in CELL_KEY))
        if chosen(task, skip) or record is None or record.get("config") != task["config"] or cached(task):
            continue
        write_json(Path(task["path"]), record)
        stored += 1
    return stored
