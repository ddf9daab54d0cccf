"""benchmarks/bench_quality.py: aggregation over split seeds, the target checks, the Markdown, one small real run."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench() -> Any:
    """The benchmark script imported by path (benchmarks/ is no package)."""
    spec = importlib.util.spec_from_file_location("bench_quality", REPO / "benchmarks" / "bench_quality.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_quality"] = module
    spec.loader.exec_module(module)
    return module


def record(dataset: str, seed: int, family: str, ratio: float, fidelity: float, privacy_ok: bool = True) -> dict:
    """A quality cell's record as the benchmark stores it (TRTR 0.8, so TSTR = 0.8 × ratio)."""
    return {"kind": "quality", "dataset": dataset, "seed": seed, "family": family, "ratio": ratio,
            "tstr_f1": 0.8 * ratio, "trtr_f1": 0.8, "fidelity": fidelity, "copy_rate": 0.01,
            "natural_copy_rate": 0.02, "dcr_synth_median": 0.6, "dcr_holdout_median": 0.5, "fit_s": 2.0,
            "params": 1234, "privacy_ok": privacy_ok, "best_epoch": None, "epochs_run": None}


def records(dataset: str, means: dict[str, tuple[float, float]], privacy: dict[str, bool] | None = None) -> list:
    """Two split seeds per family, ±0.02 around the given (TSTR/TRTR, fidelity) means."""
    privacy = privacy or {}
    return [record(dataset, seed, family, ratio + d, fid + d, privacy.get(family, True) or seed == 0)
            for family, (ratio, fid) in means.items() for seed, d in ((0, -0.02), (1, 0.02))]


def statuses(checks: list[dict[str, Any]], target: str, dataset: str) -> list[str]:
    return [c["status"] for c in checks if c["target"] == target and c["dataset"] == dataset]


def test_aggregate_mean_and_std_over_split_seeds(bench: Any) -> None:
    aggs = bench.aggregate([record("requet", 0, "markov", 0.8, 0.1), record("requet", 1, "markov", 1.0, 0.3, False)])
    agg = aggs["requet"]["markov"]
    assert agg["ratio"]["mean"] == pytest.approx(0.9) and agg["ratio"]["std"] == pytest.approx(0.1)
    assert agg["fidelity"]["mean"] == pytest.approx(0.2) and agg["fidelity"]["n"] == 2
    assert (agg["privacy_ok"], agg["n"], agg["seeds"], agg["params"]) == (1, 2, [0, 1], 1234)


def test_targets_pass(bench: Any) -> None:
    good = {"markov": (0.91, 0.20), "transformer": (0.97, 0.10), "ssm": (0.93, 0.15), "diffusion": (0.95, 0.12)}
    checks = bench.check_targets(bench.aggregate(records("iot-sentinel", good)))
    for target, n in (("a", 3), ("b", 1), ("c", 1), ("d", 1), ("e", 4)):
        assert statuses(checks, target, "iot-sentinel") == ["PASS"] * n, target


def test_targets_fail_and_not_applicable(bench: Any) -> None:
    # iot-sentinel: diffusion below markov (a, d), best GenAI only +0.02 (b), transformer < 0.95 with markov ≥ 0.9
    # (c), ssm's copies fail the privacy gate on one seed (e); requet: markov < 0.9, so (c) does not apply
    bad = {"markov": (0.92, 0.20), "transformer": (0.94, 0.10), "ssm": (0.93, 0.25), "diffusion": (0.85, 0.12)}
    recs = records("iot-sentinel", bad, privacy={"ssm": False})
    recs += records("requet", {"markov": (0.80, 0.2), "transformer": (0.90, 0.1)})
    checks = bench.check_targets(bench.aggregate(recs))
    by_family = {c["detail"].split(":")[0]: c["status"] for c in checks
                 if c["target"] in ("a", "e") and c["dataset"] == "iot-sentinel"}
    assert statuses(checks, "a", "iot-sentinel") == ["PASS", "FAIL", "FAIL"]  # ssm: fidelity worse than markov
    assert statuses(checks, "b", "iot-sentinel") == ["FAIL"]
    assert statuses(checks, "c", "iot-sentinel") == ["FAIL"]
    assert statuses(checks, "d", "iot-sentinel") == ["FAIL"]
    assert by_family["ssm"] == "FAIL" and statuses(checks, "e", "iot-sentinel").count("FAIL") == 1
    assert statuses(checks, "c", "requet") == ["N/A"] and statuses(checks, "d", "requet") == []
    assert statuses(checks, "b", "requet") == ["PASS"]


