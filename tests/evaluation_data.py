"""Test helpers for the evaluation metrics: real flows from the CESNET PPI sample and constructed flows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ntg.data.loaders import load_cesnet_ppi
from ntg.data.schema import FlowTable

CESNET_PPI = Path("cesnet-miner22/CESNET-MINER22-PPI/input/miner22-ppi-sampled.csv")


def cesnet_flows(datasets_root: Path, n_packets: int = 10) -> FlowTable:
    """The 3,999 real ISP flows of the CESNET PPI sample (labels Miner / Other), first ``n_packets``."""
    flows = load_cesnet_ppi(datasets_root / CESNET_PPI)
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
