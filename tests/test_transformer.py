"""LLaMA-style transformer family: KV cache equals recompute, it learns, follows the class, round trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ntg.models import create_generator
from ntg.models.autoregressive import sample_token
from ntg.models.transformer import TransformerBackbone
from tests import ar_flows

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def flows():
    return ar_flows.two_class_flows(1200, seed=0)


@pytest.fixture(scope="module")
def trained(flows):
    gen = create_generator("transformer", d_model=64, n_layers=2, n_heads=4, mlp_hidden=128)
    return ar_flows.train_small(gen, flows, epochs=4)


def test_default_size_is_in_budget(flows):
    gen = create_generator("transformer")
    gen.prepare(flows)
    assert 1_000_000 <= gen.num_parameters() <= 2_000_000


def test_kv_cache_step_equals_full_recompute():
    torch.manual_seed(0)
    backbone = TransformerBackbone(d_model=32, n_layers=3, n_heads=4, mlp_hidden=64, max_len=12).eval()
    x = torch.randn(5, 12, 32)
    with torch.no_grad():
        full = backbone(x)
        state = backbone.init_state(5, x.device)
        steps = [backbone.step(x[:, t], state, t)[0] for t in range(12)]
    assert torch.allclose(torch.stack(steps, 1), full, atol=1e-5)
    # a prefix sees the same hidden states as the whole sequence: attention is causal
    assert torch.allclose(backbone(x[:, :4]), full[:, :4], atol=1e-5)


def test_learns_and_samples_valid_flows(trained, flows):
    ar_flows.check_loss_falls(trained)
    ar_flows.check_valid(trained, flows)


def test_samples_follow_the_requested_class(trained):
    ar_flows.check_class_conditioning(trained)


def test_seeded_sampling_and_save_load_round_trip(trained, tmp_path):
    ar_flows.check_determinism_and_round_trip(trained, tmp_path)


def test_generate_with_and_without_compaction_gives_valid_flows(trained):
    module = trained.module
    cls = torch.zeros(100, dtype=torch.long)
    for compact in (True, False):
        packet, iat = module.generate(cls, torch.Generator().manual_seed(0), compact=compact)
        assert packet.shape == (100, trained.n_packets)
        assert not (packet[:, 0] == module.eos).any()
        after_eos = (packet == module.eos).cumsum(1) > 0
        assert (packet[after_eos] == module.eos).all()


def test_top_p_keeps_only_the_nucleus():
    logits = torch.log(torch.tensor([[0.6, 0.3, 0.05, 0.05]])).repeat(2000, 1)
    draws = sample_token(logits, torch.Generator().manual_seed(0), top_p=0.8)
    assert set(draws.tolist()) == {0, 1}
    draws = sample_token(logits, torch.Generator().manual_seed(0), top_p=1.0)
    assert set(draws.tolist()) == {0, 1, 2, 3}
    share = (sample_token(logits, torch.Generator().manual_seed(1), temperature=0.3) == 0).float().mean()
    assert share > 0.8


def test_bf16_sampling_is_valid(trained):
    gen = create_generator("transformer", **{**trained.get_config(), "sample_precision": "bfloat16"})
    gen.set_learnt_metadata(trained.learnt_metadata())
    gen.load_state_arrays(trained.state_arrays())
    flows = gen.sample(50, seed=0)
    flows.validate()
    assert np.all(flows.length >= 1)


def test_fits_a_real_iot_sentinel_subset(iot_small):
    gen = create_generator("transformer", d_model=64, n_layers=2, n_heads=4, mlp_hidden=128)
    ar_flows.check_fits_real_data(gen, iot_small)


def test_a_one_percent_fraction_can_sample_every_class_it_was_fitted_on(iot_small):
    """The augmentation refit on a small fraction: a random hold-out used to drop its rarest class
    (``label 'SmarterCoffee' was not in the training data``)."""
    train = iot_small.train.first(10)
    labels = train.labels.astype(str)
    rng = np.random.default_rng(0)
    rows = np.concatenate([rng.choice(np.flatnonzero(labels == c), max(1, round(0.01 * (labels == c).sum())),
                                      replace=False) for c in sorted(set(labels))])
    fraction = train.take(np.sort(rows))
    classes = sorted(set(fraction.labels.astype(str)))
    assert len(classes) == len(set(labels)) and len(fraction) < 0.02 * len(train)
    gen = create_generator("transformer", d_model=16, n_layers=1, n_heads=2, mlp_hidden=32)
    gen.fit(fraction, None, train_config={"epochs": 1, "batch_size": 64, "device": "cpu", "val_fraction": 0.1})
    assert gen.classes_ == classes
    assert gen.fit_log_["num_train_flows"] + gen.fit_log_["num_val_flows"] == len(fraction)
    synth = gen.sample(len(classes), label=classes, seed=0)
    assert sorted(synth.labels) == classes
