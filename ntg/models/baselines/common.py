"""What the table-based baselines share: array-table persistence and grouped empirical distributions."""

from __future__ import annotations

import numpy as np

from ntg.data.schema import DEFAULT_N, FlowTable
from ntg.models.base import Generator
from ntg.models.empirical import find_groups, group_counts, prefixed, sample_groups, training_packets, unprefixed

__all__ = ["TableGenerator", "find_groups", "group_counts", "prefixed", "sample_groups", "unprefixed"]


class TableGenerator(Generator):
    """A generator whose whole learnt state is ``self.tables_``, a dict of numpy arrays.

    :meth:`num_parameters` counts their entries; ``save_pretrained`` writes them to ``model.safetensors``.
    """

    def __init__(self, n_packets: int = DEFAULT_N, seed: int = 0) -> None:
        super().__init__(n_packets, seed)
        self.tables_: dict[str, np.ndarray] = {}

    def _start_fit(self, train: FlowTable) -> tuple[FlowTable, np.ndarray]:
        """The first ``n_packets`` packets of ``train`` and each row's class index (learns the classes)."""
        train = training_packets(train, self.n_packets, self.family)
        self._learn_classes(train)
        return train, self.class_ids(train.labels)

    def state_arrays(self) -> dict[str, np.ndarray]:
        return dict(self.tables_)

    def load_state_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.tables_ = {k: np.asarray(v) for k, v in arrays.items()}
