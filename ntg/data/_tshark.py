"""tshark as an independent reference: the same per-packet fields the ntg reader extracts.

Used by the tests (to check the reader) and by ``benchmarks/bench_ingest.py`` (to time it against).
"""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

TSHARK_FIELDS = (
    "frame.number",
    "frame.time_epoch",
    "frame.protocols",
    "_ws.malformed",
    "eth.src",
    "eth.dst",
    "sll.src.eth",
    "ip.src",
    "ip.dst",
    "ip.flags.mf",
    "ip.frag_offset",
    "ipv6.src",
    "ipv6.dst",
    "tcp.srcport",
    "tcp.dstport",
    "tcp.len",
    "tcp.flags",
    "tcp.window_size_value",
    "tcp.stream",
    "udp.srcport",
    "udp.dstport",
    "udp.length",
    "udp.stream",
)


def tshark_path() -> str | None:
    return shutil.which("tshark")


def tshark_command(path: str | Path, fields: tuple[str, ...] = TSHARK_FIELDS) -> list[str]:
    """``tshark -T fields`` command line printing ``fields`` tab-separated, one line per frame."""
    cmd = ["tshark", "-n", "-r", str(path), "-T", "fields", "-E", "separator=/t", "-E", "occurrence=a"]
    for name in fields:
        cmd += ["-e", name]
    return cmd


def tshark_frame(path: str | Path) -> pd.DataFrame:
    """tshark's view of every frame of a capture, one row per frame (columns named as the fields).

    Multi-valued fields (tunnels, ICMP errors quoting a packet) keep tshark's comma-joined text; numeric
    columns are parsed where a single value is present. ``ts_ns`` is ``frame.time_epoch`` in nanoseconds.
    """
    out = subprocess.run(tshark_command(path), capture_output=True, check=False, text=True).stdout
    frame = pd.read_csv(io.StringIO(out), sep="\t", header=None, names=list(TSHARK_FIELDS), dtype=str,
                        keep_default_na=False, quoting=3)
    frame["ts_ns"] = [_epoch_ns(t) for t in frame["frame.time_epoch"]]
    return frame


def _epoch_ns(text: str) -> int:
    whole, _, frac = text.partition(".")
    return int(whole) * 1_000_000_000 + int((frac + "000000000")[:9])


def single_int(column: pd.Series) -> np.ndarray:
    """Integer values of a tshark column; -1 where it is empty or holds several values."""
    return np.array([int(v, 0) if v and "," not in v else -1 for v in column], dtype=np.int64)


def tshark_packets(path: str | Path) -> pd.DataFrame:
    """tshark's per-frame reference in the reader's terms, one row per frame (``frame`` 0-based).

    ``comparable`` marks frames the reader must keep and agree on: exactly one IP layer, TCP or UDP, not a
    fragment, not flagged malformed by tshark. ``outer_l4`` marks frames whose first IP layer carries
    TCP/UDP (tunnels such as GTP or VXLAN also count: the reader keeps their outer packet).
    Columns: frame, ts_ns, comparable, outer_l4, malformed, proto, src, dst, sport, dport, payload, flags,
    window, src_mac, stream.
    """
    t = tshark_frame(path)
    tokens = [p.split(":") for p in t["frame.protocols"]]
    n_ip = np.array([sum(x in ("ip", "ipv6") for x in tk) for tk in tokens], dtype=np.int64)
    after_ip = [next((tk[i + 1] for i, x in enumerate(tk[:-1]) if x in ("ip", "ipv6")), "") for tk in tokens]
    fragment = np.array(
        [mf.split(",")[0] == "1" or off.split(",")[0] not in ("", "0") or "ipv6.fraghdr" in tk
         for mf, off, tk in zip(t["ip.flags.mf"], t["ip.frag_offset"], tokens, strict=True)],
        dtype=bool,
    )
    malformed = (t["_ws.malformed"] != "").to_numpy()
    is_tcp = np.array([x == "tcp" for x in after_ip])
    is_udp = np.array([x == "udp" for x in after_ip])
    tcp_len, udp_len = single_int(t["tcp.len"]), single_int(t["udp.length"])
    return pd.DataFrame({
        "frame": single_int(t["frame.number"]) - 1,
        "ts_ns": t["ts_ns"].to_numpy(np.int64),
        "comparable": (n_ip == 1) & (is_tcp | is_udp) & ~fragment & ~malformed,
        "outer_l4": (is_tcp | is_udp) & ~fragment,
        "malformed": malformed,
        "proto": np.select([is_tcp, is_udp], [6, 17], 0),
        "src": np.where(t["ip.src"] != "", t["ip.src"], t["ipv6.src"]),
        "dst": np.where(t["ip.dst"] != "", t["ip.dst"], t["ipv6.dst"]),
        "sport": np.where(is_tcp, single_int(t["tcp.srcport"]), single_int(t["udp.srcport"])),
        "dport": np.where(is_tcp, single_int(t["tcp.dstport"]), single_int(t["udp.dstport"])),
        "payload": np.where(is_tcp, tcp_len, np.where(udp_len >= 0, udp_len - 8, -1)),
        "flags": np.where(is_tcp, single_int(t["tcp.flags"]) & 0xFF, 0),
        "window": np.where(is_tcp, single_int(t["tcp.window_size_value"]), 0),
        "src_mac": np.where(t["eth.src"] != "", t["eth.src"], t["sll.src.eth"]),
        "stream": np.where(is_tcp, single_int(t["tcp.stream"]), single_int(t["udp.stream"])),
    })
