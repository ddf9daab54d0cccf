"""Fast pcap/pcapng reader: the TCP/UDP packets of a capture as numpy columns, plus what was skipped.

Formats: pcap (either byte order, micro- or nanosecond timestamps) and pcapng (SHB/IDB/EPB/SPB, per-interface
link type, ``if_tsresol`` and ``if_tsoffset``). Link types: Ethernet, Linux cooked (SLL, SLL2), raw IP,
BSD loopback, PPP and Cisco HDLC; 802.1Q/802.1ad VLAN tags, PPPoE and MPLS are stripped. IPv4 and IPv6
(extension headers walked); fragments are skipped. Payload lengths come from the IP/UDP length fields, not
the captured length, so snapped captures still give true sizes.

The file is read into memory, record headers are walked in one tight loop, and all protocol headers are
decoded with vectorised numpy gathers (see :mod:`ntg.data._records` and :mod:`ntg.data._decode`).
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ntg.data._decode import KEPT, REASONS, decode_frames
from ntg.data._records import capture_format, walk_capture
from ntg.errors import NtgError

CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".dmp")


@dataclass
class PacketColumns:
    """The kept TCP/UDP packets of a capture, one array entry per packet, in capture order.

    IP addresses are 16 bytes per packet (IPv4 as IPv4-mapped ``::ffff:a.b.c.d``); MACs are 48-bit integers,
    -1 where the link layer carries none.
    """

    frame: np.ndarray  # (n,) int64: 0-based index of the packet record in the capture
    ts_ns: np.ndarray  # (n,) int64: nanoseconds since the epoch
    ip_version: np.ndarray  # (n,) uint8: 4 or 6
    src_ip: np.ndarray  # (n, 16) uint8
    dst_ip: np.ndarray  # (n, 16) uint8
    src_port: np.ndarray  # (n,) uint16
    dst_port: np.ndarray  # (n,) uint16
    proto: np.ndarray  # (n,) uint8: 6 TCP, 17 UDP
    payload: np.ndarray  # (n,) int32: L4 payload bytes from the length fields
    flags: np.ndarray  # (n,) uint8: TCP flags byte (0 for UDP)
    window: np.ndarray  # (n,) uint16: raw TCP window field (0 for UDP)
    src_mac: np.ndarray  # (n,) int64, -1 if unknown
    dst_mac: np.ndarray  # (n,) int64, -1 if unknown

    def __len__(self) -> int:
        return len(self.ts_ns)

    @property
    def ts(self) -> np.ndarray:
        """Timestamps as float64 seconds since the epoch."""
        return self.ts_ns / 1e9

    def take(self, index: np.ndarray | Sequence[int]) -> PacketColumns:
        """Packets by integer index or boolean mask."""
        index = np.asarray(index)
        return PacketColumns(**{name: getattr(self, name)[index] for name in self.__dataclass_fields__})

    def ip_strings(self, side: str = "src") -> np.ndarray:
        """``src`` or ``dst`` addresses as strings (object array)."""
        return format_ips(getattr(self, f"{side}_ip"))

    @classmethod
    def build(
        cls,
        ts: Sequence[float],
        src_ip: Sequence[str],
        dst_ip: Sequence[str],
        src_port: Sequence[int],
        dst_port: Sequence[int],
        proto: Sequence[int] | int = 6,
        payload: Sequence[int] | int = 0,
        flags: Sequence[int] | int = 0,
        window: Sequence[int] | int = 0,
        src_mac: Sequence[str] | None = None,
        dst_mac: Sequence[str] | None = None,
    ) -> PacketColumns:
        """Packets from plain Python values (seconds, address strings): handy for tests and examples."""
        n = len(ts)

        def col(values: Sequence[int] | int, dtype: Any) -> np.ndarray:
            return np.broadcast_to(np.asarray(values, dtype=dtype), (n,)).copy()

        def macs(values: Sequence[str] | None) -> np.ndarray:
            if values is None:
                return np.full(n, -1, np.int64)
            return np.array([int(m.replace(":", ""), 16) if m else -1 for m in values], np.int64)

        src, dst = parse_ips(src_ip), parse_ips(dst_ip)
        return cls(
            frame=np.arange(n, dtype=np.int64),
            ts_ns=np.round(np.asarray(ts, dtype=np.float64) * 1e9).astype(np.int64),
            ip_version=np.where(_is_v4_mapped(src), 4, 6).astype(np.uint8),
            src_ip=src,
            dst_ip=dst,
            src_port=col(src_port, np.uint16),
            dst_port=col(dst_port, np.uint16),
            proto=col(proto, np.uint8),
            payload=col(payload, np.int32),
            flags=col(flags, np.uint8),
            window=col(window, np.uint16),
            src_mac=macs(src_mac),
            dst_mac=macs(dst_mac),
        )


@dataclass
class ParseReport:
    """What reading one capture did: packets read and kept, skips by reason, and any damage found."""

    path: str
    format: str  # "pcap" | "pcapng"
    packets_read: int = 0  # packet records in the file (up to any damage)
    packets_kept: int = 0  # TCP/UDP packets returned
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> packets (see ntg.data._decode.REASONS)
    link_types: dict[int, int] = field(default_factory=dict)  # LINKTYPE_* -> packet records
    truncated: bool = False  # the file is cut short or a record header is corrupt
    bytes_skipped: int = 0  # bytes after the last good record
    problem: str = ""  # where and why reading stopped early, empty if it did not

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (link-type keys as strings)."""
        return {
            "path": self.path,
            "format": self.format,
            "packets_read": self.packets_read,
            "packets_kept": self.packets_kept,
            "skipped": dict(self.skipped),
            "link_types": {str(k): v for k, v in self.link_types.items()},
            "truncated": self.truncated,
            "bytes_skipped": self.bytes_skipped,
            "problem": self.problem,
        }

    def summary(self) -> str:
        """One line for logs."""
        skips = ", ".join(f"{k} {v}" for k, v in sorted(self.skipped.items())) or "none"
        line = f"{self.path}: {self.packets_kept}/{self.packets_read} packets kept (skipped: {skips})"
        if self.truncated:
            line += f"; TRUNCATED: {self.problem}, {self.bytes_skipped} bytes skipped"
        return line


