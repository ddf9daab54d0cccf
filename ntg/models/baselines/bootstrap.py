"""``bootstrap``: per-class resampling of real training flows (a copying baseline; evaluation flags it)."""

from __future__ import annotations

import numpy as np

from ntg.data.schema import FlowTable
from ntg.models.base import register
from ntg.models.baselines.common import TableGenerator
from ntg.models.flow_matrix import make_flows


@register("bootstrap")
class BootstrapGenerator(TableGenerator):
    """Draws each flow uniformly, with replacement, among the training flows of the requested class.

    The copies keep the first ``n_packets`` packets (payload, direction, iat); like every generator's
    output their ``n_packets`` is the stored length and flags/window are 0.
    """

    def fit(self, train: FlowTable, val: FlowTable | None = None) -> BootstrapGenerator:
        train, class_id = self._start_fit(train)
        order = np.argsort(class_id, kind="stable")
        self.tables_ = {
            "class_offsets": np.searchsorted(class_id[order], np.arange(len(self.classes_) + 1)).astype(
                np.int64
            ),
            "length": train.length[order].astype(np.int64),
            "payload": train.payload[order],
            "direction": train.direction[order],
            "iat": train.iat[order],
        }
        return self

    def _sample(self, class_ids: np.ndarray, rng_seed: int) -> FlowTable:
        t = self.tables_
        rng = np.random.default_rng(rng_seed)
        start, end = t["class_offsets"][class_ids], t["class_offsets"][class_ids + 1]
        rows = start + rng.integers(0, end - start) if len(class_ids) else np.zeros(0, np.int64)
        return make_flows(t["length"][rows], t["payload"][rows], t["direction"][rows], t["iat"][rows])
