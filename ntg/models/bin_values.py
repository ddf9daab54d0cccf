"""What a token bin decodes to: the class's own empirical values inside the bin, as the Markov baseline does.

A packet token fixes a direction and a payload-size bin, an iat token a log-spaced time bin. Drawing the value
uniformly inside the bin (the tokenizer's fallback) invents sizes the class never sends — a DNS class whose
queries are 29–45 bytes gets 31, 37, 44 bytes evenly — and spreads times across the bin. :class:`BinValues`
keeps, per class, direction and bin, the payload sizes seen in training with their counts, and per class and iat
bin the seen log10 inter-arrival times (rounded to ``IAT_DECIMALS``), and decodes a token to a draw from them:

* payload: the class's sizes for (direction, bin); else every class's sizes for (direction, bin); else the
  tokenizer's uniform draw in ``[lo, hi]``;
* iat: the class's times for the bin, else every class's times for the bin, else the uniform draw in log space;
  a drawn time is jittered uniformly inside its rounding cell (±0.115 %), so it is not a stored value; at the 1 ms
  resolution of the privacy axis's copy test a time under about 0.4 s still rounds to its training millisecond.

Why it matters: with this decoding the network only has to learn *which bin* comes next, so the tokenizer can use
coarse bins on small datasets (fewer classes per softmax, more training examples per class) without losing
the fine structure of sizes and times; see ``benchmarks/quality_findings.md`` for the measurements. The tables
are small (a few thousand entries) and travel with the tokenizer in the generator's JSON metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ntg.models.empirical import find_groups, group_counts, sample_groups

IAT_DECIMALS = 3  # log10 seconds: 0.23 % relative precision
TABLE_KEYS = ("keys", "offsets", "values", "counts")


def _payload_key(class_ids: np.ndarray, direction: np.ndarray, size_bin: np.ndarray, n_size: int) -> np.ndarray:
    """Group key of (class, direction, size bin); class -1 is the pooled table of every class."""
    return ((class_ids.astype(np.int64) + 1) * 2 + direction.astype(np.int64)) * n_size + size_bin


def _iat_key(class_ids: np.ndarray, iat_bin: np.ndarray, n_iat: int) -> np.ndarray:
    return (class_ids.astype(np.int64) + 1) * n_iat + iat_bin


def _table_to_dict(table: dict[str, np.ndarray]) -> dict[str, list]:
    return {k: table[k].tolist() for k in TABLE_KEYS}


def _table_from_dict(state: dict[str, list], dtype: type) -> dict[str, np.ndarray]:
    return {k: np.asarray(state[k], dtype if k == "values" else np.int64) for k in TABLE_KEYS}


@dataclass
class BinValues:
    """Empirical payload sizes per (class, direction, size bin) and log10 iats per (class, iat bin)."""

    n_size: int
    n_iat: int
    payload: dict[str, np.ndarray]
    iat: dict[str, np.ndarray]

    @classmethod
    def fit(cls, class_ids: np.ndarray, direction: np.ndarray, size_bin: np.ndarray, payload: np.ndarray,
            iat_bin: np.ndarray, iat: np.ndarray, n_size: int, n_iat: int) -> BinValues:
        """Tables from one entry per training packet (flattened arrays of equal length). Packets with iat bin 0
        (zero gaps and every flow's first packet) add nothing to the iat table: bin 0 decodes to 0."""
        pooled = np.full_like(class_ids, -1)
        pay_keys = np.concatenate([_payload_key(class_ids, direction, size_bin, n_size),
                                   _payload_key(pooled, direction, size_bin, n_size)])
        timed = iat_bin > 0
        log_iat = np.round(np.log10(np.maximum(iat[timed], 1e-12)), IAT_DECIMALS)
        iat_keys = np.concatenate([_iat_key(class_ids[timed], iat_bin[timed], n_iat),
                                   _iat_key(pooled[timed], iat_bin[timed], n_iat)])
        return cls(n_size=n_size, n_iat=n_iat,
                   payload=group_counts(pay_keys, np.concatenate([payload, payload]).astype(np.int64)),
                   iat=group_counts(iat_keys, np.concatenate([log_iat, log_iat])))

    def _draw(self, table: dict[str, np.ndarray], own: np.ndarray, pooled: np.ndarray, rng: np.random.Generator
              ) -> tuple[np.ndarray, np.ndarray]:
        """Draws from the class's group, else the pooled group; ``found`` is False where neither exists."""
        group = find_groups(table["keys"], own)
        missing = group < 0
        group[missing] = find_groups(table["keys"], pooled[missing])
        found = group >= 0
        out = np.zeros(len(own), dtype=table["values"].dtype)
        out[found] = sample_groups(table, group[found], rng)
        return out, found

    def payload_values(self, class_ids: np.ndarray, direction: np.ndarray, size_bin: np.ndarray,
                       rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A payload size per entry and whether one was found (else the caller keeps its uniform draw)."""
        own = _payload_key(class_ids, direction, size_bin, self.n_size)
        pooled = _payload_key(np.full_like(class_ids, -1), direction, size_bin, self.n_size)
        return self._draw(self.payload, own, pooled, rng)

    def iat_values(self, class_ids: np.ndarray, iat_bin: np.ndarray, rng: np.random.Generator
                   ) -> tuple[np.ndarray, np.ndarray]:
        """An inter-arrival time in seconds per entry (jittered inside its rounding cell) and whether found."""
        own = _iat_key(class_ids, iat_bin, self.n_iat)
        pooled = _iat_key(np.full_like(class_ids, -1), iat_bin, self.n_iat)
        log_iat, found = self._draw(self.iat, own, pooled, rng)
        half_cell = 0.5 * 10.0 ** -IAT_DECIMALS
        return 10.0 ** (log_iat + rng.uniform(-half_cell, half_cell, len(log_iat))), found

    def class_support(self, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
        """Which packet tokens (``direction · n_size + size bin``) and iat bins each class used in training, as
        bool arrays ``(n_classes, 2 · n_size)`` and ``(n_classes, n_iat)``; iat bin 0 (a zero gap) always."""
        packet = np.zeros((n_classes, 2 * self.n_size), dtype=bool)
        keys = self.payload["keys"]
        own = keys[keys >= 2 * self.n_size]  # the pooled table's keys (class -1) lie below 2 · n_size
        packet[own // (2 * self.n_size) - 1, own % (2 * self.n_size)] = True
        iat = np.zeros((n_classes, self.n_iat), dtype=bool)
        iat[:, 0] = True
        own = self.iat["keys"][self.iat["keys"] >= self.n_iat]
        iat[own // self.n_iat - 1, own % self.n_iat] = True
        return packet, iat

    def to_dict(self) -> dict[str, Any]:
        return {"n_size": self.n_size, "n_iat": self.n_iat, "payload": _table_to_dict(self.payload),
                "iat": _table_to_dict(self.iat)}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> BinValues:
        return cls(n_size=int(state["n_size"]), n_iat=int(state["n_iat"]),
                   payload=_table_from_dict(state["payload"], np.int64),
                   iat=_table_from_dict(state["iat"], np.float64))
