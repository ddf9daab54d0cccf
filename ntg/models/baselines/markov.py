"""``markov``: per-class Markov chain over packet tokens with an end state, backing off to lower orders.

A packet's token joins its direction, payload-length bin and inter-arrival bin (quantile bins of the
training packets); a flow is ``BOS … BOS, token_1, …, token_L, END`` (no END when it fills all ``N``
positions, since longer flows were cut there). The chain of order ``k`` counts next tokens per class and
per context of the last ``k`` tokens; a context never seen in that class backs off to order ``k−1``, down to
the class's token frequencies. A token decodes to a payload length and an iat drawn from the class's
empirical values inside its bins.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ntg.data.schema import DEFAULT_N, FlowTable
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
from ntg.models.settings import spec

_US = 1e6


def quantile_edges(values: np.ndarray, n_bins: int) -> np.ndarray:
    """Interior bin edges at the quantiles of ``values`` (duplicates merged)."""
    if len(values) == 0 or n_bins <= 1:
        return np.zeros(0, dtype=np.float64)
    return np.unique(np.quantile(values.astype(np.float64), np.linspace(0, 1, n_bins + 1)[1:-1]))


@register("markov")
class MarkovGenerator(TableGenerator):
    """Order-1 or order-2 per-class Markov chain of (direction × payload bin × iat bin) tokens."""

    SETTINGS: ClassVar[dict[str, Any]] = {
        "order": spec("tokens of context", choices=(1, 2)),
        "payload_bins": spec("quantile bins of payload sizes", 1),
        "iat_bins": spec("quantile bins of log inter-arrival times", 1),
    }

    def __init__(
        self,
        n_packets: int = DEFAULT_N,
        seed: int = 0,
        order: int = 2,
        payload_bins: int = 16,
        iat_bins: int = 8,
    ) -> None:
        super().__init__(n_packets, seed)
        self._init_settings(locals())

    # ------------------------------------------------------------------ tokens
    def _bins(self, payload: np.ndarray, iat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t = self.tables_
        pbin = np.searchsorted(t["payload_edges"], payload, side="right")
        ibin = np.searchsorted(t["iat_edges"], np.log1p(np.maximum(iat, 0.0) * _US), side="right")
        return pbin, ibin

    @property
    def _sizes(self) -> tuple[int, int, int]:
        """Payload bins, iat bins and tokens per direction × bins (END = n_tokens, BOS = n_tokens + 1)."""
        n_p, n_i = len(self.tables_["payload_edges"]) + 1, len(self.tables_["iat_edges"]) + 1
        return n_p, n_i, 2 * n_p * n_i

    def _context_key(self, class_id: np.ndarray, context: list[np.ndarray]) -> np.ndarray:
        vocab = self._sizes[2] + 2
        key = class_id.astype(np.int64)
        for token in context:
            key = key * vocab + token
        return key

    # ------------------------------------------------------------------ fit / sample
    def _fit(self, train: FlowTable, val: FlowTable | None) -> None:
        train, class_id = self._start_fit(train)
        mask = train.mask
        self.tables_ = {
            "payload_edges": quantile_edges(train.payload[mask], self.payload_bins),
            "iat_edges": quantile_edges(np.log1p(np.maximum(train.iat[mask], 0.0) * _US), self.iat_bins),
        }
        n_p, n_i, n_tokens = self._sizes
        end, bos = n_tokens, n_tokens + 1
        pbin, ibin = self._bins(train.payload, train.iat)
        tokens = (train.direction.astype(np.int64) * n_p + pbin) * n_i + ibin
        n, n_pos = tokens.shape
        length = train.length
        # sequence: BOS * order, tokens, then END (only for flows shorter than N)
        seq = np.full((n, self.order + n_pos + 1), -1, dtype=np.int64)
        seq[:, : self.order] = bos
        seq[:, self.order : self.order + n_pos] = np.where(mask, tokens, -1)
        seq[np.flatnonzero(length < n_pos), self.order + length[length < n_pos]] = end
        for k in range(self.order + 1):
            rows, cols = np.nonzero(seq[:, self.order :] >= 0)
            cols = cols + self.order
            context = [seq[rows, cols - j] for j in range(k, 0, -1)]
            key = self._context_key(class_id[rows], context)
            self.tables_.update(prefixed(f"next{k}", group_counts(key, seq[rows, cols])))
        rows, cols = np.nonzero(mask)
        self.tables_.update(
            prefixed("payload", group_counts(class_id[rows] * n_p + pbin[mask], train.payload[mask]))
        )
        self.tables_.update(prefixed("iat", group_counts(class_id[rows] * n_i + ibin[mask], train.iat[mask])))

    def _sample(self, class_ids: np.ndarray, rng_seed: int) -> FlowTable:
        rng = np.random.default_rng(rng_seed)
        n_p, n_i, n_tokens = self._sizes
        end, bos = n_tokens, n_tokens + 1
        n, n_pos = len(class_ids), self.n_packets
        nexts = [unprefixed(f"next{k}", self.tables_) for k in range(self.order + 1)]
        history = [np.full(n, bos, dtype=np.int64) for _ in range(self.order)]
        tokens = np.zeros((n, n_pos), dtype=np.int64)
        length = np.full(n, n_pos, dtype=np.int64)
        alive = np.ones(n, dtype=bool)
        for pos in range(n_pos):
            idx = np.flatnonzero(alive)
            if len(idx) == 0:
                break
            token = np.full(len(idx), -1, dtype=np.int64)
            for k in range(self.order, -1, -1):  # back off until the context was seen in the class
                todo = token < 0
                if not todo.any():
                    break
                context = [h[idx[todo]] for h in history[self.order - k :]]
                group = find_groups(nexts[k]["keys"], self._context_key(class_ids[idx[todo]], context))
                seen = group >= 0
                drawn = np.full(int(todo.sum()), -1, dtype=np.int64)
                drawn[seen] = sample_groups(nexts[k], group[seen], rng)
                token[todo] = drawn
            ended = token == end  # never at the first position: BOS contexts never lead to END
            length[idx[ended]] = pos
            alive[idx[ended]] = False
            tokens[idx[~ended], pos] = token[~ended]
            newest = np.full(n, end, dtype=np.int64)
            newest[idx] = token
            history = [*history[1:], newest]
        return self._decode(class_ids, tokens, np.maximum(length, 1), rng)

    def _decode(
        self, class_ids: np.ndarray, tokens: np.ndarray, length: np.ndarray, rng: np.random.Generator
    ):
        n_p, n_i, _ = self._sizes
        direction, rest = np.divmod(tokens, n_p * n_i)
        pbin, ibin = np.divmod(rest, n_i)
        rows, cols = np.nonzero(np.arange(tokens.shape[1])[None, :] < length[:, None])
        payload = np.zeros(tokens.shape, dtype=np.int64)
        iat = np.zeros(tokens.shape, dtype=np.float64)
        pay_t, iat_t = unprefixed("payload", self.tables_), unprefixed("iat", self.tables_)
        c = class_ids[rows]
        payload[rows, cols] = sample_groups(
            pay_t, find_groups(pay_t["keys"], c * n_p + pbin[rows, cols]), rng
        )
        iat[rows, cols] = sample_groups(iat_t, find_groups(iat_t["keys"], c * n_i + ibin[rows, cols]), rng)
        return make_flows(length, payload, direction, iat)