def sniff_capture(path: str | Path) -> str | None:
    """``"pcap"`` or ``"pcapng"`` if the file starts with a capture magic number, else None."""
    try:
        with open(path, "rb") as handle:
            return capture_format(handle.read(4))
    except OSError:
        return None


def read_packets(path: str | Path) -> tuple[PacketColumns, ParseReport]:
    """All TCP/UDP packets of a pcap/pcapng capture, and a report of what was skipped and why."""
    path = Path(path)
    try:
        buf = path.read_bytes()
    except FileNotFoundError:
        raise NtgError(f"{path}: no such capture file; check the path") from None
    except IsADirectoryError:
        raise NtgError(f"{path}: is a folder, not a capture; give a .pcap or .pcapng file") from None
    fmt = capture_format(buf[:4])
    if fmt is None:
        magic = f"0x{buf[:4].hex()}" if buf else "none, empty file"
        raise NtgError(
            f"{path}: not a pcap/pcapng capture (magic {magic}); give a .pcap or .pcapng file "
            "(convert other formats with `editcap -F pcap IN OUT`)"
        )
    return parse_buffer(buf, str(path))


def parse_buffer(buf: bytes, name: str = "<buffer>") -> tuple[PacketColumns, ParseReport]:
    """:func:`read_packets` for a capture already in memory (``name`` is used in the report)."""
    raw = walk_capture(buf)
    cols = decode_frames(buf, raw.start, raw.caplen, raw.origlen, raw.linktype)
    reason = cols["reason"]
    keep = np.flatnonzero(reason == KEPT)
    counts = np.bincount(reason.astype(np.int64), minlength=len(REASONS))
    link_values, link_counts = np.unique(raw.linktype, return_counts=True)
    report = ParseReport(
        path=name,
        format=raw.fmt,
        packets_read=len(raw),
        packets_kept=len(keep),
        skipped={REASONS[i]: int(c) for i, c in enumerate(counts) if i != KEPT and c},
        link_types={int(k): int(c) for k, c in zip(link_values, link_counts, strict=True)},
        truncated=raw.truncated,
        bytes_skipped=raw.bytes_skipped,
        problem=raw.problem,
    )
    packets = PacketColumns(
        frame=keep.astype(np.int64),
        ts_ns=raw.ts_ns[keep],
        ip_version=cols["ip_version"][keep],
        src_ip=cols["src_ip"][keep],
        dst_ip=cols["dst_ip"][keep],
        src_port=cols["src_port"][keep],
        dst_port=cols["dst_port"][keep],
        proto=cols["proto"][keep].astype(np.uint8),
        payload=cols["payload"][keep].astype(np.int32),
        flags=cols["flags"][keep],
        window=cols["window"][keep],
        src_mac=cols["src_mac"][keep],
        dst_mac=cols["dst_mac"][keep],
    )
    return packets, report


# ---------------------------------------------------------------------------------------------- addresses
_V4_PREFIX = np.array([0] * 10 + [0xFF, 0xFF], dtype=np.uint8)


def _is_v4_mapped(ips: np.ndarray) -> np.ndarray:
    return np.all(ips[:, :12] == _V4_PREFIX, axis=1)


def format_ips(ips: np.ndarray) -> np.ndarray:
    """(n, 16) address bytes → strings; IPv4-mapped addresses print as dotted IPv4."""
    out = np.empty(len(ips), dtype=object)
    if len(ips) == 0:
        return out
    uniq, inverse = np.unique(ips, axis=0, return_inverse=True)
    v4 = _is_v4_mapped(uniq)
    names = np.array(
        [socket.inet_ntop(socket.AF_INET, row[12:].tobytes()) if is4 else
         socket.inet_ntop(socket.AF_INET6, row.tobytes()) for row, is4 in zip(uniq, v4, strict=True)],
        dtype=object,
    )
    out[:] = names[inverse.reshape(-1)]
    return out


def parse_ips(addresses: Sequence[str]) -> np.ndarray:
    """Address strings → (n, 16) uint8 (IPv4 as IPv4-mapped)."""
    out = np.zeros((len(addresses), 16), dtype=np.uint8)
    for i, text in enumerate(addresses):
        try:
            if ":" in text:
                out[i] = np.frombuffer(socket.inet_pton(socket.AF_INET6, text), np.uint8)
            else:
                out[i, 10:12] = 0xFF
                out[i, 12:] = np.frombuffer(socket.inet_pton(socket.AF_INET, text), np.uint8)
        except (OSError, TypeError):
            raise NtgError(f"{text!r} is not an IPv4 or IPv6 address; write e.g. 10.0.0.1 or 2001:db8::1") from None
    return out


def format_macs(macs: np.ndarray) -> np.ndarray:
    """48-bit MAC integers → ``"aa:bb:cc:dd:ee:ff"`` strings; -1 → ``""``."""
    out = np.empty(len(macs), dtype=object)
    if len(macs) == 0:
        return out
    uniq, inverse = np.unique(macs, return_inverse=True)
    names = np.array(["" if m < 0 else ":".join(f"{int(m):012x}"[i : i + 2] for i in range(0, 12, 2))
                      for m in uniq], dtype=object)
    out[:] = names[inverse.reshape(-1)]
    return out
