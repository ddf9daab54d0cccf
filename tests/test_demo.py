"""``ntg demo --quick``: every step of the platform on real captures, a real local Ray, a real olah server.

The end-to-end test runs the quick demo on eight iot-sentinel device folders (the real captures), then checks
the artefacts itself rather than trusting the demo's own report: the downloaded snapshot holds a card whose
model-index parses back, and the downloaded generator samples the same flows as the sweep's copy for a seed
the demo did not use. A second run must reuse every step and start nothing.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ntg.demo.steps import Steps
from ntg.errors import NtgError


@pytest.mark.slow
@pytest.mark.ray
def test_quick_demo_end_to_end_and_resumes(iot_small_captures: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from huggingface_hub import ModelCard

    from ntg.demo import run_demo
    from ntg.demo.hub import same_flows
    from ntg.models.base import load_generator
    from ntg.zoo.card import read_metrics

    workdir = tmp_path / "demo"
    first = run_demo(str(iot_small_captures), workdir, quick=True)
    out = capsys.readouterr().out

    sweeps = workdir / "sweeps-quick"
    for path in ("summary.md", "steps.json", "sweeps-quick/space-neural.yaml", "zoo/index.json",
                 "compare/compare.png", "compare/compare.csv", "compare/generators.txt"):
        assert (workdir / path).is_file(), path
    for sweep in ("baseline", "neural"):
        for path in ("front.png", "front.json", "study.db", "hypervolume.png"):
            assert (sweeps / sweep / path).is_file(), path
        assert len(list((sweeps / sweep / "trials").glob("*.json"))) == 3
    published = first["published"]
    assert published and all(p["repo_id"].startswith("ntg-demo/ntg-") for p in published)
    assert {p["sweep"] for p in published} == {"baseline", "neural"}  # two fronts to compare
    assert set(first["compare"]["hypervolume"]) == {"baseline", "neural"}
    index = json.loads((workdir / "zoo" / "index.json").read_text())
    assert {r["repo_id"] for r in index["repos"]} == {p["repo_id"] for p in published}

    snapshot = Path(first["download"]["path"])
    assert str(snapshot).startswith(str(workdir / "hub-cache"))  # plain snapshot_download into the demo's cache
    assert {"model.safetensors", "config.json", "README.md", "eval/report.json"} <= set(first["download"]["files"])
    card = ModelCard.load(snapshot / "README.md")
    metrics = read_metrics(card)
    assert 0 <= metrics["fidelity_score"] < 1 and metrics["parameters"] > 0
    assert "1 augmentation seed(s) at fractions 0.01" in card.text  # the quick budget reaches the cards

    assert first["sample"]["identical"] and Path(first["sample"]["path"]).is_file()
    reference = Path(first["sample"]["reference"])
    assert reference.parent.parent == sweeps / "neural" / "trials"  # a neural generator made the round trip
    downloaded, original = load_generator(snapshot), load_generator(reference)
    assert same_flows(downloaded.sample(300, seed=7), original.sample(300, seed=7))
    assert not same_flows(downloaded.sample(300, seed=7), original.sample(300, seed=8))  # the check can fail
    for step in ("| prepare |", "| sweep baseline |", "| sweep neural |", "| publish |", "| serve |",
                 "| download |", "| stop |"):
        assert step in out

    steps_before = json.loads((workdir / "steps.json").read_text())
    started = time.perf_counter()
    run_demo(str(iot_small_captures), workdir, quick=True)
    assert time.perf_counter() - started < 30  # no Ray, no server, no evaluation
    out = capsys.readouterr().out
    assert json.loads((workdir / "steps.json").read_text()) == steps_before
    assert out.count("(reused)") == 8 and "| serve |" not in out


def test_steps_reuse_finished_and_rerun_what_follows_a_rerun(tmp_path: Path) -> None:
    calls: list[str] = []
    names = ("a", "b", "c")

    def step(name: str) -> dict[str, str]:
        calls.append(name)
        return {"made": name}

    steps = Steps(tmp_path, names)
    for name in names:
        steps.run(name, tmp_path / name, lambda name=name: step(name))
    again = Steps(tmp_path, names)
    assert [again.run(n, tmp_path / n, lambda n=n: step(n)) for n in names] == [{"made": n} for n in names]
    assert calls == ["a", "b", "c"] and "(reused)" in again.table(0.0)

    third = Steps(tmp_path, names)
    third.forget("b")  # b runs again, so c (built on b's old result) must too
    for name in names:
        third.run(name, tmp_path / name, lambda name=name: step(name))
    assert calls == ["a", "b", "c", "b", "c"]


def test_bad_demo_arguments_fail_before_any_work(tmp_path: Path) -> None:
    from ntg.demo import run_demo

    with pytest.raises(NtgError, match="--families gpt9"):
        run_demo(workdir=tmp_path / "x", families=["gpt9"])
    with pytest.raises(NtgError, match="--trials 0"):
        run_demo(workdir=tmp_path / "x", trials=0)
    (tmp_path / "plain").write_text("not a folder")
    with pytest.raises(NtgError, match="plain"):
        run_demo(workdir=tmp_path / "plain")
    assert not (tmp_path / "x").exists()
