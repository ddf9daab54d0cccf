"""``marginals``: per-class, per-position independent empirical marginals of every packet field."""

from __future__ import annotations

import numpy as np

from ntg.data.schema import FlowTable
from ntg.models.base import register
from ntg.models.baselines.common import (
    TableGenerator,
    find_groups,
    group_counts,
    prefixed,
    sample_groups,
    unprefixed,
)
from ntg.models.empirical import make_flows

FIELDS = ("length", "direction", "payload", "iat")


@register("marginals")
class MarginalsGenerator(TableGenerator):
    """Flow length from the class's length distribution; then, at each position, direction, payload length
    and iat drawn independently from that class's empirical values at that position (among flows that
    reach it). Keeps every one-dimensional marginal, loses every dependence between fields and positions.
    """

    def _fit(self, train: FlowTable, val: FlowTable | None) -> None:
        train, class_id = self._start_fit(train)
        n_pos = self.n_packets
        mask = train.mask
        rows, cols = np.nonzero(mask)
        cell = class_id[rows] * n_pos + cols  # group key: (class, position)
        self.tables_ = {
            **prefixed("length", group_counts(class_id, train.length)),
            **prefixed("direction", group_counts(cell, train.direction[mask])),
            **prefixed("payload", group_counts(cell, train.payload[mask])),
            **prefixed("iat", group_counts(cell, train.iat[mask])),
        }

    def _sample(self, class_ids: np.ndarray, rng_seed: int) -> FlowTable:
        rng = np.random.default_rng(rng_seed)
        n, n_pos = len(class_ids), self.n_packets
        tables = {name: unprefixed(name, self.tables_) for name in FIELDS}
        length = sample_groups(tables["length"], find_groups(tables["length"]["keys"], class_ids), rng)
        out = {name: np.zeros((n, n_pos), dtype=np.float64) for name in FIELDS[1:]}
        rows, cols = np.nonzero(np.arange(n_pos)[None, :] < length[:, None])
        cell = class_ids[rows] * n_pos + cols
        for name in FIELDS[1:]:
            out[name][rows, cols] = sample_groups(tables[name], find_groups(tables[name]["keys"], cell), rng)
        return make_flows(length, np.rint(out["payload"]), out["direction"], out["iat"])
