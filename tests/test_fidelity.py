"""Fidelity metrics on constructed inputs with known answers, and on real traffic (real vs real)."""

from __future__ import annotations

import numpy as np
import pytest
from evaluation_data import cesnet_flows, constructed_flows, random_split
from scipy.spatial.distance import jensenshannon

from ntg.data.schema import FlowTable
from ntg.errors import NtgError
from ntg.evaluation.distances import jsd, log_iat, robust_scale
from ntg.evaluation.fidelity import SCORE_PARTS, fidelity_report, static_metrics
from ntg.evaluation.joint import flow_features, joint_metrics, raw_flow_features
from ntg.evaluation.temporal import pooled_acf, temporal_metrics, transition_matrix

N = 10


def random_flows(n: int, seed: int, label: str = "a", payload_shift: int = 0) -> FlowTable:
    """Flows with random lengths 1..N, directions, payloads and log-uniform iats."""
    rng = np.random.default_rng(seed)
    length = rng.integers(1, N + 1, n)
    mask = np.arange(N)[None, :] < length[:, None]
    payload = np.where(mask, rng.integers(0, 1400, (n, N)) + payload_shift, 0)
    iat = np.where(mask, 10.0 ** rng.uniform(-4, 1, (n, N)), 0.0)
    iat[:, 0] = 0.0
    flows = constructed_flows(payload, np.where(mask, rng.integers(0, 2, (n, N)), 0), iat, label)
    flows.n_packets = length
    return flows


def corrupted(flows: FlowTable, seed: int = 1) -> FlowTable:
    """The same flows with the packets of each flow in a random order (marginals kept, sequence lost)."""
    rng = np.random.default_rng(seed)
    out = flows.take(np.arange(len(flows)))
    for i, length in enumerate(out.length):
        order = rng.permutation(length)
        for name in ("payload", "direction", "iat"):
            getattr(out, name)[i, :length] = getattr(out, name)[i, order]
    out.iat[:, 0] = 0.0
    return out


# ---------------------------------------------------------------------------------------- distances
def test_jsd_matches_scipy_and_bounds():
    p, q = np.array([3, 1, 0, 6]), np.array([1, 1, 5, 3])
    assert jsd(p, q) == pytest.approx(jensenshannon(p, q, base=2) ** 2)
    assert jsd(p, p) == pytest.approx(0.0, abs=1e-12)
    assert jsd([1, 0], [0, 1]) == pytest.approx(1.0)
    assert np.isnan(jsd([0, 0], [1, 0]))


# ---------------------------------------------------------------------------------------- static
def test_static_identical_sets_are_zero():
    flows = random_flows(300, seed=0)
    metrics = static_metrics(flows, flows)
    assert all(v == pytest.approx(0.0, abs=1e-9) for v in metrics.values())
    assert {"jsd_direction_pos1", f"jsd_payload_pos{N}", "w1_length"} <= set(metrics)


def test_static_disjoint_supports_are_maximal():
    real = constructed_flows(np.full((50, 4), 10), 0)
    synth = constructed_flows(np.full((50, 6), 1000), 1)
    metrics = static_metrics(real, synth)  # compared on the common N = 4
    assert metrics["jsd_direction"] == pytest.approx(1.0)
    assert metrics["jsd_payload"] == pytest.approx(1.0)
    assert metrics["jsd_payload_pos3"] == pytest.approx(1.0)
    assert metrics["ks_payload"] == pytest.approx(1.0)
    real_lengths = constructed_flows(np.full((40, N), 10), 0)
    real_lengths.n_packets = np.full(40, 3)
    real_lengths.payload[:, 3:] = 0
    synth_lengths = constructed_flows(np.full((40, N), 10), 0)
    synth_lengths.n_packets = np.full(40, 5)
    synth_lengths.payload[:, 5:] = 0
    metrics = static_metrics(real_lengths, synth_lengths)
    assert metrics["jsd_length"] == pytest.approx(1.0)
    assert metrics["w1_length"] == pytest.approx(2 / N)


def test_static_shifted_payload_and_iat_give_the_shift_over_the_normaliser():
    real = random_flows(400, seed=1)
    synth = real.take(np.arange(len(real)))
    synth.payload = np.where(real.mask, real.payload + 100, 0).astype(np.int32)
    synth.iat = real.iat * 10.0  # log10 shift of 1 decade (iat >= 1e-4 >> the 1e-6 floor)
    metrics = static_metrics(real, synth)
    assert metrics["w1_payload"] == pytest.approx(100 / robust_scale(real.payload[real.mask]), rel=1e-9)
    real_log = log_iat(real.iat[:, 1:][real.mask[:, 1:]])
    assert metrics["w1_log_iat"] == pytest.approx(1.0 / robust_scale(real_log), rel=1e-3)
    assert metrics["jsd_direction"] == pytest.approx(0.0, abs=1e-12)


