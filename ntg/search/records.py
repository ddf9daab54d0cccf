"""The sweep folder's files: ``sweep.json`` (what the sweep is) and ``trials/<trial_id>.json`` (one per finished
trial), the layout of the search API that ``ntg pareto`` reads.

The records are the sweep's ground truth: a resumed sweep counts them, never trains their configurations
again, and repairs the Optuna study from them (a driver killed between writing a record and telling Optuna).
Paths in them are relative to the sweep folder, so the folder can be moved or read on another machine.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ntg.errors import NtgError
from ntg.utils.io import atomic_dir, read_json, write_json

SWEEP_FILE = "sweep.json"
TRIALS_DIR = "trials"
#: file systems that several machines mount (SQLite's locking is unsafe there; Optuna's journal file is made for it)
NETWORK_FS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "lustre", "gpfs", "beegfs", "ceph", "glusterfs", "9p",
              "efs", "fuse.s3fs", "fuse.gcsfuse", "fuse.juicefs", "fuse.mountpoint-s3", "fuse.sshfs")
#: sweep.json keys that must match when a sweep is resumed (the rest, e.g. "created", may differ)
RESUME_KEYS = ("objectives", "space", "study_name", "max_parameters")


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def iso_ms(epoch_s: float) -> str:
    """``epoch_s`` (seconds since the epoch) as ISO 8601 UTC with milliseconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_s)) + f".{int(epoch_s % 1 * 1000):03d}Z"


def resolve_sweep_dir(out: str | Path) -> Path:
    """``--out`` as a local folder: a path, or a ``file://`` URI.

    Object-store URIs (``s3://``, ``gs://``) are mirrored by :mod:`ntg.search.storage` before this is reached;
    any other scheme is refused rather than silently written to a local folder of that name.
    """
    text = str(out)
    scheme, sep, rest = text.partition("://")
    if not sep:
        return Path(text).expanduser().resolve()
    if scheme == "file":
        from urllib.parse import unquote, urlparse

        parsed = urlparse(text)
        if parsed.netloc not in ("", "localhost"):
            raise NtgError(f"--out {text}: a file:// URI names a path on this machine; write file:///abs/path")
        return Path(unquote(parsed.path)).resolve()
    raise NtgError(f"--out {text}: {scheme}:// is not storage ntg writes; give a path (an NFS mount on a "
                   "cluster), file:///path, s3://bucket/prefix or gs://bucket/prefix")


def filesystem_type(path: Path) -> str:
    """The type of the file system holding ``path`` (``/proc/mounts``, longest matching mount point)."""
    probe = path.resolve()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    best, kind = "", "unknown"
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return kind
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount = fields[1].replace("\\040", " ")
        inside = str(probe) == mount or str(probe).startswith(mount.rstrip("/") + "/")
        if inside and len(mount) > len(best):
            best, kind = mount, fields[2]
    return kind


def is_network_fs(path: Path) -> bool:
    """Whether ``path`` lies on a file system that other machines mount too (see :data:`NETWORK_FS`)."""
    kind = filesystem_type(path)
    return kind in NETWORK_FS or kind.startswith(("nfs", "fuse.s3", "fuse.gcs"))


def comparable_space(space: Mapping[str, Any]) -> dict[str, Any]:
    """The space without its file paths: the same space given by another relative path is the same sweep."""
    return {k: v for k, v in space.items() if k != "sources"}


def check_or_write_sweep(sweep_dir: Path, meta: dict[str, Any], resume: bool) -> dict[str, Any]:
    """Write ``sweep.json`` for a new sweep; for an existing one, check it is the same sweep and return it."""
    path = sweep_dir / SWEEP_FILE
    if not path.exists():
        if resume:
            raise NtgError(f"{sweep_dir}: no {SWEEP_FILE} to resume; drop --resume to start a new sweep there")
        write_json(path, meta)
        return meta
    stored = read_json(path)
    for key in RESUME_KEYS:
        old, new = stored.get(key), meta.get(key)
        if key == "space":
            old, new = comparable_space(old or {}), comparable_space(new or {})
        if old != new:
            raise NtgError(f"{path}: the sweep there has another {key} ({_short(old)} ≠ {_short(new)}); "
                           "use the same space and objectives to resume, or a new --out for a new sweep")
    return stored


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def load_trial_records(sweep_dir: Path) -> list[dict[str, Any]]:
    """Every finished trial's record, in the order the trials finished."""
    folder = sweep_dir / TRIALS_DIR
    records = [read_json(p) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []
    return sorted(records, key=lambda r: (r.get("finished") or "", r.get("trial_id") or ""))


def trial_id_for(number: int | None, family: str, fallback: str) -> str:
    """``0007-transformer``: the Optuna trial number (unique in the study) and the family, readable in listings."""
    return f"{number:04d}-{family}" if number is not None else f"{fallback}-{family}"


def write_trial_record(
    sweep_dir: Path,
    *,
    trial_id: str,
    number: int | None,
    config: Mapping[str, Any],
    result: Mapping[str, Any] | None,
    generator_source: Path | None,
    status: str | None = None,
    error: str | None = None,
    wall_s: float = 0.0,
) -> dict[str, Any]:
    """Write ``trials/<trial_id>.json`` (and copy the generator to ``trials/<trial_id>/generator``)."""
    from ntg.search.trial import RESULT_KEY

    body = dict((result or {}).get(RESULT_KEY) or {})
    feasible = bool(body.get("feasible", False))
    if status is None:
        status = "complete" if feasible else "infeasible"
    generator_dir = None
    if generator_source is not None and generator_source.is_dir():
        generator_dir = f"{TRIALS_DIR}/{trial_id}/generator"
        with atomic_dir(sweep_dir / generator_dir) as tmp:
            shutil.copytree(generator_source, tmp, dirs_exist_ok=True)
    metrics = dict(body.get("metrics") or {})
    if body.get("reused_from"):
        metrics["reused_from"] = body["reused_from"]
        generator_dir = body.get("generator_dir")
    if error:
        metrics["error"] = error
    record = {
        "trial_id": trial_id,
        "number": number,
        "family": config.get("family"),
        "model": dict(config.get("model") or {}),
        "train": dict(body.get("train") or config.get("train") or {}),
        "config_key": config.get("config_key"),
        "objectives": dict(body.get("objectives") or {}),
        "metrics": metrics,
        "feasible": feasible and status == "complete",
        "infeasible_reason": body.get("infeasible_reason") if status != "error" else f"error: {error}",
        "status": status,
        "generator_dir": generator_dir,
        "device": body.get("device", "cpu"),
        "node_id": body.get("node_id"),
        "node_ip": body.get("node_ip"),
        "wall_s": float(wall_s),
        "started": body.get("started"),
        "finished": now_iso(),
    }
    if status == "pruned":
        record["infeasible_reason"] = f"stopped early by ASHA after {metrics.get('epochs', '?')} epoch(s)"
    write_json(sweep_dir / TRIALS_DIR / f"{trial_id}.json", record)
    return record


def reuse_payload(record: Mapping[str, Any]) -> dict[str, Any]:
    """What a duplicate configuration reports instead of training again: the earlier trial's result."""
    return {
        "objectives": dict(record["objectives"]),
        "metrics": {k: v for k, v in record.get("metrics", {}).items() if k != "reused_from"},
        "train": dict(record.get("train") or {}),
        "feasible": record.get("feasible", False),
        "infeasible_reason": record.get("infeasible_reason"),
        "device": record.get("device", "cpu"),
        "reused_from": record["trial_id"],
        "generator_dir": record.get("generator_dir"),
        "trained": False,
    }
