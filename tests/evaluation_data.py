"""Test helpers for the evaluation metrics: real flows from the CESNET PPI sample and constructed flows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ntg.data.schema import FlowTable

CESNET_PPI = Path("cesnet-miner22/CESNET-MINER22-PPI/input/miner22-ppi-sampled.csv")


def cesnet_flows(datasets_root: Path, n_packets: int = 10) -> FlowTable:
    """The 3,999 real ISP flows of the CESNET PPI sample (IPT in ms, DIR ±1, SIZE) as a FlowTable."""
    frame = pd.read_csv(datasets_root / CESNET_PPI, skipinitialspace=True)
    frame.columns = [c.strip() for c in frame.columns]
    ipt = frame[[f"IPT_{i}" for i in range(1, 31)]].to_numpy(np.float64) / 1e3
    sign = frame[[f"DIR_{i}" for i in range(1, 31)]].to_numpy(np.int64)
    size = frame[[f"SIZE_{i}" for i in range(1, 31)]].to_numpy(np.int64)
    length = (sign != 0).sum(axis=1)
    keep = length >= 1
    ipt, sign, size, length = ipt[keep], sign[keep], size[keep], length[keep]
    mask = np.arange(30)[None, :] < length[:, None]
    ipt = np.where(mask, ipt, 0.0)
    ipt[:, 0] = 0.0
    zeros = np.zeros_like(size)
    flows = FlowTable(
        n_packets=length,
        payload=np.where(mask, size, 0),
        direction=np.where(mask & (sign < 0), 1, 0),
        iat=ipt,
        flags=zeros,
        window=zeros,
        meta=pd.DataFrame({"label": frame["label"].astype(str).str.strip().to_numpy(object)[keep]}),
    )
    flows.validate()
    return flows.first(n_packets)


def random_split(flows: FlowTable, seed: int = 0) -> tuple[FlowTable, FlowTable]:
    """Two disjoint random halves of ``flows``."""
    order = np.random.default_rng(seed).permutation(len(flows))
    half = len(flows) // 2
    return flows.take(np.sort(order[:half])), flows.take(np.sort(order[half:]))


def constructed_flows(payload, direction, iat=None, label: str = "a") -> FlowTable:
    """A FlowTable from dense ``(n, N)`` arrays; every flow uses all N packets."""
    payload = np.asarray(payload)
    n, p = payload.shape
    direction = np.broadcast_to(np.asarray(direction), (n, p))
    iat = (
        np.zeros((n, p)) if iat is None else np.broadcast_to(np.asarray(iat, dtype=np.float64), (n, p)).copy()
    )
    iat[:, 0] = 0.0
    zeros = np.zeros((n, p), dtype=np.int64)
    return FlowTable(
        n_packets=np.full(n, p),
        payload=payload,
        direction=direction,
        iat=iat,
        flags=zeros,
        window=zeros,
        meta=pd.DataFrame({"label": np.full(n, label, dtype=object)}),
    )