def test_ks_of_a_known_case():
    real = constructed_flows(np.full((40, 2), 100), 0)
    synth = constructed_flows(np.concatenate([np.full((20, 2), 100), np.full((20, 2), 200)]), 0)
    assert static_metrics(real, synth)["ks_payload"] == pytest.approx(0.5)


# ---------------------------------------------------------------------------------------- temporal
def test_acf_of_alternating_and_constant_series():
    alternating = np.tile([100, 0] * (N // 2), (30, 1))
    acf = pooled_acf(alternating, np.ones_like(alternating, dtype=bool), 5)
    np.testing.assert_allclose(acf, [-1, 1, -1, 1, -1])
    per_flow_constant = np.repeat(np.arange(30)[:, None] * 10, N, axis=1)
    acf = pooled_acf(per_flow_constant, np.ones_like(per_flow_constant, dtype=bool), 5)
    np.testing.assert_allclose(acf, np.ones(5))
    real = constructed_flows(alternating, 0)
    synth = constructed_flows(per_flow_constant, 0)
    # lags 1..5: squared differences 4, 0, 4, 0, 4
    assert temporal_metrics(real, synth)["acf_mse_payload"] == pytest.approx(12 / 5)


def test_acf_stays_within_one_when_only_a_few_long_flows_hold_the_pairs():
    # most flows hold one packet near the mean, a few long ones swing far from it: the pairs at every lag come
    # from the long flows only, where an estimate divided by the variance of all packets reached about 9
    values = np.full((100, N), 0.0)
    mask = np.zeros((100, N), dtype=bool)
    mask[:, 0] = True
    values[:95, 0] = 100.0
    values[95:] = np.where(np.arange(N) % 2, 1000.0, -800.0)
    mask[95:] = True
    acf = pooled_acf(values, mask, 5)
    assert np.all(np.abs(acf) <= 1.0 + 1e-12)
    np.testing.assert_allclose(acf, [-1, 1, -1, 1, -1], atol=0.1)  # the long flows alternate about the mean
    assert pooled_acf(np.full((5, N), 7.0), np.ones((5, N), dtype=bool), 5).tolist() == [0.0] * 5


def test_transition_matrices_and_their_l1():
    mixed = constructed_flows(np.ones((5, 4)), [0, 0, 1, 1])
    np.testing.assert_allclose(transition_matrix(mixed), [[0.5, 0.5], [0.0, 1.0]])
    alternating = constructed_flows(np.ones((5, 4)), [0, 1, 0, 1])
    np.testing.assert_allclose(transition_matrix(alternating), [[0, 1], [1, 0]])
    constant = constructed_flows(np.ones((5, 4)), [0, 0, 0, 0])
    np.testing.assert_allclose(transition_matrix(constant), [[1, 0], [0, 0]])
    assert temporal_metrics(alternating, constant)["transition_l1"] == pytest.approx(3.0)
    assert temporal_metrics(mixed, alternating)["transition_l1"] == pytest.approx(3.0)
    assert temporal_metrics(mixed, constant)["transition_l1"] == pytest.approx(2.0)


def test_drift_of_a_shifted_series_and_of_identical_sets():
    real = random_flows(300, seed=2)
    assert temporal_metrics(real, real) == pytest.approx(
        {k: 0.0 for k in temporal_metrics(real, real)}, abs=1e-12
    )
    synth = real.take(np.arange(len(real)))
    synth.payload = np.where(real.mask, real.payload + 50, 0).astype(np.int32)
    expected = 50 / real.payload[real.mask].std()
    assert temporal_metrics(real, synth)["drift_payload"] == pytest.approx(expected)


# ---------------------------------------------------------------------------------------- joint
def test_flow_features_layout_and_standardisation():
    flows = random_flows(200, seed=3)
    raw = raw_flow_features(flows)
    assert raw.shape == (200, 3 * N + 1)
    short = np.flatnonzero(flows.length < N)[0]
    assert np.all(raw[short, 3 * flows.length[short] : 3 * N] == 0)  # no packet -> 0
    assert set(np.unique(raw[:, 0])) <= {-1.0, 1.0}
    x = flow_features(flows)
    varying = raw.std(axis=0) > 0
    np.testing.assert_allclose(x[:, varying].mean(axis=0), 0, atol=1e-9)
    np.testing.assert_allclose(x[:, varying].std(axis=0), 1, atol=1e-9)
    other = random_flows(50, seed=4)
    mean, std = raw.mean(axis=0), np.where(raw.std(axis=0) > 1e-12, raw.std(axis=0), 1)
    np.testing.assert_allclose(flow_features(other, reference=flows), (raw_flow_features(other) - mean) / std)


def test_joint_same_distribution_is_indistinguishable():
    real, synth = random_flows(600, seed=5), random_flows(600, seed=6)
    metrics = joint_metrics(real, synth)
    assert abs(metrics["c2st_auc"] - 0.5) < 0.08
    assert abs(metrics["mmd2"]) < 0.01
    identical = joint_metrics(real, real)
    assert identical["precision"] == pytest.approx(1.0)
    assert identical["recall"] == pytest.approx(1.0)
    assert identical["coverage"] == pytest.approx(1.0)
    assert identical["density"] == pytest.approx(1.0, abs=0.2)
    assert abs(identical["mmd2"]) < 2 / len(real)  # the unbiased estimate of 0 is O(1/n)


def test_joint_disjoint_supports_are_separated():
    real = random_flows(300, seed=7)
    synth = random_flows(300, seed=8, payload_shift=20000)
    metrics = joint_metrics(real, synth)
    assert metrics["c2st_auc"] > 0.99
    assert metrics["mmd2"] > 0.1
    assert metrics["precision"] == pytest.approx(0.0)
    assert metrics["coverage"] == pytest.approx(0.0)


# ---------------------------------------------------------------------------------------- report
def test_report_structure_per_class_and_skips():
    real = FlowTable.concat([random_flows(120, 9, "a"), random_flows(120, 10, "b"), random_flows(5, 11, "c")])
    synth = FlowTable.concat([random_flows(120, 12, "a"), random_flows(120, 13, "b", payload_shift=3000)])
    report = fidelity_report(real, synth, per_class=True, seed=0)
    assert report["n_packets"] == N
    assert set(report["per_class"]) == {"a", "b"}
    assert report["skipped_classes"] == {"c": {"n_real": 5, "n_synth": 0}}
    assert set(report["score_parts"]) == set(SCORE_PARTS)
    for scope in [report["overall"], *report["per_class"].values()]:
        assert set(scope) >= {"static", "temporal", "joint", "score", "score_parts", "n_real", "n_synth"}
        assert all(0.0 <= v <= 1.0 for v in scope["score_parts"].values())
    classes = report["per_class"]
    assert classes["b"]["score"] > classes["a"]["score"] + 0.1  # the shifted class is worse
    assert report["score"] == pytest.approx((classes["a"]["score"] + classes["b"]["score"]) / 2)
    overall_only = fidelity_report(real, synth, per_class=False)
    assert overall_only["per_class"] == {}
    assert overall_only["score"] == pytest.approx(overall_only["overall"]["score"])


def test_report_rejects_empty_synthetic_set():
    with pytest.raises(NtgError, match="synthetic"):
        fidelity_report(random_flows(10, 0), FlowTable.empty(N))


def test_real_vs_real_scores_near_ideal_and_beats_corruptions(datasets_root):
    real, other_real = random_split(cesnet_flows(datasets_root, N), seed=0)
    same = fidelity_report(real, other_real, seed=0)
    assert set(same["per_class"]) == {"Miner", "Other"}
    assert same["score"] < 0.03
    overall = same["overall"]
    assert abs(overall["joint"]["c2st_auc"] - 0.5) < 0.05
    assert overall["joint"]["precision"] > 0.9 and overall["joint"]["recall"] > 0.9
    shuffled = fidelity_report(real, corrupted(other_real), per_class=False, seed=0)
    scaled = other_real.take(np.arange(len(other_real)))
    scaled.payload = (scaled.payload * 2).astype(np.int32)
    doubled = fidelity_report(real, scaled, per_class=False, seed=0)
    assert shuffled["score"] > 5 * overall["score"]
    assert doubled["score"] > 5 * overall["score"]
    assert shuffled["score_parts"]["transition_l1"] > overall["score_parts"]["transition_l1"]
    assert doubled["score_parts"]["jsd_payload"] > 10 * overall["score_parts"]["jsd_payload"]


def test_real_train_vs_test_split_scores_near_ideal(iot_small):
    """Real iot-sentinel flows: held-out captures score far closer to training than a corruption does."""
    train, test = iot_small.train.first(N), iot_small.test.first(N)
    same = fidelity_report(train, test, seed=0)
    shuffled = fidelity_report(train, corrupted(test), seed=0)
    assert same["per_class"], same["skipped_classes"]
    assert same["score"] < 0.1
    assert shuffled["score"] > 2 * same["score"]
    assert same["score_parts"]["c2st"] < shuffled["score_parts"]["c2st"]
