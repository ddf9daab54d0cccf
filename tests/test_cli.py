"""The `ntg` console script end to end on real data: train → sample → evaluate, and help for every command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ntg.data.dataset import PreparedDataset
from ntg.data.schema import FlowTable


def ntg(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "RAY_AUTH_MODE": "disabled"}
    return subprocess.run([sys.executable, "-m", "ntg.cli", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


@pytest.mark.parametrize("command", [[], ["data"], ["data", "prepare"], ["train"], ["sample"], ["evaluate"],
                                     ["demo"]])
def test_every_command_explains_itself(command: list[str]) -> None:
    result = ntg(*command, "--help")
    assert result.returncode == 0 and "usage: ntg" in result.stdout
    assert len(result.stdout.splitlines()) > 5


def test_train_sample_evaluate_round_trip(iot_small: PreparedDataset, tmp_path: Path) -> None:
    run = tmp_path / "run"
    trained = ntg("train", "--family", "markov", "--data", str(iot_small.root), "--out", str(run),
                  "--set", "model.order=1", "--quiet")
    assert trained.returncode == 0, trained.stderr
    assert (run / "config.json").exists() and (run / "model.safetensors").exists()
    log = json.loads((run / "train_log.json").read_text())
    assert log["num_parameters"] > 0
    assert json.loads((run / "config.json").read_text())["hparams"]["order"] == 1

    label = iot_small.classes[0]
    out = tmp_path / "synth.csv"
    sampled = ntg("sample", str(run), "--n", "300", "--label", label, "--seed", "4", "--out", str(out))
    assert sampled.returncode == 0, sampled.stderr
    flows = FlowTable.read(out)
    flows.validate()
    assert len(flows) == 300 and set(flows.labels) == {label}
    again = tmp_path / "again.csv"
    ntg("sample", str(run), "--n", "300", "--label", label, "--seed", "4", "--out", str(again))
    assert out.read_text() == again.read_text()

    report_dir = tmp_path / "report"
    evaluated = ntg("evaluate", "--data", str(iot_small.root), "--generator", str(run), "--out", str(report_dir),
                    "--axes", "fidelity", "privacy", "tstr", "augmentation", "--classifiers", "rf",
                    "--split-seeds", "1", "--augmentation-fractions", "0.1", "--augmentation-seeds", "1", "--quiet")
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads((report_dir / "report.json").read_text())
    assert report["fidelity"]["score"] is not None and 0 <= report["privacy"]["copy_rate"] <= 1
    assert report["augmentation"]["fractions"] == [0.1] == report["settings"]["augmentation_fractions"]
    assert {row["fraction"] for row in report["augmentation"]["rows"]} == {0.1}
    assert "copy rate" in (report_dir / "report.md").read_text()


def test_cli_errors_for_train_and_sample(iot_small: PreparedDataset, tmp_path: Path) -> None:
    bad_family = ntg("train", "--family", "gpt9", "--data", str(iot_small.root), "--out", str(tmp_path / "r"))
    assert bad_family.returncode == 2 and "gpt9" in bad_family.stderr and "Traceback" not in bad_family.stderr
    bad_key = ntg("train", "--family", "markov", "--data", str(iot_small.root), "--out", str(tmp_path / "r"),
                  "--set", "model.no_such_knob=3")
    assert bad_key.returncode == 2 and "no_such_knob" in bad_key.stderr
    missing = ntg("sample", str(tmp_path / "nothing"), "--n", "5", "--out", str(tmp_path / "x.parquet"))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr


@pytest.mark.parametrize("family", ["transformer", "markov"])
def test_train_help_lists_the_family_settings(family: str) -> None:
    result = ntg("train", "--family", family, "--help")
    assert result.returncode == 0 and "usage: ntg train" in result.stdout
    assert f"model settings of {family}" in result.stdout and "train.epochs" in result.stdout
    assert ("model.order " in result.stdout) == (family == "markov")  # each family its own table
    unknown = ntg("train", "--family", "gpt9", "--help")
    assert unknown.returncode == 2 and "gpt9" in unknown.stderr and "usage" not in unknown.stdout


def test_every_command_module_registers_its_commands() -> None:
    from ntg.cli import COMMAND_MODULES, build_parser

    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {"data", "train", "sample", "evaluate", "demo"} <= set(commands)
    assert {"data", "train", "evaluate", "demo"} <= set(COMMAND_MODULES)
