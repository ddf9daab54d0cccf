"""Packet tokens: exact frequent sizes, bins that decode back into themselves, EOS, valid decoded flows."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ntg.errors import NtgError
from ntg.models.tokenizer import PacketTokenizer
from tests.ar_flows import two_class_flows

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def flows():
    return two_class_flows(600, seed=1)


@pytest.fixture(scope="module")
def tok(flows):
    return PacketTokenizer.fit(flows, 10)


def test_frequent_sizes_are_exact_and_ranges_cover_the_rest(tok, flows):
    exact = set(tok.size_lo[tok.size_lo == tok.size_hi].tolist())
    assert {0, 60, 80, 1448, 1460} <= exact
    assert tok.size_lo.min() == flows.payload[flows.mask].min()
    assert tok.size_hi.max() == flows.payload[flows.mask].max()
    assert np.all(np.diff(tok.size_lo) > 0)
    bins = tok.size_bin(flows.payload[flows.mask])
    real = flows.payload[flows.mask]
    assert np.all((tok.size_lo[bins] <= real) & (real <= tok.size_hi[bins]))


def test_encode_marks_eos_after_each_flow_and_zero_first_iat(tok, flows):
    packet, iat, length = tok.encode(flows, 10)
    assert np.array_equal(length, flows.length)
    pos = np.arange(10)[None, :]
    assert np.all((packet == tok.eos) == (pos >= length[:, None]))
    assert np.all(iat[:, 0] == 0)
    assert np.all(packet[packet != tok.eos] // tok.n_size == flows.direction[flows.mask])


def test_decode_round_trips_bins_and_stops_at_eos(tok, flows):
    packet, iat, _ = tok.encode(flows, 10)
    gen = torch.Generator().manual_seed(0)
    out = tok.decode(torch.as_tensor(packet), torch.as_tensor(iat), 10, gen)
    out.validate()
    assert np.array_equal(out.length, flows.length)
    assert np.array_equal(out.direction, flows.direction)
    # every decoded value falls back into the bin it came from; exact sizes come back exactly
    assert np.array_equal(tok.size_bin(out.payload[out.mask]), tok.size_bin(flows.payload[flows.mask]))
    exact = np.isin(flows.payload, tok.size_lo[tok.size_lo == tok.size_hi]) & flows.mask
    assert np.array_equal(out.payload[exact], flows.payload[exact])
    later = out.mask.copy()
    later[:, 0] = False
    assert np.array_equal(tok.iat_bin(out.iat[later]), tok.iat_bin(flows.iat[later]))
    # an EOS in the middle cuts the flow there; no EOS means a full-length flow
    ids = torch.full((2, 10), 3)
    ids[0, 2] = tok.eos
    out = tok.decode(ids, torch.ones((2, 10), dtype=torch.long), 10, gen)
    out.validate()
    assert out.length.tolist() == [2, 10] and np.all(out.iat[:, 0] == 0)


def test_decode_of_random_ids_is_valid(tok, flows):
    gen = torch.Generator().manual_seed(1)
    packet = torch.randint(0, tok.n_packet_tokens, (500, 10), generator=gen)
    packet[:, 0] = packet[:, 0].clamp(max=tok.eos - 1)
    iat = torch.randint(0, tok.n_iat_tokens, (500, 10), generator=gen)
    out = tok.decode(packet, iat, 10, gen)
    out.validate()
    real = flows.payload[flows.mask]
    assert real.min() <= out.payload[out.mask].min() and out.payload[out.mask].max() <= real.max()
    assert out.iat.max() <= flows.iat.max() * 1.0001


def test_state_survives_json(tok):
    back = PacketTokenizer.from_dict(json.loads(json.dumps(tok.to_dict())))
    packet = torch.randint(0, tok.eos, (50, 10), generator=torch.Generator().manual_seed(2))
    iat = torch.randint(0, tok.n_iat_tokens, (50, 10), generator=torch.Generator().manual_seed(3))
    a = tok.decode(packet, iat, 10, torch.Generator().manual_seed(4))
    b = back.decode(packet, iat, 10, torch.Generator().manual_seed(4))
    assert np.array_equal(a.payload, b.payload) and np.array_equal(a.iat, b.iat)


def test_empty_training_table_is_a_user_error(flows):
    with pytest.raises(NtgError, match="empty"):
        PacketTokenizer.fit(flows.take(np.zeros(0, dtype=int)), 10)


def _class_ids(flows):
    return (flows.labels.astype(str) == "long").astype(np.int64)


def test_class_values_decode_only_sizes_and_times_the_class_has(flows):
    """With class ids, a bin decodes to the class's own sizes (never a size only the other class sends) and
    to times inside the class's range; without them, uniformly inside the bin."""
    ids = _class_ids(flows)
    tok = PacketTokenizer.fit(flows, 10, n_size_bins=4, n_iat_bins=6, class_ids=ids)
    packet, iat, _ = tok.encode(flows, 10)
    gen = torch.Generator().manual_seed(0)
    decoded = tok.decode(torch.as_tensor(packet), torch.as_tensor(iat), 10, gen, ids)
    for c in (0, 1):
        rows = ids == c
        real = set(flows.payload[rows][flows.mask[rows]].tolist())
        got = decoded.payload[rows][decoded.mask[rows]]
        assert set(got.tolist()) <= real
        real_iat = flows.iat[rows][:, 1:][flows.mask[rows][:, 1:]]
        got_iat = decoded.iat[rows][:, 1:][decoded.mask[rows][:, 1:]]
        assert real_iat.min() * 0.99 <= got_iat.min() and got_iat.max() <= real_iat.max() * 1.01
    assert np.array_equal(decoded.direction, np.where(flows.mask, flows.direction, 0))
    uniform = tok.decode(torch.as_tensor(packet), torch.as_tensor(iat), 10, torch.Generator().manual_seed(0))
    long_rows = ids == 1
    assert not set(uniform.payload[long_rows][uniform.mask[long_rows]].tolist()) <= set(
        flows.payload[long_rows][flows.mask[long_rows]].tolist())


