"""Context noise: where flows do not recur across captures, the autoregressive networks train on inputs whose
packets are partly replaced by other flows' packets at the same position (ntg/models/data_rules.py)."""

from __future__ import annotations

import pytest
import torch

from ntg.data.schema import FlowTable
from ntg.models import create_generator, load_generator
from ntg.models.autoregressive import noise_context
from ntg.models.data_rules import RECURRENT_SHARE, context_noise_rule
from tests import ar_flows

torch.set_num_threads(1)

EOS = 99
SMALL = {"d_model": 32, "n_layers": 2, "n_heads": 4, "mlp_hidden": 64}


def _batch(rows: int = 400, n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    packet = torch.randint(0, 40, (rows, n), generator=g)
    lengths = torch.randint(2, n + 1, (rows,), generator=g)
    packet[torch.arange(n)[None, :] >= lengths[:, None]] = EOS
    return packet, torch.randint(0, 30, (rows, n), generator=g)


def test_noise_replaces_about_its_rate_of_packets_by_another_flows_pair_at_the_same_position():
    packet, iat = _batch()
    torch.manual_seed(1)
    noisy_packet, noisy_iat = noise_context(packet, iat, 0.3, EOS)
    changed = (noisy_packet != packet) | (noisy_iat != iat)
    assert not changed[packet == EOS].any()  # ended flows stay ended: lengths stay real
    assert 0.2 < changed[packet != EOS].float().mean() < 0.32  # 0.3, less the swaps that land on an equal pair
    for row, pos in changed.nonzero()[:50].tolist():  # every new pair is a pair some flow has at that position
        pair = (noisy_packet[row, pos], noisy_iat[row, pos])
        assert ((packet[:, pos] == pair[0]) & (iat[:, pos] == pair[1])).any()
    same = noise_context(packet, iat, 0.0, EOS)
    assert torch.equal(same[0], packet) and torch.equal(same[1], iat)


def test_the_rule_noises_only_where_flows_do_not_recur_unless_the_user_says_otherwise():
    low, high = RECURRENT_SHARE / 2, RECURRENT_SHARE * 2
    rate, note = context_noise_rule(low, 0.25)
    assert rate == 0.25 and "context noise 0.25 (" in note
    assert context_noise_rule(high, 0.25)[0] == 0.0
    assert context_noise_rule(None, 0.25) == (0.0, "data rules: no context noise (the training table names no "
                                                   "captures)")
    assert context_noise_rule(high, 0.25, setting=0.1)[0] == 0.1
    assert context_noise_rule(low, 0.25, setting=0.0)[0] == 0.0


def test_only_training_sees_the_noise():
    gen = create_generator("transformer", context_noise=0.5, **SMALL)
    gen.prepare(ar_flows.two_class_flows(64, seed=1))
    batch = gen.encode(ar_flows.two_class_flows(64, seed=1))
    module = gen.module
    args = batch["cls"], batch["packet"], batch["iat"]
    module.eval()
    assert torch.equal(module.inputs(*args), module.inputs(*args))
    module.train()
    module.drop.p = 0.0  # so that only the noise can differ
    torch.manual_seed(0)
    assert not torch.equal(module.inputs(*args), module.inputs(*args))


@pytest.mark.parametrize("family", ["transformer", "ssm"])
def test_a_fit_on_captures_whose_flows_do_not_recur_noises_its_context_and_keeps_the_decision(family, tmp_path):
    flows = ar_flows.two_class_flows(240, seed=2)
    flows.meta["capture"] = [f"capture{i}.pcap" for i in range(len(flows))]  # every flow its own capture
    small = SMALL if family == "transformer" else {"d_model": 32, "n_layers": 2}
    gen = create_generator(family, **small)
    gen.fit(flows, None, train_config={"epochs": 1, "batch_size": 64, "device": "cpu"})
    notes = " ".join(gen.fit_log_["notes"])
    assert gen.context_noise_ == type(gen).default_context_noise > 0 and "context noise" in notes, notes
    assert gen.module.context_noise == gen.context_noise_
    gen.save_pretrained(tmp_path / family)
    assert load_generator(tmp_path / family).context_noise_ == gen.context_noise_
    half = ar_flows.two_class_flows(120, seed=3)
    repeated = FlowTable.concat([half, half])  # every flow in both captures: flows recur, no noise
    repeated.meta["capture"] = ["a.pcap"] * len(half) + ["b.pcap"] * len(half)
    plain = create_generator(family, **small)
    plain.prepare(repeated)
    assert plain.context_noise_ == 0.0 and plain.module.context_noise == 0.0
