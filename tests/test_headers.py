"""Header model: generated flows get a protocol, TCP flags and windows as the training data has them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ntg.data.schema import FlowTable
from ntg.models import create_generator, load_generator
from ntg.models.headers import HeaderModel

P = 6
SYN, SYN_ACK, ACK, PSH_ACK = 2, 18, 16, 24


def web_and_dns(n: int = 400, seed: int = 0) -> FlowTable:
    """``web``: TCP, SYN (win 64240) → SYN-ACK (win 65535) → ACK (502) → request and response PSH|ACK (502);
    ``dns``: UDP query (40 B) and answer (100 B), flags and window 0."""
    rng = np.random.default_rng(seed)
    is_web = rng.random(n) < 0.5
    length = np.where(is_web, P, 2)
    payload = np.where(is_web[:, None], [0, 0, 0, 300, 1200, 0], [40, 100, 0, 0, 0, 0])
    direction = np.where(is_web[:, None], [0, 1, 0, 0, 1, 0], [0, 1, 0, 0, 0, 0])
    flags = np.where(is_web[:, None], [SYN, SYN_ACK, ACK, PSH_ACK, PSH_ACK, ACK], 0)
    window = np.where(is_web[:, None], [64240, 65535, 502, 502, 502, 502], 0)
    iat = np.where(np.arange(P)[None, :] < length[:, None], 0.001, 0.0)
    iat[:, 0] = 0
    return FlowTable(n_packets=length, payload=payload, direction=direction, iat=iat, flags=flags, window=window,
                     meta=pd.DataFrame({"label": np.where(is_web, "web", "dns"), "proto": np.where(is_web, 6, 17)}))


@pytest.fixture(scope="module")
def fitted():
    return create_generator("marginals", n_packets=P).fit(web_and_dns())


def test_flows_get_the_protocol_flags_and_window_of_their_class(fitted):
    web, dns = fitted.sample(300, "web", seed=0), fitted.sample(300, "dns", seed=0)
    web.validate()
    assert (web.meta["proto"] == 6).all() and (dns.meta["proto"] == 17).all()
    # the handshake comes back where the class has it, with its windows
    assert np.array_equal(web.flags[:, :3], np.tile([SYN, SYN_ACK, ACK], (300, 1)))
    assert (web.window[:, 0] == 64240).all() and (web.window[:, 1] == 65535).all()
    assert (web.flags[:, 3:5] == PSH_ACK).all()
    # UDP flows and padding stay 0
    assert not dns.flags.any() and not dns.window.any()
    assert not web.flags[~web.mask].any()


def test_unseen_contexts_back_off_to_coarser_ones():
    train = web_and_dns()
    class_ids = (train.labels == "web").astype(np.int64)  # dns 0, web 1
    model = HeaderModel.fit(train, class_ids, n_classes=2, n_packets=P)
    # a web flow with sizes and a length never seen: still TCP-like flags, never the UDP zeros
    odd = FlowTable(n_packets=np.array([4]), payload=np.array([[700, 5, 700, 5, 0, 0]]),
                    direction=np.array([[1, 1, 1, 1, 0, 0]]), iat=np.zeros((1, P)), flags=np.zeros((1, P)),
                    window=np.zeros((1, P)), meta=pd.DataFrame({"label": ["web"]}))
    out = model.complete(odd, np.array([1]), seed=0)
    assert out.meta["proto"].iloc[0] == 6
    assert np.all(np.isin(out.flags[0, :4], [SYN, SYN_ACK, ACK, PSH_ACK])) and np.all(out.window[0, :4] > 0)


def test_header_tables_round_trip_and_the_flows_do_not_change(fitted, tmp_path):
    fitted.save_pretrained(tmp_path / "m")
    loaded = load_generator(tmp_path / "m")
    a, b = fitted.sample(200, seed=4), loaded.sample(200, seed=4)
    for name in ("payload", "direction", "iat", "flags", "window"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(a.meta["proto"], b.meta["proto"])
    assert loaded.num_parameters() == fitted.num_parameters()  # the header tables are not the family's


def test_real_flags_statistics_are_kept(iot_small):
    train, test = iot_small.train.first(10), iot_small.test.first(10)
    synth = create_generator("markov").fit(train).sample(3000, seed=0)
    synth.validate()
    real_tcp, synth_tcp = np.asarray(test.meta["proto"]) == 6, np.asarray(synth.meta["proto"]) == 6
    assert abs(real_tcp.mean() - synth_tcp.mean()) < 0.1
    # TCP flows open with a SYN about as often as real ones; UDP flows carry no flags or window
    real_syn, synth_syn = (test.flags[real_tcp, 0] == SYN).mean(), (synth.flags[synth_tcp, 0] == SYN).mean()
    assert abs(real_syn - synth_syn) < 0.1
    assert not synth.flags[~synth_tcp].any() and not synth.window[~synth_tcp].any()
    assert set(np.unique(synth.flags[synth.mask])) <= set(np.unique(train.flags[train.mask]))


def test_fidelity_report_compares_headers_beside_the_score(fitted):
    from ntg.evaluation.fidelity import fidelity_report

    real = web_and_dns(300, seed=1)
    good = fitted.sample(300, label=real.labels, seed=0)
    blank = good.take(np.arange(len(good)))
    blank.flags, blank.window = np.zeros_like(good.flags), np.zeros_like(good.window)
    with_headers, without = fidelity_report(real, good)["headers"], fidelity_report(real, blank)["headers"]
    assert with_headers["jsd_flags"] < 0.05 and with_headers["tv_proto"] < 0.1
    assert without["jsd_flags"] > 0.3 and without["jsd_window"] > 0.3
    assert fidelity_report(real, good)["score"] == fidelity_report(real, blank)["score"]  # not in the score
