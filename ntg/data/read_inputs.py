"""Inputs → labelled biflows: capture files parsed and labelled one by one (in worker processes), or the flow
tables of published dataset files, with a summary of what parsing read and skipped. Filtering, splitting and
caching the result are :mod:`ntg.data.prepare`'s job.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ntg.data.pcap import CAPTURE_SUFFIXES, sniff_capture
from ntg.data.schema import FlowTable
from ntg.errors import NtgError

if TYPE_CHECKING:  # the options and the resolved source are prepare's, which imports this module
    from ntg.data.prepare import PrepareOptions, ResolvedSource


def find_captures(root: Path) -> list[Path]:
    """Capture files below ``root`` (by suffix, or by magic number for any other file), sorted."""
    out = []
    for p in sorted(walk_files(root)):
        if p.name.startswith("."):
            continue
        if p.suffix.lower() in CAPTURE_SUFFIXES or sniff_capture(p):
            out.append(p)
    return out


def walk_files(root: Path) -> list[Path]:
    """Every file below ``root``, following symbolic links to folders."""
    return [Path(d) / f for d, _, files in os.walk(root, followlinks=True) for f in files]


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


def read_captures(
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


def read_dataset_files(
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


def summarise_parsing(infos: list[dict[str, Any]]) -> dict[str, Any]:
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
