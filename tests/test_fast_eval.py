"""The fast evaluation profile on a real prepared dataset (eight iot-sentinel device types)."""

from __future__ import annotations

import json
import math
from pathlib import Path

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


# ---------------------------------------------------------------------------------------------- evaluate steps
def test_forest_jobs_do_not_change_predictions(iot_small):
    from ntg.evaluation.classifiers import make_classifier

    train, val = iot_small.train.first(10), iot_small.val.first(10)
    one = make_classifier("rf", n_jobs=1, n_estimators=20).fit(train).predict(val)
    two = make_classifier("rf", n_jobs=2, n_estimators=20).fit(train).predict(val)
    assert list(one) == list(two)


@pytest.fixture(scope="module")
def markov_run(iot_small, tmp_path_factory):
    from ntg.training.runs import train_run

    return train_run("markov", iot_small.root, tmp_path_factory.mktemp("fast_eval") / "run", progress=False)


def test_fast_profile_report_matches_fast_scores(iot_small, markov_run, tmp_path):
    from ntg.evaluation.evaluate import evaluate
    from ntg.models.base import load_generator

    out = tmp_path / "report"
    report = evaluate(iot_small.root, generator=markov_run, out_dir=out, profile="fast", progress=False,
                      classifier_options={"rf": RF_SMALL})
    assert report["settings"]["profile"] == "fast" and report["settings"]["split_seeds"] == [0]
    assert {a: s["status"] for a, s in report["settings"]["axes_status"].items()} == {
        "fidelity": "done", "privacy": "done", "tstr": "done"}
    assert report["augmentation"] is None and report["cost"] is None
    assert report["fidelity"]["reference"] == "val" and report["fidelity"]["n_real"] == len(iot_small.val)
    fast = fast_scores(load_generator(markov_run), iot_small, classifier_options=RF_SMALL)
    assert report["fidelity"]["score"] == pytest.approx(fast["fidelity"])
    assert report["tstr"]["per_seed"][0]["tstr"]["macro_f1"] == pytest.approx(fast["tstr_f1"])
    assert report["privacy"]["copy_rate"] == pytest.approx(fast["copy_rate"])
    assert report["privacy"]["privacy_ok"] is fast["privacy_ok"] is True
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["settings"]["axes_status"]["tstr"]["status"] == "done" and on_disk["warnings"] == []
    assert (out / "figures" / "distributions.png").exists()


def test_a_failing_axis_keeps_the_others(iot_small, markov_run, tmp_path, monkeypatch):
    from ntg.evaluation import axes
    from ntg.evaluation.evaluate import EvaluationFailed, evaluate

    def broken(ctx):
        raise RuntimeError("disk on fire")

    monkeypatch.setitem(axes.AXIS_STEPS, "privacy", broken)
    out = tmp_path / "report"
    with pytest.raises(EvaluationFailed, match="axis 'privacy' failed: RuntimeError: disk on fire") as caught:
        evaluate(iot_small.root, generator=markov_run, out_dir=out, axes=("fidelity", "privacy", "tstr"),
                 split_seeds=1, classifiers=("rf",), classifier_options={"rf": RF_SMALL}, progress=False)
    assert "\n" not in str(caught.value)
    on_disk = json.loads((out / "report.json").read_text())
    status = on_disk["settings"]["axes_status"]
    assert status["privacy"]["status"] == "failed" and "disk on fire" in status["privacy"]["traceback"]
    assert status["fidelity"]["status"] == status["tstr"]["status"] == "done"
    assert on_disk["fidelity"]["score"] > 0 and on_disk["tstr"] is not None and on_disk["privacy"] is None
    assert "axis privacy failed" in (out / "report.md").read_text()
    assert caught.value.report["tstr"] is not None


def test_generator_from_other_data_is_named(iot_small, iot_small_captures, markov_run, tmp_path, capsys):
    """A dataset of other captures (two known device types, one unknown): warned about, per-class handling."""
    from ntg.data.prepare import PrepareOptions, prepare_dataset
    from ntg.evaluation.evaluate import evaluate

    captures = tmp_path / "captures"
    captures.mkdir()
    for device in ("HueBridge", "Aria"):
        (captures / device).symlink_to((iot_small_captures / device).resolve(), target_is_directory=True)
    (captures / "Lightify").symlink_to((iot_small_captures / "Aria").resolve().parent / "Lightify",
                                       target_is_directory=True)
    options = PrepareOptions(labels="dir", device_only=True, min_flows_per_class=10)
    other = prepare_dataset(str(captures), tmp_path / "other", options, jobs=1, progress=False, log=lambda m: None)
    report = evaluate(other.root, generator=markov_run, axes=("fidelity", "tstr"), split_seeds=1,
                      classifiers=("rf",), classifier_options={"rf": RF_SMALL}, progress=False)
    fitted_on = [w for w in report["warnings"] if "was fitted on" in w]
    assert len(fitted_on) == 1 and str(other.root) in fitted_on[0]
    assert str(Path(iot_small.root).resolve()) in fitted_on[0]
    assert any("Lightify" in w and "no synthetic flows" in w for w in report["warnings"])
    assert report["tstr"]["per_seed"][0]["tstr"]["per_class_f1"]["Lightify"] == 0.0
    assert "was fitted on" in capsys.readouterr().err

    table = create_generator("marginals").fit(other.train.first(10)).sample(50, seed=0)
    table.meta["label"] = "NotADevice"
    with pytest.raises(NtgError, match="knows none of the classes"):
        evaluate(other.root, synthetic=table, axes=("fidelity",), progress=False)


def test_cli_fast_profile_and_a_failed_axis(iot_small, markov_run, tmp_path, monkeypatch, capsys):
    from ntg.cli import main
    from ntg.evaluation import axes

    out = tmp_path / "fast"
    argv = ["evaluate", "--data", str(iot_small.root), "--generator", str(markov_run), "--quiet"]
    assert main([*argv, "--out", str(out), "--profile", "fast"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["profile"] == "fast" and report["settings"]["classifiers"] == ["rf"]
    assert report["fidelity"]["reference"] == "val" and report["augmentation"] is None
    capsys.readouterr()

    def broken(ctx):
        raise ValueError("bad\nthing")

    monkeypatch.setitem(axes.AXIS_STEPS, "cost", broken)
    failed = tmp_path / "failed"
    assert main([*argv, "--out", str(failed), "--axes", "cost", "fidelity"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ntg: error:")]
    assert len(err) == 1 and "axis 'cost' failed: ValueError: bad thing" in err[0] and "report.md" in err[0]
    kept = json.loads((failed / "report.json").read_text())
    assert kept["fidelity"]["score"] > 0 and kept["settings"]["axes_status"]["cost"]["status"] == "failed"
