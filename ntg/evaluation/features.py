"""Classifier inputs from the first N packets of each biflow.

* :func:`flat_features` — one vector per flow for tree models: ``[direction, payload, iat]`` for each of the
  N positions, then the stored length. Direction is signed (+1 client→server, -1 server→client) so that 0
  means "no packet"; every field is 0 past the flow's length (masked).
* :func:`series_features` — a ``(n, C, N)`` float32 array for the 1-D CNN with C = 4 channels: signed
  direction, ``log1p(payload) / log1p(1500)``, ``(log10(iat + 1 µs) + 6) / 6`` (0 at 0 s, 1 at 1 s),
  presence mask.
* :func:`flows_from_flat` — the inverse of :func:`flat_features` (rounding and clipping), so that augmenters
  working in feature space (SMOTE) still hand back a :class:`~ntg.data.schema.FlowTable`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ntg.data.schema import PACKET_DTYPES, FlowTable

FLAT_FIELDS = ("direction", "payload", "iat")
SERIES_CHANNELS = ("direction", "payload", "iat", "mask")
_PAYLOAD_SCALE = np.log1p(1500.0)


def flat_feature_names(n_packets: int) -> list[str]:
    """Column names of :func:`flat_features`."""
    return [f"{name}_{i}" for i in range(n_packets) for name in FLAT_FIELDS] + ["length"]


def flat_features(flows: FlowTable, n_packets: int) -> np.ndarray:
    """``(n, 3 * n_packets + 1)`` float64: per position signed direction, payload, iat; then length."""
    window = flows.pad_to(n_packets)
    mask = window.mask
    direction = np.where(mask, 1.0 - 2.0 * window.direction, 0.0)
    payload = np.where(mask, window.payload, 0).astype(np.float64)
    iat = np.where(mask, window.iat, 0.0)
    per_packet = np.stack([direction, payload, iat], axis=2).reshape(len(window), -1)
    return np.concatenate([per_packet, window.length[:, None].astype(np.float64)], axis=1)


def series_features(flows: FlowTable, n_packets: int) -> np.ndarray:
    """``(n, 4, n_packets)`` float32 channels for the CNN (see module docstring), 0 where no packet."""
    window = flows.pad_to(n_packets)
    mask = window.mask
    direction = np.where(mask, 1.0 - 2.0 * window.direction, 0.0)
    payload = np.log1p(np.clip(window.payload, 0, None)) / _PAYLOAD_SCALE
    iat = (np.log10(np.clip(window.iat, 0, None) + 1e-6) + 6.0) / 6.0
    series = np.stack([direction, payload * mask, iat * mask, mask.astype(np.float64)], axis=1)
    return series.astype(np.float32)


def flows_from_flat(features: np.ndarray, labels: np.ndarray, n_packets: int) -> FlowTable:
    """Flows back from (possibly interpolated) :func:`flat_features` rows; values rounded into the schema."""
    features = np.asarray(features, dtype=np.float64)
    n = len(features)
    per_packet = features[:, : 3 * n_packets].reshape(n, n_packets, 3)
    length = np.clip(np.rint(features[:, -1]), 1, n_packets).astype(np.int64)
    mask = np.arange(n_packets)[None, :] < length[:, None]
    direction = np.where(mask & (per_packet[:, :, 0] < 0), 1, 0)
    payload = np.where(mask, np.clip(np.rint(per_packet[:, :, 1]), 0, None), 0)
    iat = np.where(mask, np.clip(per_packet[:, :, 2], 0, None), 0.0)
    iat[:, 0] = 0.0
    zeros = np.zeros((n, n_packets))
    return FlowTable(
        n_packets=length,
        payload=payload.astype(PACKET_DTYPES["payload"]),
        direction=direction.astype(PACKET_DTYPES["direction"]),
        iat=iat,
        flags=zeros.astype(PACKET_DTYPES["flags"]),
        window=zeros.astype(PACKET_DTYPES["window"]),
        meta=pd.DataFrame({"label": np.asarray(labels, dtype=object)}),
    )
