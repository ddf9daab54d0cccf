"""The normalised ``N x F`` traffic matrix shared by the diffusion and Gaussian-mixture generators.

Per packet position the matrix holds four channels, all roughly in ``[-1, 1]``:

* ``direction``  -1 client→server, +1 server→client (0 past the flow's end),
* ``presence``   +1 where a packet exists, -1 past the end (decoding: the length is the first position
  whose presence is < 0, at least one packet),
* ``payload``    ``log1p(bytes)`` min-max scaled to ``[-1, 1]`` over the training packets (0 past the end),
* ``iat``        ``log1p(microseconds)`` min-max scaled to ``[-1, 1]`` (0 past the end).

:class:`FlowMatrixCodec` learns the scaling ranges from training flows, encodes flow tables into matrices
and decodes (possibly noisy) matrices back into valid flow tables. Traffic reuses a few payload sizes
(0 for bare ACKs, MSS-sized segments, fixed protocol messages): decoding snaps a payload to the nearest of the
training data's frequent sizes when it lies within ``snap_tolerance`` of it on the scaled axis, so that those
exact sizes come back exactly (as the autoregressive families' exact bins do).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ntg.data.schema import FlowTable
from ntg.models.empirical import make_flows
from ntg.models.tokenizer import frequent_values

CHANNELS = ("direction", "presence", "payload", "iat")
N_CHANNELS = len(CHANNELS)
_US = 1e6


@dataclass
class FlowMatrixCodec:
    """Scaling ranges learnt from training flows; ``encode`` / ``decode`` between tables and matrices."""

    n_packets: int
    log_payload_min: float
    log_payload_max: float
    log_iat_min: float
    log_iat_max: float
    payload_min: int
    payload_max: int
    frequent_payloads: list[int] = field(default_factory=list)  # sizes of >= 0.5 % of packets (at most 32)
    snap_tolerance: float = 0.1  # on the [-1, 1] payload axis

    @classmethod
    def fit(cls, flows: FlowTable, n_packets: int) -> FlowMatrixCodec:
        flows = flows.pad_to(n_packets)
        mask = flows.mask
        payload = flows.payload[mask].astype(np.float64)
        log_iat = np.log1p(np.maximum(flows.iat[mask], 0.0) * _US)
        log_payload = np.log1p(payload)
        return cls(
            n_packets=n_packets,
            log_payload_min=float(log_payload.min()),
            log_payload_max=float(log_payload.max()),
            log_iat_min=float(log_iat.min()),
            log_iat_max=float(log_iat.max()),
            payload_min=int(payload.min()),
            payload_max=int(payload.max()),
            frequent_payloads=frequent_values(payload.astype(np.int64)),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FlowMatrixCodec:
        return cls(**d)

    # ------------------------------------------------------------------ scaling
    @staticmethod
    def _scale(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
        return 2.0 * (x - lo) / max(hi - lo, 1e-6) - 1.0

    @staticmethod
    def _unscale(y: np.ndarray, lo: float, hi: float) -> np.ndarray:
        return (np.clip(y, -1.0, 1.0) + 1.0) / 2.0 * max(hi - lo, 1e-6) + lo

    def encode(self, flows: FlowTable) -> np.ndarray:
        """``(n, N, 4)`` float32 matrix of the first ``N`` packets of ``flows``."""
        flows = flows.pad_to(self.n_packets)
        mask = flows.mask
        out = np.zeros((len(flows), self.n_packets, N_CHANNELS), dtype=np.float32)
        out[..., 0] = np.where(mask, 2.0 * flows.direction - 1.0, 0.0)
        out[..., 1] = np.where(mask, 1.0, -1.0)
        log_payload = np.log1p(np.maximum(flows.payload, 0).astype(np.float64))
        out[..., 2] = np.where(
            mask, self._scale(log_payload, self.log_payload_min, self.log_payload_max), 0.0
        )
        log_iat = np.log1p(np.maximum(flows.iat, 0.0) * _US)
        out[..., 3] = np.where(mask, self._scale(log_iat, self.log_iat_min, self.log_iat_max), 0.0)
        return out

    def _snap(self, payload: np.ndarray, scaled: np.ndarray) -> np.ndarray:
        if not self.frequent_payloads:
            return payload
        exact = np.asarray(self.frequent_payloads, dtype=np.int64)
        exact_scaled = self._scale(np.log1p(exact.astype(np.float64)), self.log_payload_min, self.log_payload_max)
        distance = np.abs(np.clip(scaled, -1, 1)[..., None] - exact_scaled)
        nearest = distance.argmin(axis=-1)
        close = np.take_along_axis(distance, nearest[..., None], axis=-1)[..., 0] <= self.snap_tolerance
        return np.where(close, exact[nearest], payload)

    def decode(self, matrix: np.ndarray) -> FlowTable:
        """A valid FlowTable from an ``(n, N, 4)`` matrix: round direction, clip payload, presence→length."""
        matrix = np.asarray(matrix, dtype=np.float64)
        if matrix.ndim != 3 or matrix.shape[1:] != (self.n_packets, N_CHANNELS):
            raise ValueError(
                f"expected a matrix of shape (n, {self.n_packets}, {N_CHANNELS}), got {matrix.shape}"
            )
        absent = matrix[..., 1] < 0
        length = np.where(absent.any(axis=1), absent.argmax(axis=1), self.n_packets)
        direction = (matrix[..., 0] > 0).astype(np.int8)
        payload = np.expm1(self._unscale(matrix[..., 2], self.log_payload_min, self.log_payload_max))
        payload = np.clip(np.rint(payload), self.payload_min, self.payload_max).astype(np.int64)
        payload = self._snap(payload, matrix[..., 2])
        iat = np.expm1(self._unscale(matrix[..., 3], self.log_iat_min, self.log_iat_max))
        iat = np.rint(np.maximum(iat, 0.0)) / _US
        return make_flows(np.maximum(length, 1), payload, direction, iat)

