"""TSTR/TRTR, classifier features and the two classifiers, on real CESNET flows and constructed ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from evaluation_data import cesnet_flows, constructed_flows, random_split

from ntg.data.schema import FlowTable
from ntg.errors import NtgError
from ntg.evaluation.classifiers import make_classifier
from ntg.evaluation.features import flat_features, flows_from_flat, series_features
from ntg.evaluation.tstr import classification_scores, mean_std, synthetic_like, tstr_trtr

RF_FAST = {"n_estimators": 60}


@pytest.fixture(scope="module")
def real_split(datasets_root: Path) -> tuple[FlowTable, FlowTable]:
    """1,600 real CESNET flows (Miner / Other) as disjoint train and test halves."""
    flows = cesnet_flows(datasets_root, n_packets=10)
    keep = np.random.default_rng(0).permutation(len(flows))[:1600]
    return random_split(flows.take(np.sort(keep)), seed=1)


def test_flat_features_mask_padding_and_round_trip() -> None:
    flows = FlowTable.concat(
        [
            constructed_flows([[10, 20, 30]], direction=[0, 1, 0], iat=[0.0, 0.5, 0.25], label="a"),
            constructed_flows([[7, 0, 0]], direction=[1, 0, 0], label="b"),
        ]
    )
    flows.n_packets[1] = 1  # second flow: a single packet
    flows.payload[1, 1:] = 0
    x = flat_features(flows, 3)
    assert x.shape == (2, 10)
    np.testing.assert_allclose(x[0], [1, 10, 0, -1, 20, 0.5, 1, 30, 0.25, 3])
    np.testing.assert_allclose(x[1], [-1, 7, 0, 0, 0, 0, 0, 0, 0, 1])  # no packet → all zeros
    back = flows_from_flat(x, flows.labels, 3)
    np.testing.assert_array_equal(back.payload, flows.payload)
    np.testing.assert_array_equal(back.direction[0], flows.direction[0])
    np.testing.assert_array_equal(back.length, [3, 1])
    series = series_features(flows, 4)  # wider than stored: padded
    assert series.shape == (2, 4, 4) and series.dtype == np.float32
    np.testing.assert_array_equal(series[:, 3], [[1, 1, 1, 0], [1, 0, 0, 0]])


def test_classification_scores_by_hand() -> None:
    y_true = np.array(["a"] * 10 + ["b"] * 3)
    y_pred = np.array(["a"] * 9 + ["b"] + ["b"] * 2 + ["a"])
    s = classification_scores(y_true, y_pred, classes=["a", "b", "c"])
    f1_a = 2 * 9 / (2 * 9 + 1 + 1)
    f1_b = 2 * 2 / (2 * 2 + 1 + 1)
    assert s["per_class_f1"] == pytest.approx({"a": f1_a, "b": f1_b})
    assert s["macro_f1"] == pytest.approx((f1_a + f1_b) / 2)
    assert s["macro_f1_supported"] == pytest.approx(f1_a)  # only "a" has >= 10 test flows
    assert s["accuracy"] == pytest.approx(11 / 13)
    assert s["confusion"] == [[9, 1, 0], [1, 2, 0], [0, 0, 0]]
    assert mean_std([0.5, None, 1.0]) == {"mean": 0.75, "std": 0.25, "n": 2}


def test_tstr_on_real_copies_reproduces_trtr(real_split) -> None:
    train, test = real_split
    copies = synthetic_like(train, train, seed=3)  # the real training flows, reshuffled
    assert sorted(copies.labels) == sorted(train.labels)
    result = tstr_trtr(train, test, copies, "rf", n_packets=10, seed=0, options=RF_FAST)
    assert result["trtr"]["macro_f1"] > 0.8  # real flows are separable: the check below means something
    assert abs(result["tstr"]["macro_f1"] - result["trtr"]["macro_f1"]) < 0.03
    assert result["ratio"] == pytest.approx(result["tstr"]["macro_f1"] / result["trtr"]["macro_f1"])


def test_shuffled_labels_score_far_lower(real_split) -> None:
    train, test = real_split
    wrong = train.take(np.arange(len(train)))
    wrong.meta["label"] = np.random.default_rng(0).permutation(wrong.labels)
    result = tstr_trtr(train, test, wrong, "rf", n_packets=10, seed=0, options=RF_FAST)
    assert result["tstr"]["macro_f1"] < 0.65 * result["trtr"]["macro_f1"]
    assert result["ratio"] < 0.65


def test_cnn_learns_real_classes_and_is_seeded(real_split) -> None:
    train, test = real_split
    first = make_classifier("cnn", n_packets=10, seed=0, epochs=15).fit(train)
    pred = first.predict(test)
    score = classification_scores(test.labels, pred)["macro_f1"]
    assert score > 0.75
    again = make_classifier("cnn", n_packets=10, seed=0, epochs=15).fit(train).predict(test)
    np.testing.assert_array_equal(pred, again)


def test_synthetic_like_from_table_matches_counts_and_rejects_foreign_labels(real_split) -> None:
    train, _ = real_split
    pool = train.take(np.arange(50))  # fewer flows than asked: drawn with replacement
    out = synthetic_like(pool, train, seed=0)
    counts = dict(zip(*np.unique(out.labels, return_counts=True), strict=True))
    present = set(pool.labels)
    expected = dict(zip(*np.unique(train.labels, return_counts=True), strict=True))
    assert counts == {c: n for c, n in expected.items() if c in present}
    foreign = pool.take(np.arange(5))
    foreign.meta["label"] = "nobody"
    with pytest.raises(NtgError, match="none of the classes"):
        synthetic_like(foreign, train)
    with pytest.raises(NtgError, match="0 flows"):
        make_classifier("rf").fit(FlowTable.empty(10))


def test_repeated_fits_come_from_the_cache_and_match_a_fresh_fit(real_split) -> None:
    from ntg.evaluation import tstr

    train, test = real_split
    tstr._PREDICTIONS.clear()
    first = tstr.train_and_score(train, test, "rf", 10, 0, None, {**RF_FAST, "n_jobs": 1})
    again = tstr.train_and_score(train, test, "rf", 10, 0, None, {**RF_FAST, "n_jobs": 2})  # jobs: same model
    assert len(tstr._PREDICTIONS) == 1 and again == first
    fresh = make_classifier("rf", n_packets=10, seed=0, **RF_FAST).fit(train).predict(test)
    assert classification_scores(test.labels, fresh) == first
    tstr.train_and_score(train, test, "rf", 10, 1, None, RF_FAST)  # another seed is another fit
    tstr.train_and_score(train.take(np.arange(400)), test, "rf", 10, 0, None, RF_FAST)  # other flows too
    assert len(tstr._PREDICTIONS) == 3