def test_target_b_is_not_applicable_where_no_generator_can_reach_it(bench: Any) -> None:
    # a saturated set: TRTR F1 1.0 on both seeds caps every mean TSTR/TRTR at 1.0, so markov 1.0 + 0.05 is out of reach
    recs = [{**record("requet", seed, family, ratio, 0.1), "trtr_f1": 1.0, "tstr_f1": ratio}
            for family, ratio in (("markov", 1.0), ("transformer", 0.99)) for seed in (0, 1)]
    checks = bench.check_targets(bench.aggregate(recs))
    assert statuses(checks, "b", "requet") == ["N/A"]
    assert "caps the mean ratio at 1.000" in next(c["detail"] for c in checks if c["target"] == "b")
    assert statuses(checks, "a", "requet") == ["FAIL"]  # (a) stays: a generator can reach 1.0


def test_paired_comparison_against_markov_on_the_same_split_seeds(bench: Any) -> None:
    from scipy import stats

    gains = (0.1, 0.2, 0.3)  # the transformer's TSTR/TRTR minus markov's on seeds 0, 1, 2
    recs = [record("ndpi-pcaps", s, "markov", 0.9, 0.20 + 0.01 * s) for s in range(3)]
    recs += [record("ndpi-pcaps", s, "transformer", 0.9 + g, 0.21) for s, g in enumerate(gains)]
    recs += [record("ndpi-pcaps", 0, "ssm", 0.8, 0.1), record("requet", 0, "ssm", 1.0, 0.1)]  # requet: no markov
    paired = bench.paired_against_markov(recs)
    assert set(paired) == {"ndpi-pcaps"} and set(paired["ndpi-pcaps"]) == {"transformer", "ssm"}
    tf = paired["ndpi-pcaps"]["transformer"]
    assert tf["seeds"] == [0, 1, 2] and tf["d_ratio"]["mean"] == pytest.approx(0.2)
    assert tf["d_ratio"]["ci95"] == pytest.approx(stats.t.ppf(0.975, 2) * 0.1 / 3**0.5)
    assert tf["d_fidelity"]["per_seed"] == pytest.approx([-0.01, 0.0, 0.01])  # markov − transformer
    assert tf["level_or_better"] == 2  # seed 0 is better on TSTR/TRTR but worse on fidelity
    assert paired["ndpi-pcaps"]["ssm"]["d_ratio"]["ci95"] is None  # one seed: no interval
    aggs = bench.aggregate(recs)
    text = bench.render_markdown(aggs, bench.check_targets(aggs), [], paired)
    assert "| transformer | +0.200 ± 0.248 | +0.000 ± 0.025 | 2/3 |" in text
    assert "| ssm | -0.100 ± — |" in text


def test_markdown_has_the_numbers_and_verdicts(bench: Any) -> None:
    aggs = bench.aggregate(records("iot-sentinel", {"markov": (0.91, 0.20), "transformer": (0.97, 0.10)}))
    row = {"macro_f1": {"mean": 0.5, "std": 0.01}, "gain": {"mean": 0.25, "std": 0.05}, "fraction": 0.01}
    aug = [{"dataset": "iot-sentinel", "family": "transformer",
            "augmentation": {"fractions": [0.01], "seeds": [0, 1, 2], "rows": [
                {**row, "method": m} for m in ("real_only", "real+synthetic_full", "real+synthetic_fraction",
                                               "real+smote", "real+handcrafted", "real_100")]}}]
    text = bench.render_markdown(aggs, bench.check_targets(aggs), aug)
    assert "## iot-sentinel (split seeds 0, 1)" in text
    assert "| transformer | 1234 | 2.00 ± 0.00 | 0.970 ± 0.020 | 0.776 ± 0.016 | 0.100 ± 0.020 |" in text
    assert "0.010 vs 0.020" in text and "0.600 vs 0.500" in text and "2/2" in text
    assert "- PASS (a) transformer: TSTR/TRTR 0.970 ≥ markov 0.910" in text
    assert "| 0.01 | transformer | refitted on the fraction alone | 0.500 ± 0.010 | 0.250 ± 0.050 |" in text
    assert "| 0.01 | SMOTE | — |" in text and "| 0.01 | hand-crafted | — |" in text


