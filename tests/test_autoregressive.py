"""What the transformer and SSM share: the token sampler, the per-class first step, the bf16 sampling copy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ntg.models import create_generator, load_generator
from ntg.models.autoregressive import sample_token
from tests import ar_flows

torch.set_num_threads(1)

SMALL = {"transformer": {"d_model": 32, "n_layers": 2, "n_heads": 4, "mlp_hidden": 64},
         "ssm": {"d_model": 32, "n_layers": 2}}


@pytest.fixture(scope="module")
def flows():
    return ar_flows.two_class_flows(600, seed=1)


@pytest.fixture(scope="module", params=sorted(SMALL))
def prepared(request, flows):
    gen = create_generator(request.param, **SMALL[request.param])
    gen.prepare(flows)
    gen.module.eval()
    return gen


def test_inverse_cdf_sampler_follows_the_distribution():
    probs = torch.tensor([0.5, 0.3, 0.2, 0.0])
    logits = torch.log(probs).repeat(40_000, 1)
    draws = sample_token(logits, torch.Generator().manual_seed(0))
    freq = torch.bincount(draws, minlength=4).double() / len(draws)
    assert torch.allclose(freq, probs.double(), atol=0.01)
    assert freq[3] == 0  # a token of probability zero is never drawn
    # a zero-probability token in front is skipped too
    first_masked = torch.log(torch.tensor([0.0, 1.0, 0.0])).repeat(1000, 1)
    assert (sample_token(first_masked, torch.Generator().manual_seed(0)) == 1).all()


def test_first_step_equals_stepping_every_row(prepared):
    module = prepared.module
    cls = torch.tensor([1, 0, 1, 1, 0])
    with torch.no_grad():
        h_fast, state_fast = module.first_step(cls)
        h_full, state_full = module.backbone.step(module.class_emb(cls), module.backbone.init_state(5, cls.device), 0)
        assert torch.allclose(h_fast, h_full, atol=1e-6)
        # the next step from either state agrees: the gathered state is the per-row state
        x = torch.randn(5, prepared.d_model)
        nxt_fast, _ = module.backbone.step(x, state_fast, 1)
        nxt_full, _ = module.backbone.step(x, state_full, 1)
    assert torch.allclose(nxt_fast, nxt_full, atol=1e-5)


def test_bf16_sampling_uses_a_bf16_copy_that_follows_the_weights(prepared):
    gen = create_generator(prepared.family, **{**prepared.get_config(), "sample_precision": "bfloat16"})
    gen.set_learnt_metadata(prepared.learnt_metadata())
    gen.load_state_arrays(prepared.state_arrays())
    copy = gen.sampling_module()
    assert copy is not gen.module and next(copy.parameters()).dtype == torch.bfloat16
    assert gen.sampling_module() is copy  # reused while the weights stay the same
    a, b = gen.sample(64, seed=3), gen.sample(64, seed=3)
    a.validate()
    assert np.array_equal(a.payload, b.payload) and np.array_equal(a.iat, b.iat)
    with torch.no_grad():  # changing the weights in place (as an optimiser step does) makes a new copy
        next(gen.module.parameters()).add_(1.0)
    assert gen.sampling_module() is not copy
    gen.load_state_arrays(prepared.state_arrays())  # loading builds a new module: a new copy again
    assert torch.equal(gen.sampling_module().class_emb.weight, prepared.module.class_emb.weight.bfloat16())


def test_auto_precision_picks_bf16_only_where_it_is_native_and_helps(prepared, monkeypatch):
    from ntg.models import neural

    gen = create_generator(prepared.family, **{**prepared.get_config(), "sample_precision": "auto"})
    gen.set_learnt_metadata(prepared.learnt_metadata())
    gen.load_state_arrays(prepared.state_arrays())
    monkeypatch.setattr(neural, "native_bf16", lambda device: False)
    assert gen.resolved_sample_precision() == "float32" and gen.sampling_module() is gen.module
    monkeypatch.setattr(neural, "native_bf16", lambda device: True)
    expected = "bfloat16" if prepared.family == "transformer" else "float32"  # the SSM's time is not in matmuls
    assert gen.resolved_sample_precision() == expected
    gen.sample(16, seed=0).validate()


def test_class_support_keeps_each_class_to_the_sizes_and_gaps_it_sent(prepared, flows):
    short = flows.take(flows.labels == "short")
    sent_sizes, longest_gap = set(short.payload[short.mask].tolist()), short.iat[short.mask].max()

    def drawn(class_support: bool):
        prepared.class_support = class_support
        out = prepared.sample(400, label="short", seed=0)
        return set(out.payload[out.mask].tolist()), out.iat[out.mask].max()

    try:  # untrained weights: nearly uniform logits, so every token would be drawn somewhere
        sizes, gap = drawn(True)
        assert sizes <= sent_sizes and gap <= longest_gap * 1.002  # decoded times are jittered by < 0.12 %
        sizes, gap = drawn(False)
        assert not sizes <= sent_sizes and gap > 10 * longest_gap  # the same weights without the masks leak
    finally:
        prepared.class_support = None


def test_recurrent_share_counts_flows_whose_class_and_tokens_recur_in_another_capture():
    from ntg.models.data_rules import recurrent_share

    sequences = np.array([[1, 2], [1, 2], [3, 4], [3, 4], [5, 6]])
    # flows 0 and 1 recur across captures a and b; 2 and 3 share tokens but not the class; 4 recurs in its capture
    share = recurrent_share(sequences, np.array([0, 0, 0, 1, 0]), np.array(["a", "b", "a", "a", "a"]))
    assert share == pytest.approx(2 / 5)


def test_class_support_is_decided_from_how_often_flows_recur_across_captures(iot_small, tmp_path):
    from ntg.models.data_rules import RARE_CLASS_FLOWS

    train = iot_small.train
    gen = create_generator("transformer", **SMALL["transformer"])
    gen.fit(train, None, train_config={"epochs": 1, "device": "cpu"})
    notes = " ".join(gen.fit_log_["notes"])
    assert gen.confined_.all() and "class_support for every class" in notes  # device setups repeat their exchanges
    gen.save_pretrained(tmp_path / "gen")
    loaded = load_generator(tmp_path / "gen")
    assert loaded.class_support is None and loaded.confined_classes().all()
    assert loaded._class_support("cpu") is not None

    one_capture = train.take(np.arange(len(train)))
    one_capture.meta["capture"] = "all.pcap"  # no other capture for a flow to recur in
    gen = create_generator("transformer", **SMALL["transformer"])
    gen.prepare(one_capture)
    counts = np.bincount(gen.class_ids(one_capture.labels), minlength=len(gen.classes_))
    assert (gen.confined_ == (counts < RARE_CLASS_FLOWS)).all()  # only the rare classes
    assert "0.000 of the training flows" in gen.data_notes()[1] and "the rare classes only" in gen.data_notes()[1]
    gen.class_support = True  # a value the user sets wins over the rule
    assert gen.confined_classes().all() and gen._class_support("cpu") is not None
    gen.class_support = False
    assert not gen.confined_classes().any() and gen._class_support("cpu") is None

    unnamed = train.take(np.arange(len(train)))
    unnamed.meta = unnamed.meta.drop(columns="capture")
    gen = create_generator("ssm", **SMALL["ssm"])
    gen.prepare(unnamed)
    assert (gen.confined_ == (counts < RARE_CLASS_FLOWS)).all() and "names no captures" in gen.data_notes()[1]


def test_rare_classes_are_confined_and_the_others_left_free(prepared, flows, tmp_path):
    short = flows.take(flows.labels == "short")
    sent_sizes = set(short.payload[short.mask].tolist())
    rare = np.array([c == "short" for c in prepared.classes_])
    prepared.confined_ = rare  # as the rule decides when only "short" has fewer than RARE_CLASS_FLOWS flows
    out = prepared.sample(400, label="short", seed=0)
    assert set(out.payload[out.mask].tolist()) <= sent_sizes  # untrained weights would draw every size
    other = next(c for c in prepared.classes_ if c != "short")
    free = prepared.sample(400, label=other, seed=0)
    assert not set(free.payload[free.mask].tolist()) <= sent_sizes
    prepared.save_pretrained(tmp_path / "gen")
    assert (load_generator(tmp_path / "gen").confined_ == rare).all()
    prepared.confined_ = None


def test_generators_saved_with_one_decision_for_every_class_still_load(prepared):
    meta = prepared.learnt_metadata()
    for old, expected in ((True, True), (False, False)):
        prepared.set_learnt_metadata({**meta, "class_support": old})
        assert prepared.confined_.tolist() == [expected] * len(prepared.classes_)
    prepared.set_learnt_metadata({k: v for k, v in meta.items() if k != "class_support"})  # saved before any rule
    assert not prepared.confined_.any()
    prepared.confined_ = None
