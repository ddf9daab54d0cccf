"""Packet tokens shared by the autoregressive families (transformer and SSM).

One autoregressive step generates one packet with a *factorised* output head, so a flow of ``N`` packets is
``N`` steps after the class token (no interleaving, half the sequence of a two-tokens-per-packet scheme):

* **packet token** ``p = direction * S + size_bin`` (``2 S`` values) or ``EOS = 2 S`` — "the flow ends here".
  Flows shorter than ``N`` emit EOS after their last packet, so flow length is learnt, not padding.
* **iat token** ``q`` in ``0 .. Q-1``, predicted *after* the packet token, from the hidden state plus the
  embedding of the chosen packet token (the model's iat head is conditioned on it).

Payload-size bins (fitted on the training packets, both directions together):

1. the most frequent exact sizes (each at least ``exact_min_share`` of packets, at most ``max_exact``
   of them) get a bin of their own, so 0, 1448, 1460, ... decode exactly;
2. the remaining sizes are cut into quantile bins (at most ``n_size_bins`` of them); such a bin decodes to an
   integer drawn uniformly from the sizes seen in it (``[lo, hi]``), so decoded payloads stay inside the
   training range.

Inter-arrival-time bins: bin 0 holds ``iat < 1 µs`` (decodes to exactly 0); bins ``1 .. Q-1`` are log-spaced
between 1 µs and the largest training iat, decoded by drawing uniformly in log space inside the bin. The
first packet of a flow always has ``iat = 0`` by the schema; it is encoded as bin 0 and its iat is not learnt.

The fitted state is a few small arrays; :meth:`PacketTokenizer.to_dict` / :meth:`from_dict` round-trip
it through JSON (floats survive JSON exactly), so a saved generator decodes identically after loading.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ntg.data.schema import FlowTable
from ntg.errors import NtgError
from ntg.models.bin_values import BinValues

IAT_FLOOR = 1e-6  # seconds: below this an iat is "zero" (the schema's resolution is 1 µs)


def frequent_values(values: np.ndarray, min_share: float = 0.005, limit: int = 32) -> list[int]:
    """The values that each make up at least ``min_share`` of ``values`` (the ``limit`` most frequent), sorted."""
    if values.size == 0:
        return []
    uniques, counts = np.unique(values, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    keep = order[counts[order] >= min_share * values.size][:limit]
    return sorted(int(v) for v in uniques[keep])


@dataclass
class PacketTokenizer:
    """Fitted packet/iat vocabularies; encode FlowTables to token ids and decode sampled ids back."""

    size_lo: np.ndarray  # (S,) int: smallest payload of each size bin
    size_hi: np.ndarray  # (S,) int: largest payload of each size bin (== lo for exact bins)
    iat_edges: np.ndarray  # (Q,) float: log10 edges; bin q>=1 covers [edges[q-1], edges[q]]
    values: BinValues | None = None  # class-conditional values inside bins (None: uniform draws in the bin)

    # ------------------------------------------------------------------ vocabulary sizes
    @property
    def n_size(self) -> int:
        return len(self.size_lo)

    @property
    def n_packet_tokens(self) -> int:
        """Packet-token classes including EOS (``2 S + 1``)."""
        return 2 * self.n_size + 1

    @property
    def eos(self) -> int:
        return 2 * self.n_size

    @property
    def n_iat_tokens(self) -> int:
        return len(self.iat_edges)

    # ------------------------------------------------------------------ fitting
    @classmethod
    def fit(
        cls,
        flows: FlowTable,
        n_packets: int,
        n_size_bins: int = 48,
        n_iat_bins: int = 48,
        max_exact: int = 32,
        exact_min_share: float = 0.005,
        class_ids: np.ndarray | None = None,
    ) -> PacketTokenizer:
        """Fit bins on the first ``n_packets`` packets of ``flows``; with ``class_ids`` (one per flow) also the
        class-conditional values inside the bins (:class:`~ntg.models.bin_values.BinValues`)."""
        if len(flows) == 0:
            raise NtgError("cannot fit packet tokens on an empty training table; check the dataset split")
        mask = flows.mask[:, :n_packets]
        payload = flows.payload[:, :n_packets][mask].astype(np.int64)
        iat = flows.iat[:, :n_packets][mask]
        if payload.size == 0:
            raise NtgError("training flows hold no packets; check the prepared dataset")
        # 1. exact sizes for the frequent values
        exact = np.array(frequent_values(payload, exact_min_share, max_exact), dtype=np.int64)
        # 2. quantile bins over the rest
        rest = payload[~np.isin(payload, exact)]
        lo: list[int] = exact.tolist()
        hi: list[int] = exact.tolist()
        if rest.size:
            cuts = np.quantile(rest, np.linspace(0, 1, n_size_bins + 1), method="lower")
            qs = np.unique(cuts.astype(np.int64))
            edges = np.searchsorted(qs, rest, side="right") - 1
            edges = np.clip(edges, 0, max(len(qs) - 2, 0))
            for b in np.unique(edges):
                inside = rest[edges == b]
                lo.append(int(inside.min()))
                hi.append(int(inside.max()))
        order = np.argsort(np.array(lo), kind="stable")
        size_lo = np.array(lo, np.int64)[order]
        size_hi = np.array(hi, np.int64)[order]
        # iat: bin 0 is zero, then log-spaced bins up to the largest iat seen
        top = max(float(iat.max()), IAT_FLOOR * 10)
        iat_edges = np.concatenate([[np.log10(IAT_FLOOR)], np.linspace(np.log10(IAT_FLOOR), np.log10(top),
                                                                        n_iat_bins)[1:]])
        tokenizer = cls(size_lo=size_lo, size_hi=size_hi, iat_edges=iat_edges.astype(np.float64))
        if class_ids is not None:
            rows = np.nonzero(mask)[0]
            direction = flows.direction[:, :n_packets][mask]
            tokenizer.values = BinValues.fit(
                np.asarray(class_ids)[rows], direction, tokenizer.size_bin(payload), payload,
                tokenizer.iat_bin(iat), iat, tokenizer.n_size, tokenizer.n_iat_tokens)
        return tokenizer

    # ------------------------------------------------------------------ encoding
    def size_bin(self, payload: np.ndarray) -> np.ndarray:
        """Bin of each payload: its exact bin when there is one, else the last range bin starting at or below
        it (the first range bin for smaller values; the nearest exact bin when there are no range bins)."""
        payload = np.asarray(payload, np.int64)
        exact = self.size_lo == self.size_hi
        exact_ids, range_ids = np.flatnonzero(exact), np.flatnonzero(~exact)
        if len(range_ids):
            pos = np.searchsorted(self.size_lo[range_ids], payload, side="right") - 1
            out = range_ids[np.clip(pos, 0, len(range_ids) - 1)]
        else:
            cut = (self.size_lo[1:] + self.size_lo[:-1]) / 2
            out = np.searchsorted(cut, payload, side="left")
        if len(exact_ids):
            pos = np.clip(np.searchsorted(self.size_lo[exact_ids], payload), 0, len(exact_ids) - 1)
            hit = self.size_lo[exact_ids[pos]] == payload
            out = np.where(hit, exact_ids[pos], out)
        return out

    def iat_bin(self, iat: np.ndarray) -> np.ndarray:
        iat = np.asarray(iat, np.float64)
        logv = np.log10(np.maximum(iat, IAT_FLOOR))
        b = np.searchsorted(self.iat_edges[1:], logv, side="left") + 1
        b = np.clip(b, 1, self.n_iat_tokens - 1)
        return np.where(iat < IAT_FLOOR, 0, b)

    def encode(self, flows: FlowTable, n_packets: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(packet, iat, length)`` ids: ``packet`` (n, N), EOS from right after each flow's last packet;
        ``iat`` (n, N) with 0 at the first packet and past the end; ``length`` (n,) in ``1..N``."""
        flows = flows.pad_to(max(n_packets, flows.max_packets))
        length = np.minimum(flows.length, n_packets)
        if np.any(length < 1):
            raise NtgError("a training flow has no packets; re-prepare the dataset")
        mask = np.arange(n_packets)[None, :] < length[:, None]
        size = self.size_bin(flows.payload[:, :n_packets])
        direction = flows.direction[:, :n_packets].astype(np.int64)
        packet = np.where(mask, direction * self.n_size + size, self.eos)
        iat = np.where(mask, self.iat_bin(flows.iat[:, :n_packets]), 0)
        iat[:, 0] = 0
        return packet.astype(np.int64), iat.astype(np.int64), length.astype(np.int64)

    # ------------------------------------------------------------------ decoding (torch, on any device)
    def decode(
        self, packet: torch.Tensor, iat: torch.Tensor, n_packets: int, generator: torch.Generator,
        class_ids: np.ndarray | None = None,
    ) -> FlowTable:
        """FlowTable from sampled ids (``packet`` (B, N) may contain EOS; everything after the first EOS is
        dropped; a flow whose first token is EOS cannot happen since samplers mask EOS at step 0). With
        ``class_ids`` (B,) and fitted :attr:`values`, sizes and times are drawn from the class's own values in
        each bin; otherwise uniformly inside the bin."""
        device = packet.device
        b = packet.shape[0]
        is_eos = packet == self.eos
        length = torch.where(is_eos.any(1), is_eos.int().argmax(1), torch.full_like(is_eos[:, 0], n_packets,
                                                                                      dtype=torch.long))
        length = length.clamp(min=1)
        mask = torch.arange(n_packets, device=device)[None, :] < length[:, None]
        tok = packet.clamp(max=self.eos - 1)
        direction = tok // self.n_size
        size = tok % self.n_size
        lo = torch.as_tensor(self.size_lo, device=device)[size]
        hi = torch.as_tensor(self.size_hi, device=device)[size]
        u = torch.rand(packet.shape, generator=generator, device=device, dtype=torch.float64)
        payload = lo + torch.floor(u * (hi - lo + 1).double()).long().clamp(max=(hi - lo))
        edges = torch.as_tensor(self.iat_edges, device=device)
        q = iat.clamp(min=1)
        v = torch.rand(packet.shape, generator=generator, device=device, dtype=torch.float64)
        v = v.clamp(1e-6, 1 - 1e-6)
        logv = edges[q - 1] + v * (edges[q] - edges[q - 1])  # strictly inside the bin, uniform in log space
        iat_s = torch.where(iat == 0, torch.zeros_like(logv), 10.0**logv)
        iat_s[:, 0] = 0.0
        zeros = torch.zeros_like(payload)
        cpu = {
            "payload": torch.where(mask, payload, zeros).cpu().numpy(),
            "direction": torch.where(mask, direction, zeros).cpu().numpy(),
            "iat": torch.where(mask, iat_s, torch.zeros_like(iat_s)).cpu().numpy(),
        }
        if class_ids is not None and self.values is not None:
            seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=device))
            self._decode_values(cpu, mask.cpu().numpy(), size.cpu().numpy(), iat.cpu().numpy(), class_ids,
                                np.random.default_rng(seed))
        shape = (b, n_packets)
        return FlowTable(
            n_packets=length.cpu().numpy(),
            payload=cpu["payload"],
            direction=cpu["direction"],
            iat=cpu["iat"],
            flags=np.zeros(shape, np.int16),
            window=np.zeros(shape, np.int32),
        )

    def _decode_values(self, cpu: dict[str, np.ndarray], mask: np.ndarray, size: np.ndarray, iat: np.ndarray,
                       class_ids: np.ndarray, rng: np.random.Generator) -> None:
        """Replace the uniform in-bin draws in ``cpu`` by the class's empirical values where it has some."""
        assert self.values is not None
        rows, cols = np.nonzero(mask)
        cls = np.asarray(class_ids, np.int64)[rows]
        payload, found = self.values.payload_values(cls, cpu["direction"][rows, cols], size[rows, cols], rng)
        cpu["payload"][rows[found], cols[found]] = payload[found]
        timed = (iat[rows, cols] > 0) & (cols > 0)
        rows, cols, cls = rows[timed], cols[timed], cls[timed]
        seconds, found = self.values.iat_values(cls, iat[rows, cols], rng)
        cpu["iat"][rows[found], cols[found]] = seconds[found]

    def redraw_in_bins(self, flows: FlowTable, class_ids: np.ndarray, rng: np.random.Generator) -> None:
        """Replace, in place, each packet's payload and iat by a draw from the class's values in the bins they
        fall in (continuous generators: their values keep their bins and take the class's typical values)."""
        if self.values is None:
            return
        width = flows.payload.shape[1]
        mask = flows.mask
        arrays = {"payload": flows.payload, "direction": flows.direction, "iat": flows.iat}
        size = self.size_bin(flows.payload)
        iat = np.where(mask, self.iat_bin(flows.iat), 0)
        iat[:, 0] = 0
        self._decode_values(arrays, mask, size, iat[:, :width], class_ids, rng)

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        state = {
            "size_lo": self.size_lo.tolist(),
            "size_hi": self.size_hi.tolist(),
            "iat_edges": self.iat_edges.tolist(),
        }
        if self.values is not None:
            state["values"] = self.values.to_dict()
        return state

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> PacketTokenizer:
        values = state.get("values")  # absent in generators saved before class-conditional decoding
        return cls(
            size_lo=np.asarray(state["size_lo"], np.int64),
            size_hi=np.asarray(state["size_hi"], np.int64),
            iat_edges=np.asarray(state["iat_edges"], np.float64),
            values=BinValues.from_dict(values) if values is not None else None,
        )
