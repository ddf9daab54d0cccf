"""The capture-balance data rule: where flows do not recur across captures, each epoch draws a class's flows so
that its small captures weigh more against its large ones (ntg/models/data_rules.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ntg.models import create_generator
from ntg.models.data_rules import CAPTURE_BALANCE, RECURRENT_SHARE, capture_balance_rule, capture_weights
from ntg.models.epoch_data import epoch_order
from tests import ar_flows

torch.set_num_threads(1)


def test_each_class_keeps_its_draws_and_a_small_captures_flow_weighs_more():
    class_ids = np.array([0] * 16 + [0] * 4 + [1] * 5)
    captures = np.array(["a"] * 16 + ["b"] * 4 + ["c"] * 5)
    w = capture_weights(class_ids, captures)
    assert w[class_ids == 0].mean() == pytest.approx(1.0) and w[class_ids == 1] == pytest.approx(1.0)
    assert w[16] / w[0] == pytest.approx((16 / 4) ** CAPTURE_BALANCE)  # 4 flows against 16 in the same class
    assert w[:16].sum() > w[16:20].sum()  # the large capture still weighs more as a whole


def test_the_rule_balances_only_where_flows_do_not_recur_unless_the_user_says_otherwise():
    class_ids, captures = np.array([0, 0, 0, 1]), np.array(["a", "a", "b", "c"])
    low, high = RECURRENT_SHARE / 2, RECURRENT_SHARE * 2
    weights, note = capture_balance_rule(low, class_ids, captures)
    assert weights is not None and weights[2] > weights[0] and "capture balance (" in note
    assert capture_balance_rule(high, class_ids, captures)[0] is None
    assert capture_balance_rule(high, class_ids, captures, setting=True)[0] is not None
    assert capture_balance_rule(low, class_ids, captures, setting=False)[0] is None
    weights, note = capture_balance_rule(None, class_ids, None)
    assert weights is None and "names no captures" in note
    weights, note = capture_balance_rule(low, class_ids, np.array(["a", "b", "c", "d"]))  # one flow per capture
    assert weights is None and "as many flows" in note


def test_a_weighted_epoch_draws_rows_by_weight_the_same_way_for_the_same_seed():
    weights = np.r_[np.zeros(50), np.ones(50)]
    order = epoch_order(100, 1, seed=3, weights=weights)
    assert len(order) == 100 and (order >= 50).all()  # a row of weight 0 is never drawn
    assert torch.equal(order, epoch_order(100, 1, seed=3, weights=weights))
    assert not torch.equal(order, epoch_order(100, 2, seed=3, weights=weights))  # a new draw each epoch
    ranks = [epoch_order(100, 1, seed=3, rank=r, world=2, weights=weights) for r in (0, 1)]
    assert torch.equal(torch.sort(torch.cat(ranks)).values, torch.sort(order).values)  # the ranks split one draw
    with pytest.raises(ValueError, match="99 flow weights for 100 training flows"):
        epoch_order(100, 1, seed=3, weights=weights[:99])


@pytest.mark.parametrize("family", ["transformer", "diffusion"])
def test_a_fit_on_captures_whose_flows_do_not_recur_balances_them_and_says_so(family):
    flows = ar_flows.two_class_flows(240, seed=2)
    big = np.arange(len(flows)) < 180  # three quarters of each class in one capture, the rest in three small ones
    flows.meta["capture"] = np.where(big, "big.pcap", [f"small{i % 3}.pcap" for i in range(len(flows))])
    small = {"transformer": {"d_model": 32, "n_layers": 2, "n_heads": 4, "mlp_hidden": 64},
             "diffusion": {"d_model": 32, "n_layers": 1, "n_heads": 4}}[family]
    gen = create_generator(family, **small)
    gen.fit(flows, None, train_config={"epochs": 1, "batch_size": 64, "device": "cpu"})
    notes = " ".join(gen.fit_log_["notes"])
    assert gen.flow_weights_ is not None and "capture balance (" in notes, notes
    assert gen.flow_weights_.max() > 2 * gen.flow_weights_.min()  # (the loop held some captures out first)
    off = create_generator(family, capture_balance=False, **small)
    off.prepare(flows)
    assert off.flow_weights_ is None and "capture_balance=False" in " ".join(off.data_notes())
