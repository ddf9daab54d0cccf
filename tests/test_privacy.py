"""Privacy metrics: copies are flagged, fresh real flows look natural, noisy copies are near, not exact."""

from __future__ import annotations

import numpy as np
import pytest
from evaluation_data import cesnet_flows, constructed_flows

from ntg.data.schema import FlowTable
from ntg.evaluation.privacy import copy_mask, distance_to_closest_record, privacy_report

N = 10


@pytest.fixture(scope="module")
def real_splits(datasets_root) -> tuple[FlowTable, FlowTable, FlowTable]:
    """Disjoint train (2000), test (1000) and fresh (the rest) real CESNET flows."""
    flows = cesnet_flows(datasets_root, N)
    order = np.random.default_rng(0).permutation(len(flows))
    train, test, fresh = np.split(order, [2000, 3000])
    return flows.take(np.sort(train)), flows.take(np.sort(test)), flows.take(np.sort(fresh))


def test_exact_copy_definition():
    base = constructed_flows(np.array([[100, 200, 0]]), [0, 1, 0], [0.0, 0.0123, 0.5])
    base.n_packets = np.array([12])

    def variant(**change) -> FlowTable:
        flow = base.take([0])
        for name, (pos, value) in change.items():
            getattr(flow, name)[0, pos] = value
        return flow

    same_ms = variant(iat=(1, 0.01234))  # rounds to the same millisecond
    longer_flow = base.take([0])
    longer_flow.n_packets = np.array([40])  # same stored packets, longer biflow
    assert copy_mask(FlowTable.concat([same_ms, longer_flow]), base).tolist() == [True, True]
    different = [variant(iat=(1, 0.0153)), variant(payload=(0, 101)), variant(direction=(2, 1))]
    assert not copy_mask(FlowTable.concat(different), base).any()
    assert copy_mask(variant(iat=(1, 0.01234)), base, iat_resolution=1e-6).tolist() == [False]


def test_copied_training_flows_are_flagged(real_splits):
    train, test, _ = real_splits
    bootstrap = train.take(np.random.default_rng(1).integers(0, len(train), 1000))
    report = privacy_report(train, test, bootstrap)
    assert report["copy_rate"] == 1.0
    assert report["dcr_median"] == 0.0 and report["dcr_p5"] == 0.0
    assert report["dcr_share_below_test_p5"] == 1.0
    assert report["natural_copy_rate"] < 0.5
    assert report["copy_excess"] == pytest.approx(1.0 - report["natural_copy_rate"])
    assert report["flag_memorisation"] is True
    assert (report["n_train"], report["n_test"], report["n_synth"]) == (2000, 1000, 1000)


def test_fresh_real_flows_copy_at_the_natural_rate(real_splits):
    train, test, fresh = real_splits
    report = privacy_report(train, test, fresh)
    assert 0.0 < report["natural_copy_rate"] < 0.5  # short fixed-shape flows do repeat in real traffic
    assert abs(report["copy_excess"]) < report["copy_threshold"]
    assert report["flag_memorisation"] is False
    assert report["dcr_median"] == pytest.approx(report["dcr_test_median"], rel=0.3)
    assert report["dcr_share_below_test_p5"] < 0.2


def test_noise_perturbed_copies_are_close_but_not_exact(real_splits):
    train, test, _ = real_splits
    rng = np.random.default_rng(2)
    noisy = train.take(rng.integers(0, len(train), 1000))
    noisy.payload[:, 0] += 1  # every flow differs from its source in at least one byte
    noisy.iat = noisy.iat * np.exp(rng.normal(0, 0.05, noisy.iat.shape))
    report = privacy_report(train, test, noisy)
    assert report["copy_rate"] < report["natural_copy_rate"]
    assert report["flag_memorisation"] is False
    assert 0.0 < report["dcr_median"] < 0.5 * report["dcr_test_median"]
    dcr = distance_to_closest_record(noisy, train)
    assert np.all(dcr > 0)