def test_class_values_fall_back_to_other_classes_then_to_the_bin(flows):
    """A class asked for a bin it never used draws from the pooled values of that bin."""
    ids = _class_ids(flows)
    tok = PacketTokenizer.fit(flows, 10, class_ids=ids)
    big = int(tok.size_bin(np.array([1460]))[0])
    pkt = torch.full((50, 10), tok.eos)
    pkt[:, 0] = big  # a 1460-byte first packet, which only class "long" sends
    decoded = tok.decode(pkt, torch.zeros((50, 10), dtype=torch.long), 10, torch.Generator().manual_seed(1),
                         np.zeros(50, np.int64))
    assert np.all(decoded.payload[:, 0] == 1460)


def test_class_values_survive_json(flows):
    tok = PacketTokenizer.fit(flows, 10, class_ids=_class_ids(flows))
    again = PacketTokenizer.from_dict(json.loads(json.dumps(tok.to_dict())))
    for table in ("payload", "iat"):
        for key, values in getattr(tok.values, table).items():
            assert np.array_equal(getattr(again.values, table)[key], values)
    packet, iat, _ = tok.encode(flows, 10)
    ids = _class_ids(flows)
    a = tok.decode(torch.as_tensor(packet), torch.as_tensor(iat), 10, torch.Generator().manual_seed(3), ids)
    b = again.decode(torch.as_tensor(packet), torch.as_tensor(iat), 10, torch.Generator().manual_seed(3), ids)
    assert np.array_equal(a.payload, b.payload) and np.array_equal(a.iat, b.iat)


def test_redraw_in_bins_moves_invented_values_onto_the_class_s_own(flows):
    """A continuous generator's values (here: every long-class size shifted by 1 byte, times by 3 %) keep their
    bins and take sizes and times the class has."""
    ids = _class_ids(flows)
    tok = PacketTokenizer.fit(flows, 10, n_size_bins=4, class_ids=ids)
    long = flows.take(ids == 1)
    invented = long.take(np.arange(len(long)))
    invented.payload[:] = np.where(invented.mask, np.minimum(invented.payload + 1, 1399), 0)
    invented.iat[:] = invented.iat * 1.03
    before_bins = tok.size_bin(invented.payload[invented.mask])
    tok.redraw_in_bins(invented, np.ones(len(invented), np.int64), np.random.default_rng(0))
    real = set(long.payload[long.mask].tolist())
    assert set(invented.payload[invented.mask].tolist()) <= real
    assert np.array_equal(tok.size_bin(invented.payload[invented.mask]), before_bins)
    got, seen = invented.iat[:, 1:][invented.mask[:, 1:]], long.iat[:, 1:][long.mask[:, 1:]]
    assert seen.min() * 0.99 <= got.min() and got.max() <= seen.max() * 1.01
