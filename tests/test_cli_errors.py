"""Every user error on the command line ends as one ``ntg: error:`` line naming the value or file, exit 2, and
no traceback: wrong types, out-of-range values, missing and unreadable files, for each command."""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from ntg.data.dataset import PreparedDataset


def ntg(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "RAY_AUTH_MODE": "disabled", "OMP_NUM_THREADS": "1",
           "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "ntg.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300, cwd=cwd)


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of wrong inputs: a JSON list and non-object sections, a parquet without flow columns, an empty
    capture, a plain file where a folder is expected."""
    d = tmp_path_factory.mktemp("bad")
    (d / "list.json").write_text("[1, 2]")
    (d / "model3.json").write_text(json.dumps({"model": 3}))
    (d / "epochs.json").write_text(json.dumps({"train": {"epochs": "many"}}))
    (d / "broken.json").write_text("{model: ")
    pd.DataFrame({"a": [1, 2]}).to_parquet(d / "nocols.parquet")
    (d / "nocols.csv").write_text("label,payload\nx,1 2\n")
    (d / "caps" / "Dev").mkdir(parents=True)
    (d / "caps" / "Dev" / "empty.pcap").write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    (d / "plain").write_text("a file")
    return d


# (arguments with {data} = a prepared dataset and {bad} = the folder above, text the error line must name)
CASES = [
    # data prepare
    (["data", "prepare", "{bad}/caps", "--out", "{tmp}/o", "--jobs", "0"], "--jobs 0"),
    (["data", "prepare", "{bad}/caps", "--out", "{tmp}/o", "--split", "0,0.5,0.5"], "train and test shares"),
    (["data", "prepare", "{bad}/caps", "--out", "{tmp}/o", "--split", "0.5,0.5"], "0.5,0.5"),
    (["data", "prepare", "{bad}/caps", "--out", "{tmp}/o", "--split", "a,b,c"], "a,b,c"),
    (["data", "prepare", "{bad}/caps", "--out", "{tmp}/o", "--min-packets", "abc"], "'abc'"),
    (["data", "prepare", "{bad}/caps", "--out", "{tmp}/o", "--min-packets", "0"], "--min-packets"),
    (["data", "prepare", "{bad}/caps", "--out", "{tmp}/o", "--idle-timeout", "-1"], "-1"),
    (["data", "prepare", "{bad}/caps", "--out", "{tmp}/o", "--min-flows-per-class", "-3"], "-3"),
    (["data", "prepare", "{bad}/caps", "--out", "{tmp}/o", "--small-classes", "merge"], "'merge'"),
    (["data", "prepare", "{bad}/caps", "--out", "{tmp}/o"], "no biflows"),  # a capture with no packets
    (["data", "prepare", "{bad}/nowhere", "--out", "{tmp}/o"], "nowhere"),
    (["data", "prepare", "{bad}/caps", "--out", "{bad}/plain/sub"], "plain is a file"),
    (["data", "prepare", "{bad}/caps", "--out", "/proc/ntg-cannot-write-here"], "/proc/ntg-cannot-write-here"),
    (["data", "info", "{bad}/nowhere"], "nowhere"),
    (["data", "info", "{bad}"], "not a prepared dataset"),
    # train
    (["train", "--family", "gpt9", "--data", "{data}", "--out", "{tmp}/r"], "gpt9"),
    (["train", "--family", "markov", "--data", "{data}", "--out", "{tmp}/r", "--set", "model.order=abc"],
     "model.order"),
    (["train", "--family", "markov", "--data", "{data}", "--out", "{tmp}/r", "--set", "model.order=0"],
     "model.order=0"),
    (["train", "--family", "markov", "--data", "{data}", "--out", "{tmp}/r", "--set", "train.epochs=x"],
     "train.epochs"),
    (["train", "--family", "markov", "--data", "{data}", "--out", "{tmp}/r", "--set", "model.no_such_knob=3"],
     "no_such_knob"),
    (["train", "--family", "markov", "--data", "{data}", "--out", "{tmp}/r", "--set", "model.order"], "model.order"),
    (["train", "--family", "transformer", "--data", "{data}", "--out", "{tmp}/r", "--set", "model.d_model=0"],
     "d_model"),
    (["train", "--family", "markov", "--data", "{data}", "--out", "{tmp}/r", "--config", "{bad}/list.json"],
     "list.json"),
    (["train", "--family", "markov", "--data", "{data}", "--out", "{tmp}/r", "--config", "{bad}/model3.json"],
     "model"),
    (["train", "--family", "markov", "--data", "{data}", "--out", "{tmp}/r", "--config", "{bad}/epochs.json"],
     "epochs"),
    (["train", "--family", "markov", "--data", "{data}", "--out", "{tmp}/r", "--config", "{bad}/broken.json"],
     "broken.json"),
    (["train", "--family", "markov", "--data", "{data}", "--out", "{tmp}/r", "--config", "{bad}/none.json"],
     "none.json"),
    (["train", "--family", "markov", "--data", "{bad}/nowhere", "--out", "{tmp}/r"], "nowhere"),
    (["train", "--family", "markov", "--data", "{data}", "--out", "{bad}/plain"], "plain"),
    # sample
    (["sample", "{bad}/norun", "--n", "5", "--out", "{tmp}/s.parquet"], "norun"),
    (["sample", "{bad}/norun", "--n", "0", "--out", "{tmp}/s.parquet"], "--n"),
    (["sample", "{bad}/norun", "--n", "many", "--out", "{tmp}/s.parquet"], "'many'"),
    (["sample", "{bad}/norun", "--out", "{tmp}/s.txt"], "s.txt"),
    # evaluate
    (["evaluate", "--data", "{data}", "--synthetic", "{bad}/nocols.parquet", "--out", "{tmp}/e"], "nocols.parquet"),
    (["evaluate", "--data", "{data}", "--synthetic", "{bad}/nocols.csv", "--out", "{tmp}/e"], "nocols.csv"),
    (["evaluate", "--data", "{data}", "--synthetic", "{bad}/list.json", "--out", "{tmp}/e"], "list.json"),
    (["evaluate", "--data", "{data}", "--synthetic", "{bad}/none.parquet", "--out", "{tmp}/e"], "none.parquet"),
    (["evaluate", "--data", "{data}", "--generator", "{bad}/norun", "--out", "{tmp}/e"], "norun"),
    (["evaluate", "--data", "{bad}/nowhere", "--synthetic", "{bad}/nocols.parquet", "--out", "{tmp}/e"], "nowhere"),
    (["evaluate", "--data", "{data}", "--synthetic", "{data}/flows.parquet", "--out", "{tmp}/e", "--split-seeds",
      "0"], "--split-seeds"),
    (["evaluate", "--data", "{data}", "--synthetic", "{data}/flows.parquet", "--out", "{tmp}/e", "--n-packets",
      "99"], "--n-packets 99"),
    (["evaluate", "--data", "{data}", "--synthetic", "{data}/flows.parquet", "--out", "{tmp}/e", "--axes", "beauty"],
     "'beauty'"),
    (["evaluate", "--data", "{data}", "--synthetic", "{data}/flows.parquet", "--out", "{tmp}/e",
      "--augmentation-fractions", "0.1", "1.5"], "1.5"),
    (["evaluate", "--data", "{data}", "--synthetic", "{data}/flows.parquet", "--out", "{tmp}/e",
      "--augmentation-seeds", "0"], "--augmentation-seeds must be at least 1, not 0"),
    # demo
    (["demo", "--families", "gpt9", "--workdir", "{tmp}/demo"], "gpt9"),
    (["demo", "--split-seeds", "0", "--workdir", "{tmp}/demo"], "--split-seeds 0"),
    (["demo", "--workdir", "{bad}/plain"], "plain"),
    # the top level
    (["bogus"], "'bogus'"),
]


PROGRESS = re.compile(r"^[\w /.-]+:\s*\d+%\|")  # tqdm's bars on stderr are not error lines


@pytest.mark.parametrize(("args", "named"), CASES, ids=[" ".join(a[:4]) + f" ~{n}" for a, n in CASES])
def test_user_error_is_one_line(args: list[str], named: str, iot_small: PreparedDataset, bad_files: Path,
                                tmp_path: Path) -> None:
    values = {"data": str(iot_small.root), "bad": str(bad_files), "tmp": str(tmp_path)}
    result = ntg(*(a.format(**values) for a in args))
    lines = [line for line in result.stderr.strip().splitlines() if not PROGRESS.match(line)]
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    assert len(lines) == 1 and lines[0].startswith("ntg: error:"), result.stderr[-2000:]
    assert named.format(**values) in lines[0]


def test_output_piped_into_head_exits_quietly(iot_small: PreparedDataset) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "ntg.cli", "data", "info", str(iot_small.root), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # like `| head` that has what it wants before ntg writes: every write hits a closed pipe
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0 and "Traceback" not in err and "BrokenPipe" not in err


def test_one_class_dataset_is_a_warning(iot_small_captures: Path, tmp_path: Path) -> None:
    (tmp_path / "caps").mkdir()
    (tmp_path / "caps" / "HueBridge").symlink_to(iot_small_captures / "HueBridge", target_is_directory=True)
    result = ntg("data", "prepare", str(tmp_path / "caps"), "--out", str(tmp_path / "one"), "--quiet")
    assert result.returncode == 0, result.stderr
    assert "one class only (HueBridge): nothing to classify" in result.stderr
    info = ntg("data", "info", str(tmp_path / "one"))
    assert info.returncode == 0 and "nothing to classify" in info.stdout


@pytest.mark.parametrize(("error", "advice"), [
    (PermissionError(13, "Permission denied", "/srv/shared/out"), "permissions"),
    (IsADirectoryError(21, "Is a directory", "/srv/shared/out"), "give a file name"),
    (OSError(28, "No space left on device", "/srv/shared/out"), "free some space"),
])
def test_os_errors_on_user_paths_are_one_line(error: OSError, advice: str, monkeypatch, capsys) -> None:
    """Root ignores file modes, so the OS's refusal is raised where a command would meet it."""
    import ntg.cli.data
    from ntg.cli import main

    def refuse(args):
        raise error

    monkeypatch.setattr(ntg.cli.data, "cmd_data_list", refuse)
    assert main(["data", "list"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ntg: error: /srv/shared/out:") and advice in err[0]


def test_os_error_without_a_path_is_a_bug_and_keeps_its_traceback(monkeypatch) -> None:
    import ntg.cli.data
    from ntg.cli import main

    def broken(args):
        raise OSError("internal socket trouble")

    monkeypatch.setattr(ntg.cli.data, "cmd_data_list", broken)
    with pytest.raises(OSError, match="internal socket"):
        main(["data", "list"])
