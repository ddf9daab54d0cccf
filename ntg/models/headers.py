"""Transport headers for generated flows: the protocol of each flow, TCP flags and receive window per packet.

The generator families model what the classifiers read (payload size, direction, inter-arrival time); the
header model completes their flows so that every generated flow carries the dataset schema's ``flags`` and
``window`` columns and a ``proto`` in its metadata, with values as the training data shows them:

1. a flow's protocol is drawn from its empirical distribution given the class, the flow length and the size
   bin and direction of the first packet;
2. each packet's ``(flags, window)`` pair is drawn from its empirical distribution given the protocol, class,
   position, direction and payload-size bin, so a TCP flow opens with SYN / SYN-ACK where its class does,
   data packets carry PSH|ACK, UDP flows keep flags and window at 0.

Contexts never seen in training back off to coarser ones (dropping position, then class, ...), down to the
protocol alone. Packets are drawn independently given their context: the model copies no training flow, and
it does not model dependencies between packets beyond what the context holds. Its state is a few sparse count
tables, saved beside the family's weights as ``headers.*`` arrays in ``model.safetensors``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ntg.data.schema import FlowTable
from ntg.models.empirical import find_groups, group_counts, prefixed, sample_groups, unprefixed

SIZE_EDGES = np.array([0, 1, 100, 300, 1000, 1400])  # payload-size bins: 0, 1-99, 100-299, 300-999, ...
PAIR_SHIFT = 32  # (flags, window) pairs are stored as one int64: flags << 32 | window
# backoff levels, finest first: the context fields each level keys on
FLOW_LEVELS = (("cls", "length", "size0", "dir0"), ("cls", "length"), ("cls",), ())
PACKET_LEVELS = (("proto", "cls", "pos", "dir", "size"), ("proto", "cls", "dir", "size"), ("proto", "dir", "size"),
                 ("proto",))
RNG_OFFSET = 104_729  # header draws use their own random stream, so the family's flows do not change


def size_bin(payload: np.ndarray) -> np.ndarray:
    return np.searchsorted(SIZE_EDGES, payload, side="right") - 1


def _encode(fields: dict[str, np.ndarray], names: tuple[str, ...], radix: dict[str, int]) -> np.ndarray:
    """One int64 key per row from the ``names`` fields (mixed radix)."""
    n = len(next(iter(fields.values())))
    key = np.zeros(n, dtype=np.int64)
    for name in names:
        key = key * radix[name] + fields[name].astype(np.int64)
    return key


@dataclass
class HeaderModel:
    """Fitted protocol and (flags, window) tables; :meth:`complete` fills them into generated flows."""

    protos: np.ndarray  # (K,) protocol numbers seen in training (e.g. 6, 17); index = proto id
    n_classes: int
    n_packets: int
    flow_tables: list[dict[str, np.ndarray]] = field(default_factory=list)  # one per FLOW_LEVELS
    packet_tables: list[dict[str, np.ndarray]] = field(default_factory=list)  # one per PACKET_LEVELS

    # ------------------------------------------------------------------ keys
    def _radix(self) -> dict[str, int]:
        return {"cls": self.n_classes, "length": self.n_packets + 1, "size0": len(SIZE_EDGES), "dir0": 2,
                "proto": len(self.protos), "pos": self.n_packets, "dir": 2, "size": len(SIZE_EDGES)}

    def _flow_fields(self, flows: FlowTable, class_ids: np.ndarray) -> dict[str, np.ndarray]:
        return {"cls": class_ids, "length": np.minimum(flows.length, self.n_packets),
                "size0": size_bin(flows.payload[:, 0]), "dir0": flows.direction[:, 0]}

    def _packet_fields(self, flows: FlowTable, class_ids: np.ndarray, proto_ids: np.ndarray,
                       mask: np.ndarray) -> dict[str, np.ndarray]:
        rows, pos = np.nonzero(mask)
        return {"proto": proto_ids[rows], "cls": class_ids[rows], "pos": pos,
                "dir": flows.direction[rows, pos], "size": size_bin(flows.payload[rows, pos])}

    # ------------------------------------------------------------------ fitting
    @classmethod
    def fit(cls, train: FlowTable, class_ids: np.ndarray, n_classes: int, n_packets: int) -> HeaderModel:
        """Count tables from the first ``n_packets`` packets of ``train`` (``class_ids``: each row's class)."""
        train = train.first(n_packets) if train.max_packets > n_packets else train.pad_to(n_packets)
        proto = np.asarray(train.meta["proto"], dtype=np.int64) if "proto" in train.meta else np.zeros(len(train),
                                                                                                         np.int64)
        protos, proto_ids = np.unique(proto, return_inverse=True)
        model = cls(protos=protos.astype(np.int64), n_classes=n_classes, n_packets=n_packets)
        radix = model._radix()
        flow = model._flow_fields(train, class_ids)
        model.flow_tables = [group_counts(_encode(flow, names, radix), proto_ids) for names in FLOW_LEVELS]
        mask = train.mask
        packet = model._packet_fields(train, class_ids, proto_ids, mask)
        pairs = (train.flags[mask].astype(np.int64) << PAIR_SHIFT) | train.window[mask].astype(np.int64)
        model.packet_tables = [group_counts(_encode(packet, names, radix), pairs) for names in PACKET_LEVELS]
        return model

    # ------------------------------------------------------------------ sampling
    @staticmethod
    def _draw(tables: list[dict[str, np.ndarray]], keys: list[np.ndarray], rng: np.random.Generator,
              fallback: int) -> np.ndarray:
        """One value per row from the finest level whose context was seen (``fallback`` if none was)."""
        out = np.full(len(keys[0]), fallback, dtype=np.int64)
        todo = np.ones(len(out), dtype=bool)
        for table, key in zip(tables, keys, strict=True):
            found = find_groups(table["keys"], key)
            hit = todo & (found >= 0)
            if hit.any():
                out[hit] = sample_groups(table, found[hit], rng)
                todo &= ~hit
            if not todo.any():
                break
        return out

    def complete(self, flows: FlowTable, class_ids: np.ndarray, seed: int) -> FlowTable:
        """Fill ``flags`` and ``window`` (and ``meta["proto"]``) of generated ``flows`` in place; returns them."""
        if len(flows) == 0:
            return flows
        rng = np.random.default_rng(int(seed) + RNG_OFFSET)
        radix = self._radix()
        flow = self._flow_fields(flows, class_ids)
        proto_ids = self._draw(self.flow_tables, [_encode(flow, names, radix) for names in FLOW_LEVELS], rng, 0)
        mask = flows.mask & (np.arange(flows.max_packets)[None, :] < self.n_packets)
        packet = self._packet_fields(flows, class_ids, proto_ids, mask)
        pairs = self._draw(self.packet_tables, [_encode(packet, names, radix) for names in PACKET_LEVELS], rng, 0)
        flags = np.zeros(flows.payload.shape, flows.flags.dtype)
        window = np.zeros(flows.payload.shape, flows.window.dtype)
        flags[mask] = pairs >> PAIR_SHIFT
        window[mask] = pairs & ((1 << PAIR_SHIFT) - 1)
        flows.flags, flows.window = flags, window
        flows.meta["proto"] = self.protos[proto_ids]
        return flows

    # ------------------------------------------------------------------ persistence
    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = {"protos": self.protos, "shape": np.array([self.n_classes, self.n_packets], dtype=np.int64)}
        for i, table in enumerate(self.flow_tables):
            arrays.update(prefixed(f"flow{i}", table))
        for i, table in enumerate(self.packet_tables):
            arrays.update(prefixed(f"packet{i}", table))
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> HeaderModel:
        n_classes, n_packets = (int(v) for v in arrays["shape"])
        return cls(
            protos=np.asarray(arrays["protos"], dtype=np.int64), n_classes=n_classes, n_packets=n_packets,
            flow_tables=[unprefixed(f"flow{i}", arrays) for i in range(len(FLOW_LEVELS))],
            packet_tables=[unprefixed(f"packet{i}", arrays) for i in range(len(PACKET_LEVELS))],
        )