def test_small_sets_get_more_split_and_scoring_seeds_and_the_headers_say_which(bench: Any) -> None:
    from ntg.models.data_rules import SMALL_DATA_FLOWS

    assert bench.default_seeds(SMALL_DATA_FLOWS - 1) == (tuple(range(10)), (0, 1, 2))
    assert bench.default_seeds(SMALL_DATA_FLOWS) == ((0, 1, 2, 3, 4), (0,))
    recs = [record("requet", seed, "markov", 1.0, 0.1) for seed in range(10)]
    recs += [record("iot-sentinel", seed, "markov", 0.8, 0.1) for seed in (0, 2, 5)]
    text = bench.render_markdown(bench.aggregate(recs), [], [])
    assert "## requet (split seeds 0–9)" in text and "## iot-sentinel (split seeds 0, 2, 5)" in text


def test_a_cell_scored_with_several_seeds_keeps_the_means_and_the_strictest_privacy(bench: Any) -> None:
    def run(tstr: float, trtr: float, copy: float, ok: bool) -> dict[str, Any]:
        return {"fidelity": 0.2, "tstr_f1": tstr, "trtr_f1": trtr, "copy_rate": copy, "natural_copy_rate": 0.01,
                "dcr_synth_median": 1.0, "dcr_holdout_median": 1.2, "eval_seconds": 2.0, "privacy_ok": ok}

    scores = bench.mean_scores([run(0.4, 0.5, 0.02, True), run(0.6, 0.5, 0.04, False)])
    assert scores["ratio"] == pytest.approx(1.0) and scores["ratio_per_scoring_seed"] == pytest.approx([0.8, 1.2])
    assert scores["copy_rate"] == pytest.approx(0.03) and scores["eval_seconds"] == pytest.approx(4.0)
    assert scores["privacy_ok"] is False  # the gate failed for one scoring seed
    assert bench.mean_scores([run(0.4, 0.0, 0.0, True)])["ratio"] is None  # TRTR F1 0: no ratio
    assert "ratio_per_scoring_seed" not in bench.mean_scores([run(0.4, 0.5, 0.0, True)])


