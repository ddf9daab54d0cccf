"""The capture reader against tshark on real captures of many formats and link types, and on damaged files."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ntg.data._records import walk_capture
from ntg.data._tshark import tshark_packets
from ntg.data.pcap import PacketColumns, format_macs, parse_buffer, parse_ips, read_packets, sniff_capture
from ntg.errors import NtgError

NDPI = "ndpi/tests/cfgs/default/pcap"
# (capture, what it exercises)
REFERENCE_CAPTURES = [
    (f"{NDPI}/KakaoTalk_talk.pcap", "Linux cooked (SLL) pcap"),
    (f"{NDPI}/tls_heur__shadowsocks-tcp.pcapng", "pcapng, SLL, IPv4 + IPv6"),
    (f"{NDPI}/false_positives.pcapng", "pcapng, Ethernet, QinQ VLAN, GTP tunnel"),
    (f"{NDPI}/reddit.pcap", "IPv6 over Ethernet"),
    (f"{NDPI}/bot.pcap", "802.1Q VLAN"),
    (f"{NDPI}/discord_mid_flow.pcap", "QinQ + PPPoE"),
    (f"{NDPI}/openwire.pcapng", "BSD loopback (NULL) pcapng, IPv6"),
    (f"{NDPI}/ocs.pcap", "raw IP"),
    (f"{NDPI}/nfsv3.pcap", "big-endian pcap"),
    (f"{NDPI}/dns_fragmented.pcap", "IPv6 fragments"),
    (f"{NDPI}/BGP_Cisco_hdlc_slarp.pcap", "PPP link type carrying Cisco HDLC"),
    (f"{NDPI}/fuzz-2006-06-26-2594.pcap", "fuzzed headers: bad lengths, fragments"),
    ("iot-sentinel/captures_IoT_Sentinel/captures_IoT-Sentinel/iKettle2/Setup-C-2-STA.pcap", "IoT Ethernet"),
    ("requet/D/PCAP_FILES/baseline_May17_exp_370.pcap", "Requet Ethernet, QUIC"),
]

needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")


def assert_matches_tshark(path: Path) -> PacketColumns:
    """Every packet tshark decodes plainly is kept, with the same fields; nothing else is invented."""
    packets, report = read_packets(path)
    ref = tshark_packets(path)
    assert report.packets_read == len(ref), "record count differs from tshark's frame count"
    assert np.array_equal(ref["frame"].to_numpy(), np.arange(len(ref)))

    kept = np.zeros(len(ref), dtype=bool)
    kept[packets.frame] = True
    comparable = ref["comparable"].to_numpy()
    missing = np.flatnonzero(comparable & ~kept)
    assert len(missing) == 0, f"frames tshark decodes as TCP/UDP but the reader skipped: {missing[:10] + 1}"
    extra = np.flatnonzero(kept & ~comparable)
    unexplained = extra[~(ref["outer_l4"].to_numpy()[extra] | ref["malformed"].to_numpy()[extra])]
    assert len(unexplained) == 0, f"frames kept that tshark does not see as TCP/UDP: {unexplained[:10] + 1}"

    sel = comparable[packets.frame]
    mine = packets.take(sel)
    theirs = ref.iloc[mine.frame]
    assert len(mine) > 0
    checks = {
        "timestamp (ns)": (mine.ts_ns, theirs["ts_ns"]),
        "src ip": (mine.ip_strings("src"), theirs["src"]),
        "dst ip": (mine.ip_strings("dst"), theirs["dst"]),
        "src port": (mine.src_port.astype(np.int64), theirs["sport"]),
        "dst port": (mine.dst_port.astype(np.int64), theirs["dport"]),
        "protocol": (mine.proto.astype(np.int64), theirs["proto"]),
        "payload": (mine.payload.astype(np.int64), theirs["payload"]),
        "tcp flags": (mine.flags.astype(np.int64), theirs["flags"]),
        "tcp window": (mine.window.astype(np.int64), theirs["window"]),
    }
    for name, (a, b) in checks.items():
        bad = np.flatnonzero(np.asarray(a) != np.asarray(b))
        assert len(bad) == 0, f"{path.name}: {name} differs at frames {mine.frame[bad[:5]] + 1}"
    has_mac = mine.src_mac >= 0
    assert np.array_equal(format_macs(mine.src_mac[has_mac]), theirs["src_mac"].to_numpy()[has_mac])
    assert np.all(theirs["src_mac"].to_numpy()[~has_mac] == ""), "tshark sees a MAC the reader missed"
    return packets


@needs_tshark
@pytest.mark.parametrize("capture", [c for c, _ in REFERENCE_CAPTURES], ids=[w for _, w in REFERENCE_CAPTURES])
def test_reader_agrees_with_tshark(datasets_root: Path, capture: str) -> None:
    assert_matches_tshark(datasets_root / capture)


@needs_tshark
def test_nanosecond_pcap_and_pcapng(datasets_root: Path, tmp_path: Path) -> None:
    """Sub-microsecond timestamps survive in nanosecond pcap and pcapng (if_tsresol=9)."""
    src = datasets_root / NDPI / "reddit.pcap"
    for fmt in ("nsecpcap", "pcapng"):
        out = tmp_path / f"shifted.{fmt}"
        # a 123 ns shift gives every timestamp digits below the microsecond
        subprocess.run(["editcap", "-F", "nsecpcap", "-t", "0.000000123", str(src), str(tmp_path / "ns.pcap")],
                       check=True, capture_output=True)
        subprocess.run(["editcap", "-F", fmt, str(tmp_path / "ns.pcap"), str(out)], check=True,
                       capture_output=True)
        packets = assert_matches_tshark(out)
        assert np.all(packets.ts_ns % 1000 == 123)
        assert sniff_capture(out) == ("pcap" if fmt == "nsecpcap" else "pcapng")


def _records(path: Path) -> tuple[bytes, list[tuple[int, int, int, bytes]]]:
    """An independent minimal reader of little-endian microsecond pcap: header and (sec, usec, orig, data)."""
    buf = path.read_bytes()
    assert buf[:4] == b"\xd4\xc3\xb2\xa1"
    out, off = [], 24
    while off + 16 <= len(buf):
        sec, usec, incl, orig = struct.unpack_from("<IIII", buf, off)
        out.append((sec, usec, orig, buf[off + 16 : off + 16 + incl]))
        off += 16 + incl
    return buf[:24], out


@needs_tshark
def test_sll2_link_type(datasets_root: Path, tmp_path: Path) -> None:
    """Linux cooked v2 (276): an Ethernet capture rewritten with SLL2 headers, checked against tshark."""
    header, records = _records(datasets_root / NDPI / "bot.pcap")
    out = bytearray(header[:20] + struct.pack("<I", 276))
    for sec, usec, orig, data in records:
        sll2 = data[12:14] + b"\0\0" + struct.pack(">IHBB", 3, 1, 0, 6) + data[6:12] + b"\0\0"
        frame = sll2 + data[14:]
        out += struct.pack("<IIII", sec, usec, len(frame), orig + 6) + frame
    path = tmp_path / "sll2.pcap"
    path.write_bytes(bytes(out))
    packets = assert_matches_tshark(path)
    _, report = read_packets(path)
    assert report.link_types == {276: len(records)}
    assert np.all(packets.src_mac >= 0) and np.all(packets.dst_mac == -1)


# ---------------------------------------------------------------------------------------------- damage
def _cut_inside_record(path: Path, tmp_path: Path, keep_records: int) -> tuple[Path, int]:
    """A copy of ``path`` cut in the middle of record ``keep_records`` (0-based)."""
    header, records = _records(path)
    off = len(header) + sum(16 + len(r[3]) for r in records[:keep_records])
    cut = off + 16 + len(records[keep_records][3]) // 2
    out = tmp_path / f"cut-{path.name}"
    out.write_bytes(path.read_bytes()[:cut])
    return out, cut - off


def test_truncated_capture_keeps_packets_before_the_cut(datasets_root: Path, tmp_path: Path) -> None:
    src = datasets_root / NDPI / "reddit.pcap"
    full, full_report = read_packets(src)
    cut_path, lost = _cut_inside_record(src, tmp_path, keep_records=700)
    packets, report = read_packets(cut_path)
    assert report.truncated and "record 701" in report.problem
    assert report.packets_read == 700 and report.bytes_skipped == lost
    assert not full_report.truncated
    before = full.frame < 700
    assert np.array_equal(packets.ts_ns, full.ts_ns[before])
    assert np.array_equal(packets.payload, full.payload[before])
    assert "TRUNCATED" in report.summary()


def test_truncated_pcapng_and_corrupt_record(datasets_root: Path, tmp_path: Path) -> None:
    src = datasets_root / NDPI / "tls_heur__shadowsocks-tcp.pcapng"
    full, _ = read_packets(src)
    data = src.read_bytes()
    last_packet = int(walk_capture(data).start[-1])
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(data[: last_packet + 20])  # inside the last packet block
    packets, report = read_packets(cut)
    assert report.truncated and report.packets_read == 99 and report.bytes_skipped > 0
    assert np.array_equal(packets.payload, full.payload[full.frame < 99])

    header, records = _records(datasets_root / NDPI / "bot.pcap")
    bad = bytearray(datasets_root.joinpath(NDPI, "bot.pcap").read_bytes())
    off = len(header) + sum(16 + len(r[3]) for r in records[:10])
    struct.pack_into("<I", bad, off + 8, 0x7FFFFFFF)  # absurd captured length in record 11
    corrupt = tmp_path / "corrupt.pcap"
    corrupt.write_bytes(bytes(bad))
    packets, report = read_packets(corrupt)
    assert report.truncated and "corrupt record header" in report.problem
    assert report.packets_read == 10 and report.bytes_skipped == len(bad) - off


def test_not_a_capture_raises_ntg_error(tmp_path: Path) -> None:
    text = tmp_path / "notes.pcap"
    text.write_text("hello, not a capture\n")
    with pytest.raises(NtgError, match=r"notes\.pcap: not a pcap/pcapng capture \(magic 0x68656c6c\)"):
        read_packets(text)
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    with pytest.raises(NtgError, match="empty.pcap"):
        read_packets(empty)
    with pytest.raises(NtgError, match="no such capture file"):
        read_packets(tmp_path / "missing.pcap")
    assert sniff_capture(text) is None


def test_skip_reasons_are_counted(datasets_root: Path) -> None:
    packets, report = read_packets(datasets_root / NDPI / "dns_fragmented.pcap")
    assert report.skipped.get("fragment", 0) > 0
    assert report.packets_kept + sum(report.skipped.values()) == report.packets_read
    assert report.packets_kept == len(packets)
    assert report.to_dict()["link_types"] == {"1": report.packets_read}


def test_build_helper_round_trips_addresses() -> None:
    cols = PacketColumns.build(ts=[1.5, 2.0], src_ip=["10.0.0.1", "2001:db8::1"], dst_ip=["8.8.8.8", "::1"],
                               src_port=[1234, 5], dst_port=[53, 6], proto=17, payload=[10, 20],
                               src_mac=["aa:bb:cc:00:11:22", ""])
    assert cols.ip_strings("src").tolist() == ["10.0.0.1", "2001:db8::1"]
    assert cols.ip_version.tolist() == [4, 6]
    assert format_macs(cols.src_mac).tolist() == ["aa:bb:cc:00:11:22", ""]
    assert parse_ips(["1.2.3.4"])[0, 10:].tolist() == [255, 255, 1, 2, 3, 4]


def test_header_only_and_cut_header(datasets_root: Path) -> None:
    header = (datasets_root / NDPI / "reddit.pcap").read_bytes()[:24]
    packets, report = parse_buffer(header, "header-only.pcap")
    assert len(packets) == 0 and report.packets_read == 0 and not report.truncated
    packets, report = parse_buffer(header[:10], "cut.pcap")
    assert len(packets) == 0 and report.truncated and report.bytes_skipped == 10
