"""Ingest speed: ntg's capture reader + biflow assembly versus ``tshark -T fields`` on the same captures.

Finds every capture below ``ROOT/{iot-sentinel,ndpi,requet}`` (``*.pcap``, ``*.pcapng``, ``*.cap`` and files
with a capture magic number), runs ntg over all of them, then tshark (one process per capture, one after
another) extracting the same per-packet fields, and prints packets/s for both and their ratio.

    .venv/bin/python benchmarks/bench_ingest.py [--root DIR] [--out benchmarks/results/ingest.json]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ntg.data._tshark import tshark_command, tshark_path  # noqa: E402
from ntg.data.biflow import flows_from_packets  # noqa: E402
from ntg.data.pcap import read_packets  # noqa: E402
from ntg.data.read_inputs import find_captures  # noqa: E402
from ntg.errors import NtgError  # noqa: E402
from ntg.utils.io import write_json  # noqa: E402

FOLDERS = ("iot-sentinel", "ndpi", "requet")
# What ntg extracts per packet, as tshark fields (streams give tshark's biflow count).
FIELDS = (
    "frame.time_epoch", "eth.src", "eth.dst", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "ip.proto",
    "ipv6.nxt", "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport", "tcp.len", "udp.length",
    "tcp.flags", "tcp.window_size_value", "tcp.stream", "udp.stream",
)


def run_ntg(files: list[Path], idle_timeout: float) -> dict:
    totals = {"files": 0, "unreadable": [], "packets_read": 0, "packets_kept": 0, "biflows": 0,
              "parse_s": 0.0, "biflow_s": 0.0}
    for path in tqdm(files, desc="ntg", unit="file", file=sys.stderr):
        start = time.perf_counter()
        try:
            packets, report = read_packets(path)
        except NtgError:
            totals["unreadable"].append(str(path))
            continue
        parsed = time.perf_counter()
        flows = flows_from_packets(packets, idle_timeout)
        done = time.perf_counter()
        totals["files"] += 1
        totals["packets_read"] += report.packets_read
        totals["packets_kept"] += report.packets_kept
        totals["biflows"] += len(flows)
        totals["parse_s"] += parsed - start
        totals["biflow_s"] += done - parsed
    totals["seconds"] = totals["parse_s"] + totals["biflow_s"]
    return totals


def run_tshark(files: list[Path]) -> dict:
    totals = {"files": 0, "failed": [], "packets": 0, "streams": 0, "seconds": 0.0}
    for path in tqdm(files, desc="tshark", unit="file", file=sys.stderr):
        start = time.perf_counter()
        proc = subprocess.run(tshark_command(path, FIELDS), capture_output=True, text=True, check=False)
        totals["seconds"] += time.perf_counter() - start
        lines = proc.stdout.splitlines()
        if proc.returncode != 0 and not lines:
            totals["failed"].append(str(path))
            continue
        totals["files"] += 1
        totals["packets"] += len(lines)
        streams = set()
        for line in lines:
            cols = line.split("\t")
            tcp, udp = cols[-2], cols[-1]
            if tcp and "," not in tcp:
                streams.add(("tcp", tcp))
            elif udp and "," not in udp:
                streams.add(("udp", udp))
        totals["streams"] += len(streams)
    return totals


def main(argv: list[str] | None = None) -> int:
    default_root = Path(os.environ.get("NTG_DATA_ROOT", REPO.parent / "shared" / "datasets"))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=default_root, help="datasets root (NTG_DATA_ROOT)")
    parser.add_argument("--folders", nargs="+", default=list(FOLDERS), help="folders of ROOT to ingest")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "ingest.json")
    parser.add_argument("--idle-timeout", type=float, default=120.0)
    parser.add_argument("--limit", type=int, default=0, help="at most this many captures per folder (0: all)")
    parser.add_argument("--no-tshark", action="store_true", help="time ntg only")
    args = parser.parse_args(argv)

    use_tshark = not args.no_tshark and tshark_path() is not None
    rows = []
    for folder in args.folders:
        files = find_captures(args.root / folder)
        if args.limit:
            files = files[: args.limit]
        if not files:
            print(f"{args.root / folder}: no captures found", file=sys.stderr)
            continue
        row = {"folder": folder, "captures": len(files), "bytes": sum(p.stat().st_size for p in files),
               "ntg": run_ntg(files, args.idle_timeout)}
        if use_tshark:
            row["tshark"] = run_tshark(files)
        rows.append(row)
    total = _total(rows, use_tshark)
    for row in [*rows, total]:
        _add_rates(row)
    _print_table([*rows, total], use_tshark)
    write_json(args.out, {"rows": rows, "total": total, "tshark_version": _tshark_version() if use_tshark else None,
                          "python": platform.python_version(), "cpus": os.cpu_count(), "load": os.getloadavg()})
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _total(rows: list[dict], use_tshark: bool) -> dict:
    total = {"folder": "all", "captures": sum(r["captures"] for r in rows), "bytes": sum(r["bytes"] for r in rows),
             "ntg": {k: sum(r["ntg"][k] for r in rows) for k in
                     ("files", "packets_read", "packets_kept", "biflows", "parse_s", "biflow_s", "seconds")}}
    if use_tshark:
        total["tshark"] = {k: sum(r["tshark"][k] for r in rows) for k in ("files", "packets", "streams", "seconds")}
    return total


def _add_rates(row: dict) -> None:
    """Packets per second for each tool and ``ratio`` = ntg packets/s ÷ tshark packets/s."""
    row["ntg"]["packets_per_s"] = row["ntg"]["packets_read"] / max(row["ntg"]["seconds"], 1e-9)
    if "tshark" in row:
        row["tshark"]["packets_per_s"] = row["tshark"]["packets"] / max(row["tshark"]["seconds"], 1e-9)
        row["ratio"] = row["ntg"]["packets_per_s"] / max(row["tshark"]["packets_per_s"], 1e-9)


def _print_table(rows: list[dict], use_tshark: bool) -> None:
    head = f"{'folder':<14}{'captures':>9}{'packets':>10}{'ntg s':>8}{'ntg pkt/s':>12}{'biflows':>9}"
    if use_tshark:
        head += f"{'tshark s':>10}{'tshark pkt/s':>14}{'streams':>9}{'ntg/tshark':>12}"
    print(head)
    for r in rows:
        ntg = r["ntg"]
        line = (f"{r['folder']:<14}{r['captures']:>9}{ntg['packets_read']:>10}{ntg['seconds']:>8.2f}"
                f"{ntg['packets_per_s']:>12,.0f}{ntg['biflows']:>9}")
        if use_tshark:
            ts = r["tshark"]
            line += (f"{ts['seconds']:>10.2f}{ts['packets_per_s']:>14,.0f}{ts['streams']:>9}"
                     f"{r['ratio']:>11.1f}x")
        print(line)


def _tshark_version() -> str:
    out = subprocess.run(["tshark", "--version"], capture_output=True, text=True, check=False).stdout
    return out.splitlines()[0] if out else "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
