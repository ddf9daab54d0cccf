"""Analog bits of the packet tokens (the diffusion family's default space): Gray codes, exact round trips,
valid flows from noisy matrices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ntg.models.token_bits import TokenBitsCodec, from_gray_bits, n_bits, to_gray_bits
from ntg.models.tokenizer import PacketTokenizer
from tests.ar_flows import two_class_flows

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def flows():
    return two_class_flows(400, seed=2)


@pytest.fixture(scope="module")
def codec(flows) -> TokenBitsCodec:
    labels = np.unique(flows.labels, return_inverse=True)[1]
    return TokenBitsCodec(PacketTokenizer.fit(flows, 10, class_ids=labels), 10)


def test_gray_bits_round_trip_and_neighbours_differ_in_one_bit() -> None:
    values = np.arange(200)
    bits = to_gray_bits(values, n_bits(200))
    assert bits.shape == (200, 8) and set(np.unique(bits)) == {-1.0, 1.0}
    np.testing.assert_array_equal(from_gray_bits(bits, 8), values)
    np.testing.assert_array_equal(from_gray_bits(bits * 0.3, 8), values)  # only the sign matters
    assert np.all((bits[1:] != bits[:-1]).sum(axis=1) == 1)
    assert n_bits(1) == 1 and n_bits(2) == 1 and n_bits(3) == 2 and n_bits(256) == 8


def test_encode_then_decode_gives_back_the_tokens(codec: TokenBitsCodec, flows) -> None:
    tok = codec.tokenizer
    matrix = codec.encode(flows)
    assert matrix.shape == (len(flows), 10, codec.n_channels)
    assert codec.n_channels == 2 + n_bits(tok.n_size) + n_bits(tok.n_iat_tokens)
    labels = np.unique(flows.labels, return_inverse=True)[1]
    decoded = codec.decode(matrix, labels, seed=0)
    decoded.validate()
    np.testing.assert_array_equal(decoded.length, np.minimum(flows.length, 10))
    packet, iat, _ = tok.encode(flows, 10)
    again, again_iat, _ = tok.encode(decoded, 10)
    np.testing.assert_array_equal(again, packet)  # same direction and size bin at every position
    # class values are jittered inside their rounding cell, which can cross a bin edge: at most a neighbour
    assert np.mean(again_iat != iat) < 0.01 and np.abs(again_iat - iat).max() <= 1
    # past each flow's end only the presence channel is set
    past = np.arange(10)[None, :] >= flows.length[:, None]
    assert np.all(matrix[past][:, 0] == -1) and np.all(matrix[past][:, 1:] == 0)


def test_noisy_matrices_decode_to_valid_flows_in_the_training_range(codec: TokenBitsCodec, flows) -> None:
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 2, (300, 10, codec.n_channels)).astype(np.float32)
    noise[:5, :, 0] = -1.0  # "no packet at all" still decodes to one packet
    decoded = codec.decode(noise, rng.integers(0, 2, 300), seed=1)
    decoded.validate()
    assert np.all(decoded.length[:5] == 1) and decoded.length.max() <= 10
    real = flows.payload[flows.mask]
    assert real.min() <= decoded.payload[decoded.mask].min() and decoded.payload.max() <= real.max()
    assert np.all(decoded.iat[:, 0] == 0) and np.all(decoded.iat >= 0)


def test_without_class_ids_values_are_drawn_uniformly_in_their_bins(codec: TokenBitsCodec, flows) -> None:
    matrix = codec.encode(flows)
    labels = np.unique(flows.labels, return_inverse=True)[1]
    plain, own = codec.decode(matrix, None, seed=3), codec.decode(matrix, labels, seed=3)
    np.testing.assert_array_equal(plain.length, own.length)
    tok = codec.tokenizer
    np.testing.assert_array_equal(tok.size_bin(plain.payload[plain.mask]), tok.size_bin(own.payload[own.mask]))
    assert not np.array_equal(plain.payload, own.payload)
