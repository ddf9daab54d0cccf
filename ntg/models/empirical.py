"""What the table baselines, the header model and the flow-matrix families share: grouped empirical
distributions as sparse sorted arrays (fit, look up, sample) and the building of valid generated flows."""

from __future__ import annotations

import numpy as np

from ntg.data.schema import PACKET_DTYPES, FlowTable
from ntg.errors import NtgError


def group_counts(group: np.ndarray, values: np.ndarray) -> dict[str, np.ndarray]:
    """Empirical distribution of ``values`` within each integer ``group`` key, as sparse sorted tables.

    Returns ``keys`` (G,) sorted unique groups, ``offsets`` (G+1,), ``values`` (K,) unique values per group
    (sorted) and ``counts`` (K,): group ``keys[g]`` owns entries ``offsets[g]:offsets[g+1]``.
    """
    group = np.asarray(group, dtype=np.int64)
    values = np.asarray(values)
    order = np.lexsort((values, group))
    g, v = group[order], values[order]
    new = np.ones(len(g), dtype=bool)
    new[1:] = (g[1:] != g[:-1]) | (v[1:] != v[:-1])
    starts = np.flatnonzero(new)
    counts = np.diff(np.append(starts, len(g)))
    entry_group = g[starts]
    keys, first = np.unique(entry_group, return_index=True)
    offsets = np.append(first, len(entry_group)).astype(np.int64)
    return {"keys": keys, "offsets": offsets, "values": v[starts], "counts": counts.astype(np.int64)}


def find_groups(keys: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Index of each ``query`` key in sorted ``keys``, or -1 where absent."""
    query = np.asarray(query, dtype=np.int64)
    if len(keys) == 0:
        return np.full(len(query), -1, dtype=np.int64)
    pos = np.clip(np.searchsorted(keys, query), 0, len(keys) - 1)
    return np.where(keys[pos] == query, pos, -1)


def sample_groups(
    table: dict[str, np.ndarray], group_index: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """One draw per row from the empirical distribution of group ``group_index`` (indices into ``keys``)."""
    group_index = np.asarray(group_index, dtype=np.int64)
    if np.any(group_index < 0):
        raise ValueError("cannot sample from a group that was never observed")
    cum = np.cumsum(table["counts"])
    start, end = table["offsets"][group_index], table["offsets"][group_index + 1]
    before = np.where(start > 0, cum[np.maximum(start - 1, 0)], 0)
    total = cum[end - 1] - before
    target = before + rng.random(len(group_index)) * total
    pick = np.searchsorted(cum, target, side="right")
    return table["values"][np.clip(pick, start, end - 1)]


def prefixed(prefix: str, table: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {f"{prefix}.{k}": v for k, v in table.items()}


def unprefixed(prefix: str, tables: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k[len(prefix) + 1 :]: v for k, v in tables.items() if k.startswith(prefix + ".")}


def make_flows(length: np.ndarray, payload: np.ndarray, direction: np.ndarray, iat: np.ndarray) -> FlowTable:
    """A valid generated FlowTable from ``(n, N)`` arrays: values past ``length`` are zeroed, first iat is 0.

    ``n_packets`` of a generated flow is its length (generators model only the first ``N`` packets).
    """
    length = np.clip(np.asarray(length, dtype=np.int64), 1, payload.shape[1])
    mask = np.arange(payload.shape[1])[None, :] < length[:, None]
    iat = np.where(mask, np.maximum(np.nan_to_num(iat, nan=0.0, posinf=0.0), 0.0), 0.0)
    iat[:, 0] = 0.0
    return FlowTable(
        n_packets=length,
        payload=np.where(mask, np.maximum(payload, 0), 0).astype(PACKET_DTYPES["payload"]),
        direction=np.where(mask, direction, 0).astype(PACKET_DTYPES["direction"]),
        iat=iat,
        flags=np.zeros(payload.shape, PACKET_DTYPES["flags"]),
        window=np.zeros(payload.shape, PACKET_DTYPES["window"]),
    )


def training_packets(train: FlowTable, n_packets: int, who: str) -> FlowTable:
    """The first ``n_packets`` packets of ``train`` (zero-padded if it stores fewer); NtgError if empty."""
    if len(train) == 0:
        raise NtgError(f"{who}: the training table is empty; give it at least one flow per class")
    return train.pad_to(n_packets)
