"""Packets → biflows: group by canonical 5-tuple, split on idle gaps, keep the first packets of each.

A biflow is the packets between one pair of endpoints (IP, port) over one protocol, in either direction,
with no silence longer than ``idle_timeout`` seconds; a longer gap starts a new biflow. The client is the
sender of the biflow's first packet. All of it is vectorised: one lexsort by (key, time), then group
boundaries; no Python loop over packets.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ntg.data.pcap import PacketColumns, ParseReport, format_ips, format_macs, read_packets
from ntg.data.schema import MAX_PACKETS, PACKET_DTYPES, PACKET_FIELDS, FlowTable
from ntg.errors import NtgError

DEFAULT_IDLE_TIMEOUT = 120.0
FLOW_META_COLUMNS = ("label", "src_ip", "dst_ip", "src_port", "dst_port", "proto", "first_ts", "last_ts",
                     "client_mac", "server_mac")


def capture_to_flows(
    path: str | Path, idle_timeout: float = DEFAULT_IDLE_TIMEOUT, max_packets: int = MAX_PACKETS
) -> tuple[FlowTable, ParseReport]:
    """Read a pcap/pcapng capture and assemble its TCP/UDP packets into biflows."""
    _check_options(idle_timeout, max_packets)
    packets, report = read_packets(path)
    return flows_from_packets(packets, idle_timeout, max_packets), report


def flows_from_packets(
    packets: PacketColumns, idle_timeout: float = DEFAULT_IDLE_TIMEOUT, max_packets: int = MAX_PACKETS
) -> FlowTable:
    """Biflows of ``packets`` (any order), rows ordered by first timestamp; ``meta`` per FLOW_META_COLUMNS."""
    _check_options(idle_timeout, max_packets)
    n = len(packets)
    if n == 0:
        return _empty_flows(max_packets)

    src_hi, src_lo = _ip_words(packets.src_ip)
    dst_hi, dst_lo = _ip_words(packets.dst_ip)
    sport, dport = packets.src_port.astype(np.int64), packets.dst_port.astype(np.int64)
    # The canonical key orders the two endpoints; ``src_is_low`` says which one sent each packet.
    src_is_low = (src_hi < dst_hi) | (
        (src_hi == dst_hi) & ((src_lo < dst_lo) | ((src_lo == dst_lo) & (sport <= dport)))
    )
    key = [
        packets.proto.astype(np.int64),
        np.where(src_is_low, src_hi, dst_hi),
        np.where(src_is_low, src_lo, dst_lo),
        np.where(src_is_low, sport, dport),
        np.where(src_is_low, dst_hi, src_hi),
        np.where(src_is_low, dst_lo, src_lo),
        np.where(src_is_low, dport, sport),
    ]
    order = np.lexsort((packets.frame, packets.ts_ns, *key[::-1]))
    ts = packets.ts_ns[order]

    new_key = np.zeros(n, dtype=bool)
    new_key[0] = True
    for column in key:
        sorted_column = column[order]
        new_key[1:] |= sorted_column[1:] != sorted_column[:-1]
    gap = np.zeros(n, dtype=bool)
    gap[1:] = (ts[1:] - ts[:-1]) > round(idle_timeout * 1e9)
    boundary = new_key | gap

    starts = np.flatnonzero(boundary)
    flow = np.cumsum(boundary) - 1
    counts = np.diff(np.append(starts, n))
    position = np.arange(n) - starts[flow]

    low_sender = src_is_low[order]
    direction = (low_sender != low_sender[starts][flow]).astype(np.int8)
    ts_us = ts // 1000
    iat_us = np.zeros(n, dtype=np.int64)
    iat_us[1:] = ts_us[1:] - ts_us[:-1]
    iat_us[boundary] = 0

    per_packet = {
        "payload": packets.payload[order],
        "direction": direction,
        "iat": iat_us / 1e6,
        "flags": packets.flags[order],
        "window": packets.window[order],
    }
    first = order[starts]  # index (into ``packets``) of each flow's first packet
    rows = np.lexsort((packets.frame[first], packets.ts_ns[first]))  # flows by first timestamp
    rank = np.empty_like(rows)
    rank[rows] = np.arange(len(rows))

    keep = position < max_packets
    arrays = {}
    for name in PACKET_FIELDS:
        out = np.zeros((len(starts), max_packets), dtype=PACKET_DTYPES[name])
        out[rank[flow[keep]], position[keep]] = per_packet[name][keep]
        arrays[name] = out

    last = order[starts + counts - 1]
    server_mac = _server_macs(packets, order, starts, flow, direction)
    meta = _flow_meta(packets, first[rows], last[rows], server_mac[rows])
    return FlowTable(n_packets=counts[rows], **arrays, meta=meta)


def _flow_meta(packets: PacketColumns, first: np.ndarray, last: np.ndarray, server_mac: np.ndarray
               ) -> pd.DataFrame:
    return pd.DataFrame({
        "label": np.full(len(first), "", dtype=object),
        "src_ip": format_ips(packets.src_ip[first]),
        "dst_ip": format_ips(packets.dst_ip[first]),
        "src_port": packets.src_port[first].astype(np.int64),
        "dst_port": packets.dst_port[first].astype(np.int64),
        "proto": packets.proto[first].astype(np.int64),
        "first_ts": packets.ts_ns[first] / 1e9,
        "last_ts": packets.ts_ns[last] / 1e9,
        "client_mac": format_macs(packets.src_mac[first]),
        "server_mac": format_macs(server_mac),
    })


def _server_macs(packets: PacketColumns, order: np.ndarray, starts: np.ndarray, flow: np.ndarray,
                 direction: np.ndarray) -> np.ndarray:
    """Per flow: the first packet's destination MAC, else the source MAC of the first reply (SLL links)."""
    dst_first = packets.dst_mac[order[starts]]
    src_mac = packets.src_mac[order]
    reply = (direction == 1) & (src_mac >= 0)
    reply_flows, at = np.unique(flow[reply], return_index=True)
    from_reply = np.full(len(starts), -1, dtype=np.int64)
    from_reply[reply_flows] = src_mac[np.flatnonzero(reply)[at]]
    return np.where(dst_first >= 0, dst_first, from_reply)


def _ip_words(ips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, 16) address bytes → two big-endian uint64 words that sort like the addresses."""
    words = np.ascontiguousarray(ips, dtype=np.uint8).view(">u8").astype(np.uint64)
    return words[:, 0], words[:, 1]


def _empty_flows(max_packets: int) -> FlowTable:
    table = FlowTable.empty(max_packets)
    table.meta = pd.DataFrame({
        name: pd.Series([], dtype=object if name in ("label", "src_ip", "dst_ip", "client_mac", "server_mac")
                        else (np.float64 if name.endswith("_ts") else np.int64))
        for name in FLOW_META_COLUMNS
    })
    return table


def _check_options(idle_timeout: float, max_packets: int) -> None:
    if not (isinstance(idle_timeout, int | float) and math.isfinite(idle_timeout) and idle_timeout > 0):
        raise NtgError(f"idle timeout {idle_timeout!r} is not a positive number of seconds; use e.g. 120")
    if not (isinstance(max_packets, int | np.integer) and max_packets >= 1):
        raise NtgError(f"max_packets {max_packets!r} must be a positive integer (default {MAX_PACKETS})")
