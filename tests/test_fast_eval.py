"""The fast evaluation profile on a real prepared dataset (eight iot-sentinel device types)."""

from __future__ import annotations

import math

import pytest

from ntg.errors import NtgError
from ntg.evaluation.fast import SCORE_KEYS, fast_scores
from ntg.evaluation.privacy import privacy_report
from ntg.models import create_generator

RF_SMALL = {"n_estimators": 30}


@pytest.fixture(scope="module")
def markov(iot_small):
    return create_generator("markov").fit(iot_small.train.first(10), iot_small.val.first(10))


def test_fast_scores_finite_and_private_for_markov(iot_small, markov):
    scores = fast_scores(markov, iot_small, classifier_options=RF_SMALL)
    assert set(SCORE_KEYS) | {"privacy_ok"} == set(scores)
    for key in SCORE_KEYS:
        assert isinstance(scores[key], float) and math.isfinite(scores[key]), key
    assert 0.0 < scores["fidelity"] < 0.5
    assert 0.0 < scores["tstr_f1"] <= 1.0 and 0.0 < scores["trtr_f1"] <= 1.0
    assert scores["copy_rate"] < 0.5
    assert scores["privacy_ok"] is True


def test_fast_scores_match_the_full_privacy_axis(iot_small, markov):
    """Same definitions as the report: copy rates and DCR medians of privacy_report on the same flows."""
    from ntg.evaluation.tstr import synthetic_like

    train, val = iot_small.train.first(10), iot_small.val.first(10)
    full = privacy_report(train, val, synthetic_like(markov, train, seed=3))
    fast = fast_scores(markov, iot_small, seed=3, classifier_options=RF_SMALL)
    assert fast["copy_rate"] == pytest.approx(full["copy_rate"])
    assert fast["natural_copy_rate"] == pytest.approx(full["natural_copy_rate"])
    assert fast["dcr_synth_median"] == pytest.approx(full["dcr_median"])
    assert fast["dcr_holdout_median"] == pytest.approx(full["dcr_test_median"])


def test_bootstrap_fails_the_privacy_gate(iot_small):
    boot = create_generator("bootstrap").fit(iot_small.train.first(10))
    scores = fast_scores(boot, iot_small, classifier_options=RF_SMALL)
    assert scores["copy_rate"] == 1.0
    assert scores["dcr_synth_median"] == 0.0
    assert scores["privacy_ok"] is False


def test_synthetic_table_and_bad_split(iot_small, markov):
    synth = markov.sample(2000, seed=1)
    scores = fast_scores(synth, iot_small, split="test", classifier_options=RF_SMALL)
    assert math.isfinite(scores["fidelity"]) and scores["privacy_ok"] is True
    with pytest.raises(NtgError, match="split 'val' or 'test'"):
        fast_scores(markov, iot_small, split="train")
    with pytest.raises(NtgError, match="exceeds the generator's n_packets"):
        fast_scores(markov, iot_small, n_packets=markov.n_packets + 1)
