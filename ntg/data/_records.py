"""Walk the records of a pcap or pcapng file held in memory: where each frame's bytes are, and when.

Only the container is read here (record headers, pcapng interface blocks); frame contents are decoded,
vectorised, in :mod:`ntg.data._decode`. A file cut short or with a corrupt record keeps every record
before the damage and says where and why it stopped.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

PCAP_MAGICS = {
    # magic as read little-endian -> (little-endian file?, nanosecond timestamps?, record header bytes)
    0xA1B2C3D4: (True, False, 16),
    0xD4C3B2A1: (False, False, 16),
    0xA1B23C4D: (True, True, 16),
    0x4D3CB2A1: (False, True, 16),
    0xA1B2CD34: (True, False, 24),  # Kuznetzov's modified pcap: 8 extra bytes per record
    0x34CDB2A1: (False, False, 24),
}
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_BYTE_ORDER = 0x1A2B3C4D
MAX_RECORD = 16 * 1024 * 1024  # a larger record length means a corrupt header, not a real frame
NS = 1_000_000_000


@dataclass
class RawFrames:
    """Per-record arrays of a capture (one entry per packet record, in file order)."""

    fmt: str  # "pcap" | "pcapng"
    start: np.ndarray  # int64 offset of the frame's first byte in the buffer
    caplen: np.ndarray  # int64 captured bytes
    origlen: np.ndarray  # int64 bytes on the wire
    ts_ns: np.ndarray  # int64 nanoseconds since the epoch
    linktype: np.ndarray  # int64 link-layer header type (LINKTYPE_*)
    truncated: bool = False  # the file ends inside a record or a record header is corrupt
    bytes_skipped: int = 0  # bytes after the last good record
    problem: str = ""  # what stopped the walk, empty if the file was read to its end

    def __len__(self) -> int:
        return len(self.start)


def capture_format(head: bytes) -> str | None:
    """``"pcap"``, ``"pcapng"`` or None from the first 4 bytes of a file."""
    if len(head) < 4:
        return None
    magic = int.from_bytes(head[:4], "little")
    if magic in PCAP_MAGICS:
        return "pcap"
    if magic == PCAPNG_SHB:
        return "pcapng"
    return None


def walk_capture(buf: bytes) -> RawFrames:
    """The records of ``buf`` (whose format :func:`capture_format` recognised)."""
    fmt = capture_format(buf)
    if fmt == "pcap":
        return _walk_pcap(buf)
    if fmt == "pcapng":
        return _walk_pcapng(buf)
    raise ValueError("not a pcap/pcapng buffer")


def _gather_u32(u8: np.ndarray, pos: np.ndarray, little: bool) -> np.ndarray:
    b = [u8[pos + k].astype(np.int64) for k in range(4)]
    if not little:
        b.reverse()
    return b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)


# ---------------------------------------------------------------------------------------------- pcap
def _walk_pcap(buf: bytes) -> RawFrames:
    little, nano, rec_len = PCAP_MAGICS[int.from_bytes(buf[:4], "little")]
    end_char = "<" if little else ">"
    n = len(buf)
    if n < 24:
        return _empty("pcap", truncated=True, skipped=n, problem=f"file header cut at {n} of 24 bytes")
    (network,) = struct.unpack_from(end_char + "I", buf, 20)
    linktype = network & 0x0FFFFFFF  # upper bits carry FCS length flags

    incl_at = struct.Struct(end_char + "I").unpack_from
    offsets: list[int] = []
    append = offsets.append
    off, last = 24, n - rec_len
    problem = ""
    while off <= last:
        (incl,) = incl_at(buf, off + 8)
        nxt = off + rec_len + incl
        if incl > MAX_RECORD:
            problem = f"corrupt record header at byte {off} (captured length {incl})"
            break
        if nxt > n:
            problem = f"file ends inside record {len(offsets) + 1} (at byte {off}, {nxt - n} bytes missing)"
            break
        append(off)
        off = nxt
    if not problem and off != n:
        problem = f"file ends inside a record header at byte {off}"

    u8 = np.frombuffer(buf, np.uint8)
    rec = np.asarray(offsets, dtype=np.int64)
    sec = _gather_u32(u8, rec, little)
    frac = _gather_u32(u8, rec + 4, little)
    caplen = _gather_u32(u8, rec + 8, little)
    origlen = _gather_u32(u8, rec + 12, little)
    ts_ns = sec * NS + (frac if nano else frac * 1000)
    return RawFrames(
        fmt="pcap",
        start=rec + rec_len,
        caplen=caplen,
        origlen=origlen,
        ts_ns=ts_ns,
        linktype=np.full(len(rec), linktype, dtype=np.int64),
        truncated=bool(problem),
        bytes_skipped=n - off,
        problem=problem,
    )


def _empty(fmt: str, truncated: bool = False, skipped: int = 0, problem: str = "") -> RawFrames:
    z = np.zeros(0, np.int64)
    return RawFrames(fmt, z, z, z, z, z, truncated=truncated, bytes_skipped=skipped, problem=problem)


# ---------------------------------------------------------------------------------------------- pcapng
@dataclass
class _Interface:
    linktype: int
    snaplen: int
    tsresol: int = 6  # exponent; base 10 unless ``binary``
    binary: bool = False
    tsoffset: int = 0  # seconds added to every timestamp


_Blocks = tuple[list[_Interface], list[tuple[int, bool, int]], list[int], list[tuple[int, ...]], int, str]


def _scan_pcapng_blocks(buf: bytes) -> _Blocks:
    """One pass over the blocks: (interfaces, sections, offsets of enhanced packet blocks, the other packet
    blocks' fields, the offset where the walk stopped, the problem that stopped it or "")."""
    n = len(buf)
    interfaces: list[_Interface] = []
    sections: list[tuple[int, bool, int]] = []  # (offset, little-endian?, index of its interface 0)
    epbs: list[int] = []  # offsets of enhanced packet blocks: decoded after the walk, vectorised
    others: list[tuple[int, int, int, int, int, int]] = []  # (offset, start, caplen, origlen, iface, units)
    hdr = struct.Struct("<II").unpack_from
    epb_append = epbs.append
    little, e = True, "<"
    off = 0
    problem = ""
    while off + 12 <= n:
        btype, blen = hdr(buf, off)
        if btype == 6 and 32 <= blen <= MAX_RECORD and not blen & 3 and off + blen <= n:
            epb_append(off)  # the hot path: enhanced packet blocks
            off += blen
            continue
        if btype == PCAPNG_SHB:
            bom = buf[off + 8 : off + 12]
            if bom not in (b"\x4d\x3c\x2b\x1a", b"\x1a\x2b\x3c\x4d"):
                problem = f"corrupt section header at byte {off} (byte-order magic 0x{bom.hex()})"
                break
            little = bom == b"\x4d\x3c\x2b\x1a"
            e = "<" if little else ">"
            hdr = struct.Struct(e + "II").unpack_from
            btype, blen = hdr(buf, off)
            sections.append((off, little, len(interfaces)))
        elif not sections:
            problem = f"no section header block at byte {off}"
            break
        if blen < 12 or blen & 3 or blen > MAX_RECORD:
            problem = f"corrupt block header at byte {off} (block length {blen})"
            break
        if off + blen > n:
            problem = f"file ends inside block at byte {off} (needs {off + blen - n} more bytes)"
            break
        first_iface = sections[-1][2]
        if btype == 6:  # enhanced packet block shorter than its fixed fields
            problem = f"corrupt packet block at byte {off} (block length {blen})"
            break
        if btype == 3:  # simple packet block: no timestamp, interface 0
            (orig,) = struct.unpack_from(e + "I", buf, off + 8)
            snap = interfaces[first_iface].snaplen if len(interfaces) > first_iface else 0
            others.append((off, off + 12, min(orig, blen - 16, snap or orig), orig, first_iface, -1))
        elif btype == 2:  # obsolete packet block
            iface, _drops, hi, lo, cap, orig = struct.unpack_from(e + "HHIIII", buf, off + 8)
            if cap > blen - 32:
                problem = f"corrupt packet block at byte {off} (captured length {cap} > block)"
                break
            others.append((off, off + 28, cap, orig, first_iface + iface, (hi << 32) | lo))
        elif btype == 1:  # interface description block
            interfaces.append(_read_idb(buf, off, blen, little))
        off += blen
    if not problem and off != n:
        problem = f"file ends inside a block header at byte {off}"
    return interfaces, sections, epbs, others, off, problem


def _walk_pcapng(buf: bytes) -> RawFrames:
    interfaces, sections, epbs, others, off, problem = _scan_pcapng_blocks(buf)
    # rec, start, caplen, origlen, iface, units
    cols = list(_epb_fields(buf, np.asarray(epbs, np.int64), sections))
    rec, caplen = cols[0], cols[2]
    bad = np.flatnonzero(caplen > _gather_u32_mixed(buf, rec + 4, rec, sections) - 32)
    if len(bad):  # a packet block whose captured length runs past the block: stop there
        cut = bad[0]
        problem = f"corrupt packet block at byte {rec[cut]} (captured length {caplen[cut]} > block)"
        off = int(rec[cut])
        others = [o for o in others if o[0] < off]
        cols = [a[:cut] for a in cols]
    if others:
        cols = [np.concatenate([a, b]) for a, b in zip(cols, np.asarray(others, np.int64).T, strict=True)]
        order = np.argsort(cols[0], kind="stable")
        cols = [a[order] for a in cols]
    _rec, start, caplen, origlen, iface, units = cols

    missing = int(iface.max()) + 1 - len(interfaces) if len(iface) else 0
    interfaces.extend(_Interface(linktype=-1, snaplen=0) for _ in range(missing))  # undescribed interfaces
    links = np.asarray([i.linktype for i in interfaces] or [-1], dtype=np.int64)
    return RawFrames(
        fmt="pcapng",
        start=start,
        caplen=caplen,
        origlen=origlen,
        ts_ns=_pcapng_times(units, iface, interfaces),
        linktype=links[iface],
        truncated=bool(problem),
        bytes_skipped=len(buf) - off,
        problem=problem,
    )


def _gather_u32_mixed(buf: bytes, pos: np.ndarray, rec: np.ndarray, sections: list[tuple[int, bool, int]]
                      ) -> np.ndarray:
    """u32 at ``pos`` in the byte order of the section holding each record ``rec``."""
    u8 = np.frombuffer(buf, np.uint8)
    if len(pos) == 0:
        return np.zeros(0, np.int64)
    little = np.asarray([s[1] for s in sections], dtype=bool)
    sec = np.searchsorted(np.asarray([s[0] for s in sections], np.int64), rec, side="right") - 1
    return np.where(little[sec], _gather_u32(u8, pos, True), _gather_u32(u8, pos, False))


def _epb_fields(buf: bytes, rec: np.ndarray, sections: list[tuple[int, bool, int]]) -> tuple[np.ndarray, ...]:
    """(offset, data start, caplen, origlen, global interface, timestamp units) of enhanced packet blocks."""
    if len(rec) == 0:
        z = np.zeros(0, np.int64)
        return z, z, z, z, z, z
    sec = np.searchsorted(np.asarray([s[0] for s in sections], np.int64), rec, side="right") - 1
    first_iface = np.asarray([s[2] for s in sections], np.int64)[sec]

    def field(k: int) -> np.ndarray:
        return _gather_u32_mixed(buf, rec + 8 + 4 * k, rec, sections)

    units = (field(1) << 32) | field(2)
    return rec, rec + 28, field(3), field(4), first_iface + field(0), units


def _read_idb(buf: bytes, off: int, blen: int, little: bool) -> _Interface:
    e = "<" if little else ">"
    linktype, _reserved, snaplen = struct.unpack_from(e + "HHI", buf, off + 8)
    iface = _Interface(linktype=linktype, snaplen=snaplen)
    pos, end = off + 16, off + blen - 4
    while pos + 4 <= end:
        code, length = struct.unpack_from(e + "HH", buf, pos)
        value = pos + 4
        if code == 0 or value + length > end:
            break
        if code == 9 and length >= 1:  # if_tsresol
            raw = buf[value]
            iface.binary, iface.tsresol = bool(raw & 0x80), raw & 0x7F
        elif code == 14 and length >= 8:  # if_tsoffset
            (iface.tsoffset,) = struct.unpack_from(e + "q", buf, value)
        pos = value + ((length + 3) & ~3)
    return iface


def _pcapng_times(units: np.ndarray, iface: np.ndarray, interfaces: list[_Interface]) -> np.ndarray:
    """Timestamps in ns from per-interface units; simple packet blocks (-1) take the previous time."""
    ts = np.zeros(len(units), dtype=np.int64)
    for k in np.unique(iface):
        sel = iface == k
        u = units[sel]
        spec = interfaces[k]
        if spec.binary:
            r = spec.tsresol
            whole, frac = u >> r, u & ((1 << r) - 1)
            ns = whole * NS + np.floor(frac.astype(np.float64) * NS / float(1 << r)).astype(np.int64)
        elif spec.tsresol <= 9:
            ns = u * 10 ** (9 - spec.tsresol)
        else:
            ns = u // 10 ** (spec.tsresol - 9)
        ts[sel] = np.where(u < 0, -1, ns + spec.tsoffset * NS)
    missing = ts < 0
    if missing.any():  # carry the last known timestamp forward (0 before the first one)
        idx = np.where(missing, 0, np.arange(len(ts)))
        np.maximum.accumulate(idx, out=idx)
        ts = np.where(missing, np.where(missing[idx], 0, ts[idx]), ts)
    return ts
