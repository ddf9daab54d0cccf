"""Biflow assembly: semantics on constructed packets, and per-flow agreement with tshark's streams."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ntg.data._tshark import tshark_packets
from ntg.data.biflow import FLOW_META_COLUMNS, capture_to_flows, flows_from_packets
from ntg.data.pcap import PacketColumns, read_packets
from ntg.errors import NtgError

NDPI = "ndpi/tests/cfgs/default/pcap"
A, B, C = "10.0.0.9", "10.0.0.1", "192.168.1.5"  # A > B: the client needs not be the "lower" endpoint


def _conversation(times: list[float], senders: list[str], **extra: object) -> PacketColumns:
    """TCP packets between A:40000 and B:443; ``senders`` names who sends each packet ("A" or "B")."""
    ends = {"A": (A, 40000), "B": (B, 443)}
    other = {"A": "B", "B": "A"}
    return PacketColumns.build(
        ts=times,
        src_ip=[ends[s][0] for s in senders],
        dst_ip=[ends[other[s]][0] for s in senders],
        src_port=[ends[s][1] for s in senders],
        dst_port=[ends[other[s]][1] for s in senders],
        **extra,
    )


def test_direction_iat_and_packet_fields() -> None:
    packets = _conversation(
        [100.0, 100.25, 100.250001, 101.0],
        ["A", "B", "B", "A"],
        payload=[0, 0, 1400, 20],
        flags=[0x02, 0x12, 0x18, 0x10],
        window=[64240, 65535, 501, 502],
        src_mac=["02:00:00:00:00:0a", "02:00:00:00:00:0b", "02:00:00:00:00:0b", "02:00:00:00:00:0a"],
        dst_mac=["02:00:00:00:00:0b", "02:00:00:00:00:0a", "02:00:00:00:00:0a", "02:00:00:00:00:0b"],
    )
    flows = flows_from_packets(packets, max_packets=6)
    flows.validate()
    assert len(flows) == 1 and flows.max_packets == 6
    assert flows.n_packets.tolist() == [4]
    assert flows.direction[0].tolist() == [0, 1, 1, 0, 0, 0]
    np.testing.assert_allclose(flows.iat[0, :4], [0.0, 0.25, 0.000001, 0.749999], atol=1e-12)
    assert flows.payload[0].tolist() == [0, 0, 1400, 20, 0, 0]
    assert flows.flags[0, :4].tolist() == [0x02, 0x12, 0x18, 0x10]
    assert flows.window[0, :4].tolist() == [64240, 65535, 501, 502]
    row = flows.meta.iloc[0]
    assert list(flows.meta.columns) == list(FLOW_META_COLUMNS)
    assert (row.src_ip, row.src_port, row.dst_ip, row.dst_port, row.proto) == (A, 40000, B, 443, 6)
    assert row.first_ts == 100.0 and row.last_ts == 101.0 and row.label == ""
    assert (row.client_mac, row.server_mac) == ("02:00:00:00:00:0a", "02:00:00:00:00:0b")


def test_client_is_first_sender_even_when_packets_arrive_unsorted() -> None:
    packets = _conversation([5.0, 3.0, 4.0], ["A", "B", "A"], payload=[3, 1, 2])
    flows = flows_from_packets(packets)
    assert flows.meta.loc[0, "src_ip"] == B and flows.meta.loc[0, "src_port"] == 443
    assert flows.payload[0, :3].tolist() == [1, 2, 3]
    assert flows.direction[0, :3].tolist() == [0, 1, 1]


def test_idle_timeout_splits_a_biflow() -> None:
    times = [0.0, 1.0, 121.0, 241.5, 242.0]  # gaps 1, 120 (not more than the timeout), 120.5, 0.5
    packets = _conversation(times, ["A", "B", "A", "B", "A"], payload=[1, 2, 3, 4, 5])
    flows = flows_from_packets(packets, idle_timeout=120.0)
    assert flows.n_packets.tolist() == [3, 2]
    assert flows.payload[:, :3].tolist() == [[1, 2, 3], [4, 5, 0]]
    # the second biflow's client is B, who sent its first packet; its first iat restarts at 0
    assert flows.meta["src_ip"].tolist() == [A, B]
    assert flows.direction[1, :2].tolist() == [0, 1]
    assert flows.iat[1, :2].tolist() == [0.0, 0.5]
    assert flows.meta["first_ts"].tolist() == [0.0, 241.5]
    assert flows_from_packets(packets, idle_timeout=10.0).n_packets.tolist() == [2, 1, 2]
    assert flows_from_packets(packets, idle_timeout=1000.0).n_packets.tolist() == [5]


def test_keys_separate_protocols_and_endpoints_and_rows_follow_first_ts() -> None:
    packets = PacketColumns.build(
        ts=[3.0, 1.0, 2.0, 4.0, 5.0],
        src_ip=[A, A, C, B, A],
        dst_ip=[B, B, A, A, B],
        src_port=[53, 53, 53, 53, 53],
        dst_port=[53, 53, 53, 53, 53],
        proto=[17, 6, 17, 17, 6],
        payload=[10, 20, 30, 40, 50],
        window=[0, 9, 0, 0, 9],
    )
    flows = flows_from_packets(packets)
    assert flows.meta["first_ts"].tolist() == [1.0, 2.0, 3.0]
    assert flows.meta["proto"].tolist() == [6, 17, 17]
    assert flows.n_packets.tolist() == [2, 1, 2]
    assert flows.payload[:, :2].tolist() == [[20, 50], [30, 0], [10, 40]]
    assert flows.direction[2, :2].tolist() == [0, 1]
    assert flows.window[1:, :2].tolist() == [[0, 0], [0, 0]]


def test_long_flows_store_max_packets_but_count_all() -> None:
    n = 45
    packets = _conversation([0.001 * i for i in range(n)], ["A", "B"] * 22 + ["A"], payload=list(range(n)))
    flows = flows_from_packets(packets, max_packets=32)
    assert flows.n_packets.tolist() == [n] and flows.max_packets == 32
    assert flows.payload[0].tolist() == list(range(32))
    assert flows.meta.loc[0, "last_ts"] == pytest.approx(0.044)


def test_empty_input_and_bad_options() -> None:
    empty = flows_from_packets(PacketColumns.build([], [], [], [], []), max_packets=10)
    assert len(empty) == 0 and empty.max_packets == 10
    assert list(empty.meta.columns) == list(FLOW_META_COLUMNS)
    packets = _conversation([0.0], ["A"])
    with pytest.raises(NtgError, match="idle timeout"):
        flows_from_packets(packets, idle_timeout=0)
    with pytest.raises(NtgError, match="max_packets"):
        flows_from_packets(packets, max_packets=0)


# ---------------------------------------------------------------------------------------------- real captures
BIFLOW_CAPTURES = [
    "requet/D/PCAP_FILES/baseline_May17_exp_370.pcap",
    "iot-sentinel/captures_IoT_Sentinel/captures_IoT-Sentinel/HueBridge/Setup-C-14-STA.pcap",
    f"{NDPI}/KakaoTalk_talk.pcap",
    f"{NDPI}/reddit.pcap",
    f"{NDPI}/tls_heur__shadowsocks-tcp.pcapng",
]


def _tshark_streams(path: Path) -> dict[tuple, pd.DataFrame]:
    """tshark's tcp/udp streams keyed by 5-tuple, for 5-tuples that map to exactly one stream.

    Streams with a frame tshark calls malformed are left out (the reader keeps such frames; tshark's fields
    for them are not a reference).
    """
    ref = tshark_packets(path)
    ref = ref[(ref["comparable"] | ref["malformed"]) & (ref["stream"] >= 0) & (ref["sport"] >= 0)]
    streams: dict[tuple, list[pd.DataFrame]] = {}
    for (_proto, _stream), group in ref.groupby(["proto", "stream"], sort=False):
        if group["malformed"].any():
            continue
        group = group.sort_values(["ts_ns", "frame"], kind="stable")
        first = group.iloc[0]
        ends = sorted([(first.src, first.sport), (first.dst, first.dport)])
        streams.setdefault((first.proto, *ends[0], *ends[1]), []).append(group)
    return {key: groups[0] for key, groups in streams.items() if len(groups) == 1}


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
@pytest.mark.parametrize("capture", BIFLOW_CAPTURES, ids=[c.rsplit("/", 1)[-1] for c in BIFLOW_CAPTURES])
def test_biflows_agree_with_tshark_streams(datasets_root: Path, capture: str) -> None:
    path = datasets_root / capture
    flows, report = capture_to_flows(path)
    flows.validate()
    assert flows.n_packets.sum() == report.packets_kept
    assert np.all(np.diff(flows.meta["first_ts"].to_numpy()) >= 0)

    meta = flows.meta
    ends = [sorted([(r.src_ip, r.src_port), (r.dst_ip, r.dst_port)]) for r in meta.itertuples()]
    keys = [(p, *e[0], *e[1]) for p, e in zip(meta["proto"], ends, strict=True)]
    rows_of: dict[tuple, list[int]] = {}
    for i, key in enumerate(keys):
        rows_of.setdefault(key, []).append(i)
    streams = _tshark_streams(path)
    compared = 0
    for key, rows in rows_of.items():
        if len(rows) != 1 or key not in streams:
            continue  # split by the idle timeout, or by tshark on port reuse
        i, stream = rows[0], streams[key]
        first = stream.iloc[0]
        k = min(len(stream), flows.max_packets)
        assert flows.n_packets[i] == len(stream)
        assert (meta.src_ip[i], meta.src_port[i]) == (first.src, first.sport)
        assert meta.first_ts[i] == pytest.approx(first.ts_ns / 1e9, abs=1e-6)
        assert flows.payload[i, :k].tolist() == stream["payload"].iloc[:k].tolist()
        expected_dir = ((stream["src"] != first.src) | (stream["sport"] != first.sport)).astype(int)
        assert flows.direction[i, :k].tolist() == expected_dir.iloc[:k].tolist()
        ts_us = stream["ts_ns"].to_numpy() // 1000
        expected_iat = np.diff(ts_us[:k], prepend=ts_us[0]) / 1e6
        np.testing.assert_allclose(flows.iat[i, :k], expected_iat, atol=1e-9)
        compared += 1
    assert compared >= min(len(flows), max(3, len(flows) // 2)), f"only {compared} of {len(flows)} biflows compared"


def test_capture_to_flows_on_a_real_capture(datasets_root: Path) -> None:
    path = datasets_root / "iot-sentinel/captures_IoT_Sentinel/captures_IoT-Sentinel/iKettle2/Setup-C-2-STA.pcap"
    flows, report = capture_to_flows(path, idle_timeout=5.0, max_packets=10)
    packets, _ = read_packets(path)
    assert flows.max_packets == 10 and flows.n_packets.sum() == len(packets)
    assert len(flows) >= len(capture_to_flows(path)[0])  # a shorter timeout never merges flows
    device = (path.parent / "_iotdevice-mac.txt").read_text().strip().lower()
    assert ((flows.meta["client_mac"] == device) | (flows.meta["server_mac"] == device)).any()
    assert flows.meta["client_mac"].str.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}").all()
    assert report.packets_kept == len(packets)
