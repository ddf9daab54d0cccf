"""Analog bits: the packet tokens of :class:`~ntg.models.tokenizer.PacketTokenizer` as a ``±1`` matrix for diffusion.

A continuous diffusion model over scaled sizes and times (:mod:`ntg.models.flow_matrix`) blurs what makes
traffic recognisable: a device sends the same 60-byte message every time, and a value decoded from a
continuous output lands near it, not on it. Following *Analog Bits* (Chen, Zhang & Hinton, ICLR 2023), each
packet position instead holds the bits of its discrete tokens, as ``-1``/``+1`` channels:

* ``presence`` (+1 where a packet exists; the flow ends at the first position below 0, at least one packet),
* ``direction`` (+1 server→client),
* the payload **size bin** in Gray code (``ceil(log2 S)`` channels: neighbouring bins differ in one bit),
* the **iat bin** in Gray code (``ceil(log2 Q)`` channels).

Past a flow's end every channel but ``presence`` is 0. Decoding thresholds each channel at 0, clamps the bin
indices into range and hands the tokens to :meth:`PacketTokenizer.decode`, so sizes and times come out exactly
as the autoregressive families' do (exact bins exact, the class's own values inside range bins).
"""

from __future__ import annotations

import numpy as np
import torch

from ntg.data.schema import FlowTable
from ntg.models.tokenizer import PacketTokenizer


def n_bits(n_values: int) -> int:
    """Bits needed to tell ``n_values`` values apart (at least 1)."""
    return max(1, int(np.ceil(np.log2(max(n_values, 2)))))


def to_gray_bits(values: np.ndarray, width: int) -> np.ndarray:
    """``(..., width)`` ``±1`` Gray-code bits of non-negative integers, most significant first."""
    gray = values ^ (values >> 1)
    shifts = np.arange(width - 1, -1, -1)
    return (((gray[..., None] >> shifts) & 1) * 2 - 1).astype(np.float32)


def from_gray_bits(bits: np.ndarray, width: int) -> np.ndarray:
    """Integers from ``(..., width)`` real-valued Gray bits (thresholded at 0)."""
    binary = (bits > 0).astype(np.int64)
    value = np.zeros(bits.shape[:-1], np.int64)
    prefix = np.zeros(bits.shape[:-1], np.int64)
    for i in range(width):  # Gray → binary: b_i = b_{i-1} xor g_i
        prefix ^= binary[..., i]
        value = (value << 1) | prefix
    return value


class TokenBitsCodec:
    """Encode flows to ``(n, N, C)`` analog-bit matrices and decode them back through the tokenizer."""

    def __init__(self, tokenizer: PacketTokenizer, n_packets: int) -> None:
        self.tokenizer = tokenizer
        self.n_packets = n_packets
        self.size_bits = n_bits(tokenizer.n_size)
        self.iat_bits = n_bits(tokenizer.n_iat_tokens)

    @property
    def n_channels(self) -> int:
        return 2 + self.size_bits + self.iat_bits

    def encode(self, flows: FlowTable) -> np.ndarray:
        tok = self.tokenizer
        packet, iat, length = tok.encode(flows, self.n_packets)
        present = np.arange(self.n_packets)[None, :] < length[:, None]
        direction = np.where(present, packet // tok.n_size, 0)
        size = np.where(present, packet % tok.n_size, 0)
        out = np.zeros((len(flows), self.n_packets, self.n_channels), np.float32)
        out[..., 0] = np.where(present, 1.0, -1.0)
        out[..., 1] = direction * 2.0 - 1.0
        out[..., 2 : 2 + self.size_bits] = to_gray_bits(size, self.size_bits)
        out[..., 2 + self.size_bits :] = to_gray_bits(iat, self.iat_bits)
        out[..., 1:] *= present[..., None]
        return out

    def decode(self, matrix: np.ndarray, class_ids: np.ndarray | None, seed: int) -> FlowTable:
        """A valid FlowTable from a sampled ``(n, N, C)`` matrix; in-bin values drawn with ``seed``, from the
        class's own values where ``class_ids`` are given, else uniformly in the bin."""
        tok = self.tokenizer
        present = matrix[..., 0] > 0
        present[:, 0] = True
        direction = (matrix[..., 1] > 0).astype(np.int64)
        size = np.minimum(from_gray_bits(matrix[..., 2 : 2 + self.size_bits], self.size_bits), tok.n_size - 1)
        iat = np.minimum(from_gray_bits(matrix[..., 2 + self.size_bits :], self.iat_bits), tok.n_iat_tokens - 1)
        iat[:, 0] = 0
        packet = np.where(present, direction * tok.n_size + size, tok.eos)
        generator = torch.Generator().manual_seed(int(seed))
        return tok.decode(torch.from_numpy(packet), torch.from_numpy(iat), self.n_packets, generator,
                          class_ids=None if class_ids is None else np.asarray(class_ids))
