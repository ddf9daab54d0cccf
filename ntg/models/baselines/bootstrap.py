"""``bootstrap``: per-class resampling of real training flows (a copying baseline; evaluation flags it)."""

from __future__ import annotations

import numpy as np

from ntg.data.schema import FlowTable
from ntg.models.base import register
from ntg.models.baselines.common import TableGenerator
from ntg.models.empirical import make_flows


@register("bootstrap")
class BootstrapGenerator(TableGenerator):
    """Draws each flow uniformly, with replacement, among the training flows of the requested class.

    The copies keep the first ``n_packets`` packets (payload, direction, iat, flags, window) and the protocol;
    like every generator's output their ``n_packets`` is the stored length.
    """

    generates_headers = True  # copies the real flags and window instead of drawing them

    def _fit(self, train: FlowTable, val: FlowTable | None) -> None:
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
            "flags": train.flags[order],
            "window": train.window[order],
            "proto": (np.asarray(train.meta["proto"], dtype=np.int64) if "proto" in train.meta
                      else np.zeros(len(train), np.int64))[order],
        }

    def _sample(self, class_ids: np.ndarray, rng_seed: int) -> FlowTable:
        t = self.tables_
        rng = np.random.default_rng(rng_seed)
        start, end = t["class_offsets"][class_ids], t["class_offsets"][class_ids + 1]
        rows = start + rng.integers(0, end - start) if len(class_ids) else np.zeros(0, np.int64)
        flows = make_flows(t["length"][rows], t["payload"][rows], t["direction"][rows], t["iat"][rows])
        if "flags" in t:  # saved before headers were copied: flags and window stay 0
            flows.flags = np.where(flows.mask, t["flags"][rows], 0).astype(flows.flags.dtype)
            flows.window = np.where(flows.mask, t["window"][rows], 0).astype(flows.window.dtype)
            flows.meta["proto"] = t["proto"][rows]
        return flows
