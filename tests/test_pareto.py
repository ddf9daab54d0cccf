"""Pareto fronts and hypervolume on constructed objective sets with known answers, and `ntg pareto` on sweep
folders built from trial records (the layout `ntg sweep` writes), mid-sweep and after a move."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ntg.cli import main
from ntg.errors import NtgError
from ntg.search.pareto import compute_front, hypervolume, load_records, normalise, pareto_mask, write_front
from ntg.search.pareto_plots import plot_axes
from ntg.utils.io import write_json

UNIT = np.array([[0.0, 0.0], [1.0, 1.0]])  # fixed bounds: normalised values equal the raw ones


# ---------------------------------------------------------------------------------------------- dominance
def test_mask_2d_minimise_with_duplicates() -> None:
    values = [[1, 5], [2, 3], [3, 4], [4, 1], [2, 3], [5, 5]]
    assert pareto_mask(values, ["min", "min"]).tolist() == [True, True, False, True, True, False]


def test_mask_mixed_directions() -> None:
    values = [[1, 0.5], [2, 0.9], [3, 0.8], [1, 0.4], [0.5, 0.1]]  # (flops min, f1 max)
    assert pareto_mask(values, ["min", "max"]).tolist() == [True, True, False, False, True]
    assert pareto_mask(values, ["max", "max"]).tolist() == [False, True, True, False, False]


def test_mask_3d_and_non_finite_rows() -> None:
    values = [[1, 1, 1], [0, 2, 2], [2, 0, 2], [2, 2, 0], [1, 1, 2], [np.nan, 0, 0], [0, 0, np.inf]]
    assert pareto_mask(values, ["min"] * 3).tolist() == [True, True, True, True, False, False, False]


def test_mask_rejects_bad_directions() -> None:
    with pytest.raises(ValueError, match="'min' or 'max'"):
        pareto_mask([[1, 2]], ["min", "minimise"])


# ---------------------------------------------------------------------------------------------- hypervolume
def test_hypervolume_2d_known_answer_min_and_max() -> None:
    # boxes to the reference (1.1, 1.1): 0.9*0.5 + 0.6*0.8 - 0.6*0.5 = 0.63
    assert hypervolume([[0.2, 0.6], [0.5, 0.3]], ["min", "min"], bounds=UNIT) == pytest.approx(0.63)
    # the same set with the second objective maximised (x -> 1 - x) has the same volume
    assert hypervolume([[0.2, 0.4], [0.5, 0.7]], ["min", "max"], bounds=UNIT) == pytest.approx(0.63)
    # dominated points, duplicates and points beyond the reference add nothing
    more = [[0.2, 0.6], [0.5, 0.3], [0.6, 0.7], [0.5, 0.3], [1.5, 0.0]]
    assert hypervolume(more, ["min", "min"], bounds=UNIT) == pytest.approx(0.63)
    assert hypervolume([[0.2, 0.6]], ["min", "min"], reference=[1.0, 1.0], bounds=UNIT) == pytest.approx(0.32)


def test_hypervolume_3d_known_answer() -> None:
    assert hypervolume([[0, 0, 0]], ["min"] * 3, bounds=np.zeros((2, 3)) + [[0], [1]]) == pytest.approx(1.331)
    # 1.1*1.1*0.6 + 0.6*0.6*1.1 - 0.6^3 = 0.726 + 0.396 - 0.216
    bounds = np.array([[0, 0, 0], [1, 1, 1]], dtype=float)
    points = [[0, 0, 0.5], [0.5, 0.5, 0], [0.6, 0.6, 0.6]]
    assert hypervolume(points, ["min"] * 3, bounds=bounds) == pytest.approx(0.906)
    flipped = [[0, 1, 0.5], [0.5, 0.5, 0], [0.6, 0.4, 0.6]]  # second objective maximised
    assert hypervolume(flipped, ["min", "max", "min"], bounds=bounds) == pytest.approx(0.906)


def test_default_normalisation_is_min_max_with_log_for_compute() -> None:
    # min-max: (1, 10) -> (0, 1), (3, 2) -> (1, 0): 1.1*0.1 + 0.1*1.1 - 0.1*0.1 = 0.21
    assert hypervolume([[1, 10], [3, 2]], ["min", "min"]) == pytest.approx(0.21)
    unit, bounds = normalise(np.array([[0.1, 9.0], [0.3, 99.0], [0.2, 999.0]]), ["min", "min"],
                             log_scale=[False, True])
    assert np.allclose(bounds, [[0.1, 1.0], [0.3, 3.0]])
    assert np.allclose(unit, [[0.0, 0.0], [1.0, 0.5], [0.5, 1.0]])
    constant, _ = normalise(np.array([[0.5, 1.0], [0.5, 2.0]]), ["max", "min"])
    assert constant[:, 0].tolist() == [0.0, 0.0]  # the same for every trial: no better or worse
    assert hypervolume(np.empty((0, 2)), ["min", "min"]) == 0.0


# ---------------------------------------------------------------------------------------------- sweep folders
def _trial(sweep: Path, tid: str, family: str, fidelity: float | None, flops: float | None, *, f1: float = 0.5,
           feasible: bool = True, status: str | None = None, key: str | None = None, minute: int = 0,
           settings: dict | None = None) -> None:
    objectives = {name: value for name, value in (("fidelity", fidelity), ("flops_per_flow", flops),
                                                   ("tstr_f1", f1), ("parameters", (flops or 0) / 10))
                  if value is not None}
    write_json(sweep / "trials" / f"{tid}.json", {
        "trial_id": tid, "number": minute, "family": family, "model": settings or {"d_model": 64},
        "train": {"lr": 0.001, "epochs": 4}, "config_key": key or f"key-{tid}", "objectives": objectives,
        "metrics": {"val_loss": 1.5, "copy_rate": 0.1}, "feasible": feasible,
        "infeasible_reason": None if feasible else "privacy: copy rate 1.00 > natural 0.48 + 0.05",
        "status": status or ("complete" if feasible else "infeasible"),
        "generator_dir": f"trials/{tid}/generator" if feasible else None, "device": "cpu", "wall_s": 3.0,
        "finished": f"2026-12-02T10:{minute:02d}:00+00:00"})


def _sweep(tmp_path: Path) -> Path:
    sweep = tmp_path / "sweep"
    write_json(sweep / "sweep.json", {"objectives": [{"name": "fidelity", "direction": "min"},
                                                     {"name": "flops_per_flow", "direction": "min"}]})
    _trial(sweep, "tf-a", "transformer", 0.10, 1e7, minute=1)
    _trial(sweep, "tf-b", "transformer", 0.20, 2e7, minute=2)  # dominated by tf-a
    _trial(sweep, "mk-a", "markov", 0.30, 1e3, minute=3, settings={"order": 2})
    _trial(sweep, "mk-b", "markov", 0.25, 5e3, minute=4, settings={"order": 1})
    _trial(sweep, "boot", "bootstrap", 0.01, 10.0, feasible=False, minute=5)  # best everywhere, copies: out
    _trial(sweep, "tf-c", "transformer", 0.05, 1e9, key="key-tf-a", minute=6)  # same config as tf-a: ignored
    _trial(sweep, "ss-x", "ssm", None, None, status="error", feasible=False, minute=7)
    _trial(sweep, "ss-a", "ssm", 0.08, 5e7, minute=8)
    return sweep


def test_front_over_all_and_per_family(tmp_path: Path) -> None:
    result = compute_front(_sweep(tmp_path))
    t = result.trials.set_index("trial_id")
    assert [o.name for o in result.objectives] == ["fidelity", "flops_per_flow"]  # from sweep.json
    assert sorted(result.front["trial_id"]) == ["mk-a", "mk-b", "ss-a", "tf-a"]
    assert sorted(t.index[t["on_family_front"]]) == ["mk-a", "mk-b", "ss-a", "tf-a"]
    assert not t.loc["boot", "on_front"] and not t.loc["tf-c", "on_front"] and t.loc["tf-c", "duplicate"]
    assert not t.loc["tf-b", "on_front"]
    # known answer: log10(1+flops) and fidelity min-max over the 5 competing trials
    comp = t[t["competing"]]
    assert sorted(comp.index) == ["mk-a", "mk-b", "ss-a", "tf-a", "tf-b"]
    expected = hypervolume(comp[["fidelity", "flops_per_flow"]].to_numpy(), ["min", "min"], log_scale=[False, True])
    assert result.hypervolume == pytest.approx(expected) and 0 < result.hypervolume < 1.21
    assert result.bounds[0] == pytest.approx([0.08, 0.30])
    assert result.family_hypervolume["markov"] < result.hypervolume
    assert set(result.family_hypervolume) == {"markov", "ssm", "transformer"}
    # the history grows trial by trial and ends at the final value
    hv = result.history["hypervolume"].to_numpy()
    assert len(hv) == 8 and (np.diff(hv) >= -1e-12).all() and hv[-1] == pytest.approx(result.hypervolume)
    assert result.history["trial_id"].tolist()[:3] == ["tf-a", "tf-b", "mk-a"]
    assert hv[1] == pytest.approx(hv[0])  # a dominated trial adds nothing


def test_other_objectives_and_a_missing_one(tmp_path: Path) -> None:
    sweep = _sweep(tmp_path)
    result = compute_front(sweep, "fidelity,tstr_f1,flops_per_flow")
    assert [o.direction for o in result.objectives] == ["min", "max", "min"]
    assert [o.name for o in plot_axes(result)] == ["flops_per_flow", "fidelity"]  # fidelity against compute
    assert [o.name for o in plot_axes(compute_front(sweep, "tstr_f1,fidelity"))] == ["fidelity", "tstr_f1"]
    expected = r"no feasible trial with finite fidelity, sample_flows_per_s .*objectives measured: \['fidelity'"
    with pytest.raises(NtgError, match=expected):
        compute_front(sweep, "fidelity,sample_flows_per_s")


def test_write_front_files_and_a_moved_folder(tmp_path: Path) -> None:
    sweep = _sweep(tmp_path)
    paths = write_front(compute_front(sweep), sweep)
    assert {p.name for p in paths.values()} == {"front.csv", "front.json", "front.png", "front.html",
                                                "hypervolume.png"}
    for name in ("front.png", "hypervolume.png"):
        assert (sweep / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (sweep / "front.html").read_text()
    assert "plotly" in html[:200_000].lower()
    assert "transformer (dominated)" in html and "markov (dominated)" not in html  # tf-b; both markov on the front
    doc = json.loads((sweep / "front.json").read_text())
    assert doc["normalisation"]["reference"] == [1.1, 1.1] and doc["normalisation"]["log_scale"] == [False, True]
    assert sorted(doc["front"]) == ["mk-a", "mk-b", "ss-a", "tf-a"]
    row = next(r for r in doc["trials"] if r["trial_id"] == "tf-a")
    assert row["model.d_model"] == 64 and row["train.lr"] == 0.001 and row["generator_dir"] == "trials/tf-a/generator"
    assert row["on_front"] is True and row["feasible"] is True and row["metric.copy_rate"] == 0.1
    csv = pd.read_csv(sweep / "front.csv")
    assert set(csv.loc[csv["on_front"], "trial_id"]) == set(doc["front"]) and len(csv) == 8
    moved = shutil.copytree(sweep, tmp_path / "elsewhere" / "copy")
    again = compute_front(moved)
    assert again.hypervolume == pytest.approx(doc["hypervolume"])
    assert (moved / again.front.set_index("trial_id").loc["tf-a", "generator_dir"]).parent.parent == moved / "trials"


def test_mid_sweep_reads_what_has_finished(tmp_path: Path) -> None:
    sweep = tmp_path / "live"
    _trial(sweep, "t1", "markov", 0.3, 1e3, minute=1)
    (sweep / "trials" / ".t2.json.x1y2.tmp").write_text('{"half": ')  # a record being written
    first = compute_front(sweep)
    assert first.front["trial_id"].tolist() == ["t1"] and first.hypervolume == pytest.approx(1.1 * 1.1)
    _trial(sweep, "t2", "transformer", 0.1, 1e7, minute=2)
    second = compute_front(sweep)
    assert sorted(second.front["trial_id"]) == ["t1", "t2"] and len(second.history) == 2
    _trial(sweep, "t3", "gmm", 0.3, 0.0, minute=3)  # a baseline that costs no FLOPs: symmetric-log axis
    third = compute_front(sweep)
    assert sorted(third.front["trial_id"]) == ["t2", "t3"]
    assert write_front(third, tmp_path / "plots")["png"].stat().st_size > 10_000


def test_cli_pareto_table_files_and_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    sweep = _sweep(tmp_path)
    out = tmp_path / "report"
    assert main(["pareto", str(sweep), "--objectives", "fidelity:min,flops_per_flow", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "4 on the front of 5 feasible trial(s) (8 records)" in printed and "tf-a" in printed
    assert "boot" not in printed and (out / "front.json").is_file() and not (sweep / "front.json").exists()
    (tmp_path / "empty").mkdir()
    cases = [(tmp_path / "empty", [], "no trial records"), (tmp_path / "absent", [], "no such sweep folder"),
             (sweep, ["--objectives", "fidelity:max"], "is always 'min'")]
    for folder, extra, expected in cases:
        assert main(["pareto", str(folder), *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("ntg: error: ") and err.count("\n") == 1 and expected in err
    only_bad = tmp_path / "bad"
    _trial(only_bad, "b", "bootstrap", 0.01, 1.0, feasible=False)
    assert main(["pareto", str(only_bad)]) == 2
    assert "no feasible trial" in capsys.readouterr().err
    (only_bad / "trials" / "broken.json").write_text("{")
    with pytest.raises(NtgError, match=r"broken\.json: unreadable trial record"):
        load_records(only_bad)
