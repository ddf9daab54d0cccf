"""What the table-based baselines share: array-table persistence and grouped empirical distributions."""

from __future__ import annotations

import numpy as np

from ntg.data.schema import DEFAULT_N, FlowTable
from ntg.errors import NtgError
from ntg.models.base import Generator
from ntg.models.flow_matrix import training_packets


class TableGenerator(Generator):
    """A generator whose whole learnt state is ``self.tables_``, a dict of numpy arrays.

    :meth:`num_parameters` counts their entries; ``save_pretrained`` writes them to ``model.safetensors``.
    """

    def __init__(self, n_packets: int = DEFAULT_N, seed: int = 0) -> None:
        super().__init__(n_packets, seed)
        if not 1 <= n_packets <= 32:
            raise NtgError(f"{self.family}: n_packets={n_packets} must be in 1..32")
        self.tables_: dict[str, np.ndarray] = {}

    def _start_fit(self, train: FlowTable) -> tuple[FlowTable, np.ndarray]:
        """The first ``n_packets`` packets of ``train`` and each row's class index (learns the classes)."""
        train = training_packets(train, self.n_packets, self.family)
        self._learn_classes(train)
        assert self.classes_ is not None
        lookup = {c: i for i, c in enumerate(self.classes_)}
        class_id = np.array([lookup[x] for x in train.labels.astype(str)], dtype=np.int64)
        return train, class_id

    def state_arrays(self) -> dict[str, np.ndarray]:
        return dict(self.tables_)

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.tables_ = {k: np.asarray(v) for k, v in arrays.items()}


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
