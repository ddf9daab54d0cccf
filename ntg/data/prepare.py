"""``ntg data prepare``: captures or a published dataset file → a labelled, filtered, split biflow table.

The result is ``OUT/flows.parquet`` + ``OUT/meta.json`` (see :mod:`ntg.data.dataset`). The output folder is
written atomically (an interrupted prepare leaves no half dataset) and a re-run with the same inputs and
parameters is a cache hit: the sources' content checksum and the parameters form ``meta["cache_key"]``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ntg import __version__
from ntg.data.dataset import FLOWS_FILE, META_FILE, PreparedDataset, notices
from ntg.data.manifest import sha256_file
from ntg.data.pcap import CAPTURE_SUFFIXES, sniff_capture
from ntg.data.schema import MAX_PACKETS, SCHEMA_VERSION, FlowTable
from ntg.data.splits import DEFAULT_FRACTIONS, class_counts, split_captures, unsplittable_classes
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
    json_files = sorted(p for p in _walk_files(path) if p.suffix == ".json")
    if json_files and _detect_dataset_format(json_files[0]) == "mirage-json":
        return ResolvedSource("dataset-file", path, "mirage-json", "given", {"path": str(path)})
    raise NtgError(
        f"{path}: no captures found (looked for {', '.join(CAPTURE_SUFFIXES)} and pcap magic, recursively); "
        "point SOURCE at a folder of captures, a capture, or a dataset file"
    )


def _detect_dataset_format(path: Path) -> str | None:
    from ntg.data import loaders

    return loaders.detect_dataset_file(path)


def find_captures(root: Path) -> list[Path]:
    """Capture files below ``root`` (by suffix, or by magic number for any other file), sorted."""
    out = []
    for p in sorted(_walk_files(root)):
        if p.name.startswith("."):
            continue
        if p.suffix.lower() in CAPTURE_SUFFIXES or sniff_capture(p):
            out.append(p)
    return out


def _walk_files(root: Path) -> list[Path]:
    """Every file below ``root``, following symbolic links to folders."""
    return [Path(d) / f for d, _, files in os.walk(root, followlinks=True) for f in files]


def source_checksum(paths: list[Path], base: Path) -> str:
    """sha256 over (relative path, content sha256) of every input file."""
    digest = hashlib.sha256()
    for p in sorted(paths):
        rel = p.relative_to(base).as_posix() if p != base else p.name
        digest.update(rel.encode() + b"\0" + sha256_file(p).encode() + b"\n")
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------- per capture
def _device_mac(capture: Path) -> str | None:
    mac_file = capture.parent / "_iotdevice-mac.txt"
    if not mac_file.exists():
        return None
    return mac_file.read_text().strip().lower() or None


def process_capture(
    capture: Path, base: Path, label_mode: str, options: PrepareOptions, device_only: bool
) -> tuple[FlowTable, dict[str, Any]]:
    """Parse one capture into labelled biflows (before dataset-level filtering)."""
    from ntg.data import labels as labelling
    from ntg.data.biflow import capture_to_flows

    flows, report = capture_to_flows(capture, idle_timeout=options.idle_timeout, max_packets=options.max_packets)
    info: dict[str, Any] = {"capture": capture.relative_to(base).as_posix(), "report": report.to_dict()}
    info["biflows"] = len(flows)
    if device_only:
        mac = _device_mac(capture)
        if mac is None:
            raise NtgError(
                f"{capture.parent}: --device-only needs _iotdevice-mac.txt beside the captures; "
                "pass --all-hosts to keep every biflow"
            )
        keep = ((flows.meta["client_mac"] == mac) | (flows.meta["server_mac"] == mac)).to_numpy()
        flows = flows.take(keep)
    flows = flows.take(flows.n_packets >= options.min_packets)
    if len(flows):
        mode = labelling.parse_label_mode(label_mode)
        flows.meta["label"] = _apply_labels(mode, capture, base, flows, options)
    flows.meta["capture"] = info["capture"]
    info["kept"] = len(flows)
    return flows, info


def _apply_labels(mode: Any, capture: Path, base: Path, flows: FlowTable, options: PrepareOptions) -> np.ndarray:
    from ntg.data import labels as labelling

    kind = getattr(mode, "kind", str(mode))
    if kind == "dir":
        return np.full(len(flows), labelling.label_from_dir(capture, base), dtype=object)
    if kind == "ndpi":
        return np.asarray(labelling.ndpi_labels(capture, flows.meta, idle_timeout=options.idle_timeout), object)
    if kind == "csv":
        return np.asarray(labelling.csv_labels(mode.path, flows.meta), dtype=object)
    raise NtgError(f"label mode {kind!r} does not apply to captures; use dir, ndpi or csv:FILE")


def _process_star(args: tuple) -> tuple[FlowTable, dict[str, Any]]:
    return process_capture(*args)


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
    inputs = find_captures(resolved.path) if resolved.path.is_dir() and resolved.fmt == "pcap" else (
        sorted(_walk_files(resolved.path)) if resolved.path.is_dir() else [resolved.path]
    )
    if not inputs:
        raise NtgError(f"{resolved.path}: empty — no input files found")
    base = resolved.path if resolved.path.is_dir() else resolved.path.parent
    checksum = source_checksum(inputs, base)
    params = {**asdict(options), "labels": label_mode, "device_only": device_only}
    params["split_fractions"] = list(options.split_fractions)
    if label_mode.startswith("csv:"):
        params["label_file_sha256"] = sha256_file(label_mode[4:]) if Path(label_mode[4:]).exists() else None
    cache_key = hashlib.sha256(
        json.dumps({"checksum": checksum, "params": params, "schema": SCHEMA_VERSION,
                    "pipeline": PIPELINE_VERSION}, sort_keys=True).encode()
    ).hexdigest()
    if not force and (out / META_FILE).exists() and (out / FLOWS_FILE).exists():
        try:
            if read_json(out / META_FILE).get("cache_key") == cache_key:
                log(f"{out}: up to date (same sources and parameters), reusing it")
                reused = PreparedDataset.load(out)
                for line in notices(reused.meta):  # what was dropped still matters on a re-run
                    log(line)
                return reused
        except (json.JSONDecodeError, OSError):
            pass

    started = time.time()
    if resolved.fmt == "pcap":
        flows, capture_infos = _read_captures(inputs, base, label_mode, options, device_only, jobs, progress)
    else:
        flows, capture_infos = _read_dataset_files(resolved, inputs, options)
    summary = _summarise_parsing(capture_infos)
    if len(flows) == 0:
        raise NtgError(f"{source}: no biflows in {len(inputs)} input file(s) ({summary['packets']} packets read, "
                       f"{len(summary['truncated_captures'])} truncated); give captures that hold traffic")
    split_by = options.split_by if options.split_by != "auto" else (
        "flow" if resolved.fmt in ("cesnet-ppi", "cesnet-lists") else "capture")
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
    classes = sorted(flows.meta["label"].unique().tolist())
    flows.meta = flows.meta[[c for c in _META_ORDER if c in flows.meta.columns]]
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
        "classes": class_counts(flows.meta["label"], flows.meta["split"], classes),
        "dropped_classes": dropped,
        "splits": {s: int((flows.meta["split"] == s).sum()) for s in ("train", "val", "test")},
        "flows": len(flows),
        "captures": int(flows.meta["capture"].nunique()),
        "parsing": summary,
        "seconds": round(time.time() - started, 2),
    }
    with atomic_dir(out, kind="dataset", force=True) as tmp:  # claimed above
        flows.write(tmp / FLOWS_FILE)
        write_json(tmp / META_FILE, meta)
    log(f"{out}: {len(flows)} biflows, {len(classes)} classes, {meta['captures']} captures "
        f"({meta['seconds']:.1f} s)")
    for line in notices(meta):
        log(line)
    return PreparedDataset.load(out)



_META_ORDER = ("label", "capture", "split", "src_ip", "dst_ip", "src_port", "dst_port", "proto", "first_ts",
               "last_ts", "client_mac", "server_mac")


def _read_captures(
    inputs: list[Path], base: Path, label_mode: str, options: PrepareOptions, device_only: bool,
    jobs: int | None, progress: bool,
) -> tuple[FlowTable, list[dict[str, Any]]]:
    from tqdm.auto import tqdm

    jobs = jobs or min(len(inputs), os.cpu_count() or 1, 4)
    tasks = [(p, base, label_mode, options, device_only) for p in inputs]
    results: list[tuple[FlowTable, dict[str, Any]]] = []
    bar = tqdm(total=len(tasks), unit="capture", desc="parse", disable=not progress, file=sys.stderr)
    if jobs <= 1 or len(tasks) < 4:
        for task in tasks:
            results.append(_process_star(task))
            bar.update()
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            for result in pool.map(_process_star, tasks, chunksize=max(1, len(tasks) // (jobs * 8))):
                results.append(result)
                bar.update()
    bar.close()
    tables = [t for t, _ in results if len(t)]
    flows = FlowTable.concat(tables) if tables else FlowTable.empty(options.max_packets)
    return flows, [info for _, info in results]


def _read_dataset_files(
    resolved: ResolvedSource, inputs: list[Path], options: PrepareOptions
) -> tuple[FlowTable, list[dict[str, Any]]]:
    from ntg.data import loaders

    tables, infos = [], []
    for path in inputs:
        if resolved.fmt == "mirage-json" and path.suffix != ".json":
            continue
        table = loaders.load_dataset_file(path, fmt=resolved.fmt)
        table = table.pad_to(options.max_packets) if table.max_packets != options.max_packets else table
        if "capture" not in table.meta.columns:
            table.meta["capture"] = path.name
        table = table.take(table.n_packets >= options.min_packets)
        tables.append(table)
        infos.append({"capture": path.name, "biflows": len(table), "kept": len(table), "report": {}})
    if not tables:
        raise NtgError(f"{resolved.path}: no {resolved.fmt} files found")
    return FlowTable.concat(tables), infos


def _summarise_parsing(infos: list[dict[str, Any]]) -> dict[str, Any]:
    skipped: Counter[str] = Counter()
    truncated = []
    packets = 0
    for info in infos:
        report = info.get("report", {})
        packets += int(report.get("packets_read", 0) or 0)
        for reason, count in (report.get("skipped") or {}).items():
            skipped[reason] += int(count)
        if report.get("truncated"):
            truncated.append(info["capture"])
    return {
        "inputs": len(infos),
        "packets": packets,
        "biflows": int(sum(i.get("biflows", 0) for i in infos)),
        "kept_before_class_filter": int(sum(i.get("kept", 0) for i in infos)),
        "skipped_packets": dict(skipped),
        "truncated_captures": truncated,
    }


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
