"""Building a :class:`~ntg.data.schema.FlowTable` from per-flow packet lists, as the dataset-file loaders
(:mod:`ntg.data.loaders`) read them: padded to the table's width, the first packet's gap zeroed, flows that
open server→client turned round so every flow starts client→server.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from ntg.data.schema import PACKET_DTYPES, PACKET_FIELDS, FlowTable
from ntg.errors import NtgError

TCP_FLAG_LETTERS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10, "U": 0x20, "E": 0x40, "C": 0x80}


class FlowBuilder:
    """Collects flows packet list by packet list and builds the padded FlowTable at the end."""

    def __init__(self, max_packets: int) -> None:
        self.p = max_packets
        self.rows: dict[str, list[np.ndarray]] = {name: [] for name in PACKET_FIELDS}
        self.n_packets: list[int] = []
        self.meta: list[dict] = []

    def add(
        self,
        payload: ArrayLike,
        server_side: ArrayLike,
        first_is_server: bool,
        iat: ArrayLike,
        flags: ArrayLike,
        window: ArrayLike,
        n_packets: int,
        meta: dict,
        source: Path | None,
    ) -> None:
        """One flow's per-packet lists (the direction list sets how many are stored; 1 = server side), its full
        packet count and its metadata; ``source`` names the file in errors."""
        values = {"payload": payload, "direction": server_side, "iat": iat, "flags": flags, "window": window}
        stored = min(len(np.asarray(server_side)), self.p)
        for name, seq in values.items():
            arr = np.asarray(seq)[: self.p]
            if len(arr) < stored:
                raise NtgError(f"{source}: a flow's {name} list is shorter than its direction list")
            row = np.zeros(self.p, PACKET_DTYPES[name])
            row[:stored] = arr[:stored]
            self.rows[name].append(row)
        self.rows["iat"][-1][0] = 0.0
        if np.any(self.rows["iat"][-1] < 0) or np.any(self.rows["payload"][-1] < 0):
            raise NtgError(f"{source}: a flow has negative inter-arrival times or payload lengths")
        if first_is_server:
            meta = _swap_endpoints(meta)
        self.n_packets.append(n_packets if stored == self.p else stored)
        self.meta.append(meta)

    def table(self) -> FlowTable:
        """The flows added so far as one FlowTable (an empty one of the same width when there are none)."""
        if not self.n_packets:
            return FlowTable.empty(self.p)
        return FlowTable(
            n_packets=np.array(self.n_packets),
            **{name: np.stack(rows) for name, rows in self.rows.items()},
            meta=pd.DataFrame(self.meta),
        )


def _swap_endpoints(meta: dict) -> dict:
    meta = dict(meta)
    for a, b in (("src_ip", "dst_ip"), ("src_port", "dst_port")):
        if a in meta and b in meta:
            meta[a], meta[b] = meta[b], meta[a]
    return meta


def tcp_flags(value: object) -> int:
    """A TCP flags value as a byte: a number, a numeric string (``"0x18"``) or letters (``"PA"``)."""
    if isinstance(value, int | float):
        return int(value)
    text = str(value).strip()
    try:
        return int(text, 0)
    except ValueError:
        return sum(TCP_FLAG_LETTERS.get(c.upper(), 0) for c in set(text))
