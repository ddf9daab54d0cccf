"""Diffusion's guidance follows the data: where flows do not recur across captures it samples the plain
conditional model, elsewhere with the family's guidance (ntg/models/data_rules.py)."""

from __future__ import annotations

import numpy as np
import torch

from ntg.data.schema import FlowTable
from ntg.models import create_generator, load_generator
from ntg.models.data_rules import RECURRENT_SHARE, UNGUIDED, guidance_rule
from ntg.models.diffusion import DiffusionGenerator
from tests import ar_flows

torch.set_num_threads(1)

SMALL = {"d_model": 32, "n_layers": 1, "n_heads": 4, "sampling_steps": 4}
TRAIN = {"epochs": 1, "batch_size": 64, "device": "cpu"}


def _same_flows(a: FlowTable, b: FlowTable) -> bool:
    return all(np.array_equal(getattr(a, name), getattr(b, name)) for name in ("payload", "direction", "iat"))


def test_the_rule_guides_only_where_flows_recur_unless_the_user_says_otherwise():
    low, high = RECURRENT_SHARE / 2, RECURRENT_SHARE * 2
    scale, note = guidance_rule(low, 1.5)
    assert scale == UNGUIDED == 1.0 and "guidance 1 (" in note
    assert guidance_rule(high, 1.5)[0] == 1.5
    assert guidance_rule(None, 1.5) == (1.5, "data rules: guidance 1.5 (the training table names no captures)")
    assert guidance_rule(low, 1.5, setting=2.0)[0] == 2.0
    assert guidance_rule(high, 1.5, setting=1.0)[0] == 1.0


def test_a_fit_on_captures_whose_flows_do_not_recur_samples_unguided_and_keeps_the_decision(tmp_path):
    flows = ar_flows.two_class_flows(160, seed=2)
    flows.meta["capture"] = [f"capture{i}.pcap" for i in range(len(flows))]  # every flow its own capture
    gen = create_generator("diffusion", **SMALL)
    gen.fit(flows, None, train_config=TRAIN)
    assert gen.guidance_scale is None and gen.sampling_guidance == UNGUIDED
    assert "data rules: guidance 1 (" in " ".join(gen.fit_log_["notes"])
    labels = ["short", "long"] * 16
    decided = gen.sample(32, labels, seed=5)
    gen.save_pretrained(tmp_path / "new")
    loaded = load_generator(tmp_path / "new")
    assert loaded.guidance_scale is None and loaded.sampling_guidance == UNGUIDED
    assert _same_flows(loaded.sample(32, labels, seed=5), decided)
    loaded.guidance_scale = UNGUIDED  # the same guidance set by hand samples the same flows
    assert _same_flows(loaded.sample(32, labels, seed=5), decided)
    loaded.guidance_scale = 3.0  # and a user's value after loading wins over the decision
    assert loaded.sampling_guidance == 3.0 and not _same_flows(loaded.sample(32, labels, seed=5), decided)


def test_recurring_flows_keep_the_family_guidance_and_a_set_value_is_kept():
    half = ar_flows.two_class_flows(80, seed=3)
    repeated = FlowTable.concat([half, half])  # every flow in both captures: flows recur
    repeated.meta["capture"] = ["a.pcap"] * len(half) + ["b.pcap"] * len(half)
    gen = create_generator("diffusion", **SMALL)
    gen.prepare(repeated)
    assert gen.sampling_guidance == DiffusionGenerator.default_guidance == 1.5
    no_captures = create_generator("diffusion", **SMALL)
    no_captures.prepare(half)
    assert no_captures.sampling_guidance == 1.5
    chosen = create_generator("diffusion", guidance_scale=2.0, **SMALL)
    chosen.prepare(repeated)
    assert chosen.sampling_guidance == 2.0 and chosen.guidance_scale_ == 2.0
