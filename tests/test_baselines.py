"""Classical baselines: each recovers what it should of constructed data, and all share the interface."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ntg.data.schema import FlowTable
from ntg.errors import NtgError
from ntg.models import create_generator, load_generator
from ntg.models.baselines import BootstrapGenerator, GMMGenerator, MarginalsGenerator, MarkovGenerator

P = 10
LENGTHS, LENGTH_P = np.array([3, 5, 8]), np.array([0.5, 0.3, 0.2])
FIRST_PAYLOADS, FIRST_P = np.array([40, 1400]), np.array([0.25, 0.75])
SECOND_PAYLOADS = np.array([100, 200, 300])


def flows(length: np.ndarray, payload: np.ndarray, direction: np.ndarray, iat: np.ndarray, label: str):
    mask = np.arange(P)[None, :] < length[:, None]
    iat = np.where(mask, iat, 0.0)
    iat[:, 0] = 0.0
    zeros = np.zeros(payload.shape, int)
    return FlowTable(
        n_packets=length,
        payload=np.where(mask, payload, 0),
        direction=np.where(mask, direction, 0),
        iat=iat,
        flags=zeros,
        window=zeros,
        meta=pd.DataFrame({"label": [label] * len(length)}),
    )


def alternating_class(n: int, rng: np.random.Generator) -> FlowTable:
    """Directions alternate 0,1,0,... deterministically; lengths 3/5/8 with probabilities .5/.3/.2;
    payload at position 0 is 40 or 1400 (.25/.75), at position 1 one of 100/200/300 (uniform) and at
    position 2 equal to position 1; later positions carry 100·(position+1) bytes; iat 0.5 ms at odd, 50 ms at
    even positions."""
    length = rng.choice(LENGTHS, size=n, p=LENGTH_P)
    payload = np.tile(100 * (np.arange(P) + 1), (n, 1))
    payload[:, 0] = rng.choice(FIRST_PAYLOADS, size=n, p=FIRST_P)
    payload[:, 1] = rng.choice(SECOND_PAYLOADS, size=n)
    payload[:, 2] = payload[:, 1] + 1000
    direction = np.tile(np.arange(P) % 2, (n, 1))
    iat = np.tile(np.where(np.arange(P) % 2 == 1, 0.0005, 0.05), (n, 1))
    return flows(length, payload, direction, iat, "alternating")


def periodic_class(n: int, rng: np.random.Generator) -> FlowTable:
    """Payload 64, 64, 1500, 64, 64, 1500, ... (needs order 2: after a 64 comes 64 or 1500); length 9."""
    payload = np.tile(np.where(np.arange(P) % 3 == 2, 1500, 64), (n, 1))
    return flows(np.full(n, 9), payload, np.zeros((n, P), int), np.full((n, P), 0.01), "periodic")


def bulk_and_chat(n: int, rng: np.random.Generator) -> FlowTable:
    bulk = flows(
        rng.integers(8, 11, n),
        rng.integers(1200, 1400, (n, P)),
        np.tile(np.arange(P) % 2, (n, 1)),
        rng.exponential(1e-3, (n, P)).round(6),
        "bulk",
    )
    chat = flows(
        rng.integers(2, 4, n),
        rng.integers(10, 60, (n, P)),
        np.zeros((n, P), int),
        rng.exponential(1.0, (n, P)).round(6),
        "chat",
    )
    return FlowTable.concat([bulk, chat])


@pytest.fixture(scope="module")
def data() -> FlowTable:
    rng = np.random.default_rng(0)
    return FlowTable.concat([alternating_class(4000, rng), periodic_class(300, rng), bulk_and_chat(300, rng)])


FAMILIES = {
    "bootstrap": BootstrapGenerator,
    "marginals": MarginalsGenerator,
    "markov": MarkovGenerator,
    "gmm": GMMGenerator,
}


@pytest.fixture(scope="module")
def fitted(data: FlowTable) -> dict:
    return {name: cls().fit(data) for name, cls in FAMILIES.items()}


def freq(values: np.ndarray, support: np.ndarray) -> np.ndarray:
    return np.array([(values == v).mean() for v in support])


# ---------------------------------------------------------------------------------------------- all families
@pytest.mark.parametrize("family", list(FAMILIES))
def test_samples_are_valid_and_follow_the_requested_class(family: str, fitted: dict, data: FlowTable) -> None:
    gen = fitted[family]
    bulk, chat = gen.sample(300, "bulk", seed=1), gen.sample(300, "chat", seed=1)
    for sample in (bulk, chat):
        sample.validate()
        assert sample.max_packets == P
    assert set(bulk.labels) == {"bulk"} and set(chat.labels) == {"chat"}
    assert np.mean(bulk.payload[bulk.mask] > 600) > 0.9
    assert np.mean(chat.payload[chat.mask] < 200) > 0.9
    assert np.mean(chat.length <= 4) > 0.8
    # a Markov chain cannot count positions, so its bulk lengths spread out (mean still far above chat's)
    assert np.mean(bulk.length >= 7) > (0.5 if family == "markov" else 0.8)
    assert bulk.length.mean() > chat.length.mean() + 4
    mixed = gen.sample(2000, seed=2)  # no label: the training class mix
    mixed.validate()
    share = np.mean(mixed.labels == "alternating")
    assert abs(share - np.mean(data.labels == "alternating")) < 0.03


@pytest.mark.parametrize("family", list(FAMILIES))
def test_deterministic_for_a_seed_and_round_trips_identically(family: str, fitted: dict, tmp_path) -> None:
    gen = fitted[family]
    a, b, c = gen.sample(500, seed=3), gen.sample(500, seed=3), gen.sample(500, seed=4)
    for name in ("payload", "direction", "iat", "n_packets"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not (np.array_equal(a.payload, c.payload) and np.array_equal(a.iat, c.iat))
    gen.save_pretrained(tmp_path / family)
    loaded = load_generator(tmp_path / family)
    assert type(loaded) is type(gen)
    assert loaded.get_config() == gen.get_config()
    assert loaded.num_parameters() == gen.num_parameters() > 0
    d = loaded.sample(500, seed=3)
    for name in ("payload", "direction", "iat", "n_packets"):
        np.testing.assert_array_equal(getattr(a, name), getattr(d, name))
    np.testing.assert_array_equal(a.labels, d.labels)


# ---------------------------------------------------------------------------------------------- per family
def test_bootstrap_samples_are_training_flows_of_the_class(data: FlowTable, fitted: dict) -> None:
    def rows(table: FlowTable) -> set:
        return {
            (lab, int(n), tuple(p), tuple(d), tuple(i))
            for lab, n, p, d, i in zip(
                table.labels, table.length, table.payload, table.direction, table.iat, strict=True
            )
        }

    sample = fitted["bootstrap"].sample(400, ["bulk", "chat"] * 200, seed=0)
    assert rows(sample) <= rows(data)
    assert len(rows(sample)) > 200  # resampling (~290 distinct expected), not one flow repeated


def test_marginals_recover_per_position_distributions(fitted: dict) -> None:
    s = fitted["marginals"].sample(8000, "alternating", seed=0)
    np.testing.assert_allclose(freq(s.length, LENGTHS), LENGTH_P, atol=0.025)
    np.testing.assert_allclose(freq(s.payload[:, 0], FIRST_PAYLOADS), FIRST_P, atol=0.025)
    np.testing.assert_allclose(freq(s.payload[:, 1], SECOND_PAYLOADS), [1 / 3] * 3, atol=0.025)
    # each position's direction marginal is deterministic, so the alternation survives
    assert np.all(s.direction[s.mask] == np.broadcast_to(np.arange(P) % 2, s.mask.shape)[s.mask])
    np.testing.assert_array_equal(np.unique(s.iat[:, 1]), [0.0005])
    # ... but positions are drawn independently: position 2 no longer copies position 1
    copies = np.mean(s.payload[:, 2] == s.payload[:, 1] + 1000)
    assert abs(copies - 1 / 3) < 0.03


def test_markov_recovers_alternation_lengths_and_payloads(data: FlowTable) -> None:
    gen = MarkovGenerator(order=1, payload_bins=64).fit(data)
    s = gen.sample(8000, "alternating", seed=0)
    s.validate()
    assert np.all(s.direction[s.mask] == np.broadcast_to(np.arange(P) % 2, s.mask.shape)[s.mask])
    np.testing.assert_allclose(freq(s.length, LENGTHS), LENGTH_P, atol=0.025)
    np.testing.assert_allclose(freq(s.payload[:, 0], FIRST_PAYLOADS), FIRST_P, atol=0.025)
    np.testing.assert_allclose(freq(s.payload[:, 1], SECOND_PAYLOADS), [1 / 3] * 3, atol=0.025)
    assert set(np.unique(s.iat[:, 1])) == {0.0005}


def test_markov_order_two_captures_what_order_one_cannot(data: FlowTable) -> None:
    """In 64, 64, 1500, ... the packet after a 64 depends on the one before it: order 2 keeps the period
    (its flows can only end after a 1500), order 1 breaks it."""
    period = np.where(np.arange(P) % 3 == 2, 1500, 64)
    follows = {}
    for order in (1, 2):
        s = MarkovGenerator(order=order).fit(data).sample(1000, "periodic", seed=0)
        s.validate()
        follows[order] = np.mean(np.all((s.payload == period) | ~s.mask, axis=1))
        if order == 2:
            assert set(np.unique(s.length)) <= {3, 6, 9, 10}
    assert follows[2] == 1.0
    assert follows[1] < 0.5


def test_markov_backs_off_for_contexts_never_continued_in_training() -> None:
    """With N=5, flows 64,64,64,64,1500 make (64, 64) continue with 64 or 1500 (1/2 each); a 1500 drawn at
    position 3 leaves the context (64, 1500) and the token 1500, which training never continued, so the
    chain backs off to the class's token frequencies: 64 four times out of five, 1500 once."""
    n = 400
    payload = np.zeros((n, P), int)
    payload[:, :5] = [64, 64, 64, 64, 1500]
    table = flows(np.full(n, 5), payload, np.zeros((n, P), int), np.full((n, P), 0.01), "backoff")
    gen = MarkovGenerator(n_packets=5, order=2).fit(table)
    s = gen.sample(6000, "backoff", seed=0)
    s.validate()
    assert np.all(s.length == 5)
    early = s.payload[:, 3] == 1500
    assert abs(early.mean() - 0.5) < 0.03
    assert abs(np.mean(s.payload[early, 4] == 1500) - 0.2) < 0.03
    assert abs(np.mean(s.payload[~early, 4] == 1500) - 0.5) < 0.03  # (64, 64) seen: no back-off


def test_gmm_components_and_parameter_count(data: FlowTable) -> None:
    gen = GMMGenerator(components=3, covariance_type="diag").fit(data)
    weights = gen.tables_["weights"]
    assert weights.shape == (4, 3)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    assert gen.num_parameters() == 4 * 3 * (1 + 40 + 40)
    gen.sample(200, "periodic", seed=0).validate()


def test_bad_hyperparameters_and_input_raise_ntg_errors(data: FlowTable) -> None:
    with pytest.raises(NtgError, match="order"):
        create_generator("markov", order=3)
    with pytest.raises(NtgError, match="covariance_type"):
        create_generator("gmm", covariance_type="tied-ish")
    with pytest.raises(NtgError, match="empty"):
        MarginalsGenerator().fit(data.take(np.zeros(0, dtype=int)))
    with pytest.raises(NtgError, match="not fitted"):
        BootstrapGenerator().sample(3)
