"""``ntg data prepare``: captures or a published dataset file → a labelled, filtered, split biflow table.

The result is ``OUT/flows.parquet`` + ``OUT/meta.json`` (see :mod:`ntg.data.dataset`). The output folder is
written atomically (an interrupted prepare leaves no half dataset) and a re-run with the same inputs and
parameters is a cache hit: the sources' content checksum and the parameters form ``meta["cache_key"]``.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ntg import __version__
from ntg.data.dataset import FLOWS_FILE, META_FILE, PreparedDataset, notices
from ntg.data.manifest import sha256_file
from ntg.data.pcap import CAPTURE_SUFFIXES, sniff_capture
from ntg.data.read_inputs import find_captures, read_captures, read_dataset_files, summarise_parsing, walk_files
from ntg.data.schema import MAX_PACKETS, SCHEMA_VERSION, FlowTable
from ntg.data.splits import DEFAULT_FRACTIONS, SplitResult, class_counts, split_captures, unsplittable_classes
from ntg.errors import NtgError
from ntg.utils.io import atomic_dir, claim_output_dir, read_json, write_json

UNKNOWN = "Unknown"
OTHER = "other"
PIPELINE_VERSION = 1  # bump when parsing/labelling changes what a prepare produces


@dataclass
class PrepareOptions:
    """Everything that changes a prepared dataset (part of the cache key)."""

    labels: str | None = None  # dir | ndpi | csv:FILE | given; None = the registry's choice (else dir)
    idle_timeout: float = 120.0
    max_packets: int = MAX_PACKETS
    min_packets: int = 2
    min_flows_per_class: int = 30
    small_classes: str = "drop"  # drop | other
    max_flows_per_class: int | None = None
    split_seed: int = 0
    split_fractions: tuple[float, float, float] = DEFAULT_FRACTIONS
    device_only: bool | None = None  # iot-sentinel: keep biflows of the folder's device MAC only
    keep_unknown: bool = False
    split_by: str = "auto"  # capture | flow | auto (flow for CESNET tables, which carry no capture, else capture)

    def check(self) -> None:
        if self.split_by not in ("auto", "capture", "flow"):
            raise NtgError(f"--split-by must be auto, capture or flow, not {self.split_by!r}")
        if self.small_classes not in ("drop", "other"):
            raise NtgError(f"--small-classes must be 'drop' or 'other', not {self.small_classes!r}")
        if not 1 <= self.max_packets <= MAX_PACKETS:
            raise NtgError(f"--max-packets must be within 1..{MAX_PACKETS}, not {self.max_packets}")
        if self.min_packets < 1:
            raise NtgError(f"--min-packets must be at least 1, not {self.min_packets}")
        if self.idle_timeout <= 0:
            raise NtgError(f"--idle-timeout must be positive, not {self.idle_timeout}")
        if self.max_flows_per_class is not None and self.max_flows_per_class < 1:
            raise NtgError(f"--max-flows-per-class must be positive, not {self.max_flows_per_class}")
        if self.min_flows_per_class < 0:
            raise NtgError(f"--min-flows-per-class must be 0 or more, not {self.min_flows_per_class}")
        shares = tuple(self.split_fractions)
        if len(shares) != 3 or any(not 0 <= s <= 1 for s in shares) or abs(sum(shares) - 1) > 1e-6:
            raise NtgError(f"--split {','.join(map(str, shares))}: expected three shares in 0..1 summing to 1, "
                           "like 0.7,0.1,0.2")
        if shares[0] == 0 or shares[2] == 0:
            raise NtgError(f"--split {','.join(map(str, shares))}: the train and test shares must be above 0 "
                           "(every class needs both); only the validation share may be 0")


@dataclass
class ResolvedSource:
    """What ``SOURCE`` turned out to be."""

    kind: str  # registry | captures | dataset-file
    path: Path
    fmt: str  # pcap | mirage-json | cesnet-ppi | cesnet-lists
    label_mode: str
    record: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- sources
def resolve_source(source: str, root: str | Path | None, offline: bool, progress: bool) -> ResolvedSource:
    from ntg.data import registry

    path = Path(source).expanduser()
    if source in registry.REGISTRY and not path.exists():
        spec = registry.get_spec(source)
        data = registry.locate(source, root=root, download=not offline, progress=progress)
        return ResolvedSource("registry", data, spec.fmt, spec.label_mode, spec.source_record(), spec.options)
    if not path.exists():
        raise NtgError(
            f"{source}: no such file or folder, and not a registry name; "
            f"`ntg data list` shows the registry ({', '.join(sorted(registry.REGISTRY))})"
        )
    if path.is_file():
        fmt = "pcap" if sniff_capture(path) else _detect_dataset_format(path)
        if fmt is None:
            raise NtgError(
                f"{path}: neither a pcap/pcapng capture nor a known dataset file "
                "(MIRAGE JSON, CESNET PPI CSV, CESNET-MINER22 list CSV)"
            )
        kind = "captures" if fmt == "pcap" else "dataset-file"
        return ResolvedSource(kind, path, fmt, "dir" if fmt == "pcap" else "given", {"path": str(path)})
    captures = find_captures(path)
    if captures:
        return ResolvedSource("captures", path, "pcap", "dir", {"path": str(path)})
    json_files = sorted(p for p in walk_files(path) if p.suffix == ".json")
    if json_files and _detect_dataset_format(json_files[0]) == "mirage-json":
        return ResolvedSource("dataset-file", path, "mirage-json", "given", {"path": str(path)})
    raise NtgError(
        f"{path}: no captures found (looked for {', '.join(CAPTURE_SUFFIXES)} and pcap magic, recursively); "
        "point SOURCE at a folder of captures, a capture, or a dataset file"
    )


def _detect_dataset_format(path: Path) -> str | None:
    from ntg.data import loaders

    return loaders.detect_dataset_file(path)


def source_checksum(paths: list[Path], base: Path) -> str:
    """sha256 over (relative path, content sha256) of every input file."""
    digest = hashlib.sha256()
    for p in sorted(paths):
        rel = p.relative_to(base).as_posix() if p != base else p.name
        digest.update(rel.encode() + b"\0" + sha256_file(p).encode() + b"\n")
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------- whole dataset
def prepare_dataset(
    source: str,
    out: str | Path,
    options: PrepareOptions | None = None,
    root: str | Path | None = None,
    offline: bool = False,
    jobs: int | None = None,
    progress: bool = True,
    force: bool = False,
    log: Callable[[str], None] | None = None,
) -> PreparedDataset:
    """Build (or reuse) the prepared dataset of ``source`` in ``out``."""
    options = options or PrepareOptions()
    options.check()
    log = log or (lambda msg: print(msg, file=sys.stderr))
    out = Path(out)
    claim_output_dir(out, "dataset", force=force, mark=False)  # before minutes of parsing
    resolved = resolve_source(source, root, offline, progress)
    label_mode = options.labels or resolved.label_mode
    if resolved.fmt != "pcap" and label_mode not in ("given",):
        raise NtgError(f"{resolved.path}: a {resolved.fmt} file carries its own labels; drop --labels {label_mode}")
    device_only = bool(options.device_only if options.device_only is not None else
                       resolved.options.get("device_only", False))
    inputs = _input_files(resolved)
    base = resolved.path if resolved.path.is_dir() else resolved.path.parent
    checksum = source_checksum(inputs, base)
    params = _parameters(options, label_mode, device_only)
    cache_key = hashlib.sha256(
        json.dumps({"checksum": checksum, "params": params, "schema": SCHEMA_VERSION,
                    "pipeline": PIPELINE_VERSION}, sort_keys=True).encode()
    ).hexdigest()
    reused = None if force else _up_to_date(out, cache_key, log)
    if reused is not None:
        return reused

    started = time.time()
    if resolved.fmt == "pcap":
        flows, capture_infos = read_captures(inputs, base, label_mode, options, device_only, jobs, progress)
    else:
        flows, capture_infos = read_dataset_files(resolved, inputs, options)
    summary = summarise_parsing(capture_infos)
    if len(flows) == 0:
        raise NtgError(f"{source}: no biflows in {len(inputs)} input file(s) ({summary['packets']} packets read, "
                       f"{len(summary['truncated_captures'])} truncated); give captures that hold traffic")
    flows, dropped, split = _filter_and_split(flows, source, resolved.fmt, options, label_mode, summary)
    meta = {
        "schema_version": SCHEMA_VERSION,
        "ntg_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": {**resolved.record, "kind": resolved.kind, "local_path": str(resolved.path),
                   "format": resolved.fmt, "checksum": checksum, "files": len(inputs)},
        "label_mode": label_mode,
        "params": params,
        "cache_key": cache_key,
        "split_seed": options.split_seed,
        "split_cost": split.cost,
        **_class_and_split_counts(flows),
        "dropped_classes": dropped,
        "parsing": summary,
        "seconds": round(time.time() - started, 2),
    }
    with atomic_dir(out, kind="dataset", force=True) as tmp:  # claimed above
        flows.write(tmp / FLOWS_FILE)
        write_json(tmp / META_FILE, meta)
    log(f"{out}: {len(flows)} biflows, {len(meta['classes'])} classes, {meta['captures']} captures "
        f"({meta['seconds']:.1f} s)")
    for line in notices(meta):
        log(line)
    return PreparedDataset.load(out)


def _filter_and_split(flows: FlowTable, source: str, fmt: str, options: PrepareOptions, label_mode: str,
                      summary: dict[str, Any]) -> tuple[FlowTable, list[dict], SplitResult]:
    """The parsed ``flows`` grouped (by capture, or each flow alone where ``split_by`` says so or the format has no
    captures), filtered, and with their ``split`` column; also the dropped classes and the capture split."""
    split_by = options.split_by if options.split_by != "auto" else (
        "flow" if fmt in ("cesnet-ppi", "cesnet-lists") else "capture")
    if split_by == "flow":  # each flow is its own group (sources without capture structure)
        flows.meta["capture"] = [f"{c}#{i}" for i, c in enumerate(flows.meta["capture"])]
    flows, dropped = _filter(flows, options, label_mode)
    if len(flows) == 0:
        raise NtgError(
            f"{source}: no flows left after filtering ({summary['biflows']} biflows parsed; "
            f"min packets {options.min_packets}, min flows per class {options.min_flows_per_class}); "
            "lower --min-flows-per-class or --min-packets, or check the labels"
        )
    split = split_captures(flows.meta["label"], flows.meta["capture"], seed=options.split_seed,
                           fractions=tuple(options.split_fractions))
    flows.meta["split"] = split.split_of(flows.meta["capture"])
    flows.meta = flows.meta[[c for c in _META_ORDER if c in flows.meta.columns]]
    return flows, dropped, split


def _parameters(options: PrepareOptions, label_mode: str, device_only: bool) -> dict[str, Any]:
    """The resolved options a prepared dataset depends on (with the label file's digest), as JSON."""
    params = {**asdict(options), "labels": label_mode, "device_only": device_only}
    params["split_fractions"] = list(options.split_fractions)
    if label_mode.startswith("csv:"):
        params["label_file_sha256"] = sha256_file(label_mode[4:]) if Path(label_mode[4:]).exists() else None
    return params


def _class_and_split_counts(flows: FlowTable) -> dict[str, Any]:
    """``meta.json``'s per-class table and the flow, split and capture counts of a split table."""
    labels, splits = flows.meta["label"], flows.meta["split"]
    return {
        "classes": class_counts(labels, splits, sorted(labels.unique().tolist())),
        "splits": {s: int((splits == s).sum()) for s in ("train", "val", "test")},
        "flows": len(flows),
        "captures": int(flows.meta["capture"].nunique()),
    }


def _input_files(resolved: ResolvedSource) -> list[Path]:
    """The capture or dataset files of a resolved source (NtgError when there are none)."""
    path = resolved.path
    if path.is_dir():
        inputs = find_captures(path) if resolved.fmt == "pcap" else sorted(walk_files(path))
    else:
        inputs = [path]
    if not inputs:
        raise NtgError(f"{path}: empty — no input files found")
    return inputs


def _up_to_date(out: Path, cache_key: str, log: Callable[[str], None]) -> PreparedDataset | None:
    """The dataset already in ``out`` when it was prepared from the same sources and parameters, else None."""
    if not ((out / META_FILE).exists() and (out / FLOWS_FILE).exists()):
        return None
    try:
        if read_json(out / META_FILE).get("cache_key") != cache_key:
            return None
        reused = PreparedDataset.load(out)
    except (json.JSONDecodeError, OSError):  # unreadable: prepared again
        return None
    log(f"{out}: up to date (same sources and parameters), reusing it")
    for line in notices(reused.meta):  # what was dropped still matters on a re-run
        log(line)
    return reused


_META_ORDER = ("label", "capture", "split", "src_ip", "dst_ip", "src_port", "dst_port", "proto", "first_ts",
               "last_ts", "client_mac", "server_mac")


def _filter(flows: FlowTable, options: PrepareOptions, label_mode: str) -> tuple[FlowTable, list[dict]]:
    """Drop Unknown labels, small classes (or merge them into 'other'), cap, and unsplittable classes."""
    dropped: list[dict] = []
    labels = flows.meta["label"].astype(str)
    if not options.keep_unknown:
        unknown = labels.isin([UNKNOWN, "", "nan"])
        if unknown.any():
            dropped.append({"name": UNKNOWN, "flows": int(unknown.sum()), "reason": "no label"})
            flows = flows.take(~unknown.to_numpy())
    counts = flows.meta["label"].value_counts()
    small = counts[counts < options.min_flows_per_class]
    if len(small):
        if options.small_classes == "other":
            flows.meta.loc[flows.meta["label"].isin(small.index), "label"] = OTHER
        else:
            for name, count in small.items():
                dropped.append({"name": str(name), "flows": int(count),
                                "reason": f"fewer than {options.min_flows_per_class} flows"})
            flows = flows.take(~flows.meta["label"].isin(small.index).to_numpy())
    if options.max_flows_per_class:
        rng = np.random.default_rng(options.split_seed)
        keep = np.zeros(len(flows), dtype=bool)
        for _, idx in flows.meta.groupby("label").indices.items():
            take = idx if len(idx) <= options.max_flows_per_class else rng.choice(
                idx, options.max_flows_per_class, replace=False)
            keep[take] = True
        flows = flows.take(keep)
    for name in unsplittable_classes(flows.meta["label"], flows.meta["capture"]):
        mask = (flows.meta["label"] == name).to_numpy()
        dropped.append({"name": name, "flows": int(mask.sum()),
                        "reason": "all flows come from one capture: cannot be both trained on and evaluated"})
        flows = flows.take(~mask)
    return flows, dropped


def info_table(dataset: PreparedDataset) -> pd.DataFrame:
    """Per-class flow counts per split (``ntg data info``)."""
    rows = [{"class": c["name"], **c["counts"], "total": sum(c["counts"].values())} for c in dataset.meta["classes"]]
    return pd.DataFrame(rows)