def test_smoke_run_on_requet(bench: Any, datasets_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "out" / "quality"
    argv = ["--datasets", "requet", "--seeds", "0", "--families", "markov", "gmm", "--aug-datasets", "requet",
            "--aug-families", "markov", "--aug-fractions", "0.05", "--aug-seeds", "0", "--max-flows-per-class", "20",
            "--jobs", "1", "--data-root", str(datasets_root), "--cache", str(tmp_path / "cache"), "--out", str(out)]
    assert bench.main(argv) == 0
    result = json.loads(out.with_suffix(".json").read_text())
    assert {(r["dataset"], r["seed"], r["family"]) for r in result["records"]} == {("requet", 0, "markov"),
                                                                                   ("requet", 0, "gmm")}
    assert all(0 <= r["tstr_f1"] <= 1 and r["ratio"] is not None for r in result["records"])
    assert set(result["aggregates"]["requet"]) == {"markov", "gmm"} and result["errors"] == []
    assert [a["family"] for a in result["augmentation"]] == ["markov"]
    assert result["environment"]["device"] in ("cpu", "cuda") and result["wall_s"] > 0
    assert "## requet" in out.with_suffix(".md").read_text()
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert len(list((tmp_path / "cache" / "cells").glob("*.json"))) == 3
    capsys.readouterr()
    assert bench.main(argv) == 0  # a re-run reuses every stored cell
    assert capsys.readouterr().out.count("(cached)") == 3
    key = bench.scoring_key
    monkeypatch.setattr(bench, "scoring_key", lambda kind: key(kind) if kind == "quality" else "other augmentation")
    assert bench.main(argv) == 0  # only the augmentation code changed: the quality cells are reused
    assert capsys.readouterr().out.count("(cached)") == 2
    monkeypatch.setattr(bench, "scoring_key", lambda kind: f"other evaluation code ({kind})")
    assert bench.main(argv) == 0  # the evaluation changed: the stored generators are scored again, not refitted
    assert capsys.readouterr().out.count("(stored generator scored again)") == 2
    rescored = json.loads(out.with_suffix(".json").read_text())["records"]
    assert [(r["rescored"], r["fit_s"]) for r in rescored] == [(True, r["fit_s"]) for r in result["records"]]
    assert bench.main([*argv, "--fresh", "gmm"]) == 0  # gmm changed: its cell is refitted, markov's reused
    assert capsys.readouterr().out.count("(cached)") == 2
    refitted = {r["family"]: r for r in json.loads(out.with_suffix(".json").read_text())["records"]}
    assert not refitted["gmm"]["rescored"] and refitted["markov"]["rescored"]


def test_a_new_cache_is_seeded_from_an_earlier_runs_json(bench: Any, datasets_root: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    argv = ["--datasets", "requet", "--seeds", "0", "--scoring-seeds", "0", "--families", "markov", "gmm",
            "--aug-datasets", "none", "--max-flows-per-class", "20", "--jobs", "1", "--data-root", str(datasets_root)]
    earlier = tmp_path / "earlier"

    def run(cache: str, *extra: str) -> str:
        """Run with a new cache, seeded from the earlier run; what it printed."""
        assert bench.main([*argv, "--cache", str(tmp_path / cache), "--out", str(tmp_path / cache / "quality"),
                           "--reuse", f"{earlier}.json", *extra]) == 0
        return capsys.readouterr().out

    assert bench.main([*argv, "--cache", str(tmp_path / "cache"), "--out", str(earlier)]) == 0
    records = json.loads(earlier.with_suffix(".json").read_text())["records"]
    capsys.readouterr()
    out = run("reused")  # both cells come from the earlier run, none is computed
    assert "took 2 of 2 cells" in out and out.count("(cached)") == 2
    assert json.loads((tmp_path / "reused" / "quality.json").read_text())["records"] == records
    out = run("gmm-changed", "--fresh", "gmm")  # markov's cell alone is reused
    assert "took 1 of 2 cells" in out and out.count("(cached)") == 1
    out = run("requet-gmm-changed", "--fresh", "requet:gmm")  # the same, named by set and family
    assert "took 1 of 2 cells" in out and out.count("(cached)") == 1
    assert "took 2 of 2 cells" in run("other-set-changed", "--fresh", "ndpi-pcaps:gmm")
    monkeypatch.setattr(bench, "scoring_key", lambda kind: f"other evaluation code ({kind})")
    assert "took 0 of 2 cells" in run("scoring-changed")  # scored by other code: nothing is reused
    with pytest.raises(SystemExit):
        bench.main([*argv, "--reuse", str(tmp_path / "missing.json")])
    assert "missing.json: no such file" in capsys.readouterr().err


def test_a_users_own_flow_file_is_benchmarked_under_its_path(bench: Any, datasets_root: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    source = datasets_root / "cesnet-miner22" / "CESNET-MINER22-PPI" / "input" / "miner22-ppi-sampled.csv"
    assert bench.cache_name("requet") == "requet"
    name = bench.cache_name(str(source))
    assert name.startswith("miner22-ppi-sampled-") and name != bench.cache_name(str(tmp_path / source.name))
    out = tmp_path / "quality"
    argv = ["--datasets", str(source), "--seeds", "0", "--scoring-seeds", "0", "1", "--families", "markov",
            "--aug-datasets", "--max-flows-per-class", "30", "--jobs", "1", "--cache", str(tmp_path / "cache"),
            "--out", str(out)]
    assert bench.main(argv) == 0
    result = json.loads(out.with_suffix(".json").read_text())
    (record,) = result["records"]
    assert record["dataset"] == str(source) and len(record["ratio_per_scoring_seed"]) == 2
    assert (tmp_path / "cache" / "cells" / f"quality-{name}-s0-markov.json").exists()
    assert result["settings"]["scoring_seeds"] == {str(source): [0, 1]}
