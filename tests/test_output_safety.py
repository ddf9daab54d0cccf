"""No ntg command destroys what it did not write: unrelated folders, the home folder and plain files given as
``--out`` are refused with the path in one line and left as they were; ``--force`` and re-runs on ntg's own
output work; results get ordinary permissions (the umask), not mkstemp's 0600 / mkdtemp's 0700."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import IOT_SMALL_DEVICES

from ntg.data.dataset import PreparedDataset
from ntg.errors import NtgError
from ntg.utils.io import MARKER_FILE, atomic_dir, atomic_path, claim_output_dir, output_kind


def ntg(*args: str, home: Path | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "RAY_AUTH_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    if home is not None:
        env["HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "ntg.cli", *args], capture_output=True, text=True, env=env,
                          timeout=600, cwd=cwd)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def unrelated(folder: Path) -> Path:
    (folder / "thesis").mkdir(parents=True)
    (folder / "thesis" / "chapter1.tex").write_text("months of work")
    (folder / "notes.txt").write_text("keep me")
    return folder


def refused(result: subprocess.CompletedProcess, path: Path) -> bool:
    lines = result.stderr.strip().splitlines()
    return (result.returncode == 2 and len(lines) == 1 and lines[0].startswith("ntg: error:")
            and str(path) in lines[0] and "Traceback" not in result.stderr)


@pytest.fixture()
def two_devices(iot_small_captures: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "caps"
    folder.mkdir()
    for device in IOT_SMALL_DEVICES[:3]:
        (folder / device).symlink_to(iot_small_captures / device, target_is_directory=True)
    return folder


# ---------------------------------------------------------------------------------------------- the guard itself
def test_claim_refuses_unrelated_folder_home_and_file(tmp_path: Path, monkeypatch) -> None:
    folder = unrelated(tmp_path / "mine")
    before = snapshot(folder)
    with pytest.raises(NtgError, match="--force") as err:
        claim_output_dir(folder, "dataset")
    assert str(folder) in str(err.value)
    assert snapshot(folder) == before and not (folder / MARKER_FILE).exists()
    claim_output_dir(folder, "dataset", force=True)
    assert output_kind(folder) == "dataset"

    home = unrelated(tmp_path / "home")
    monkeypatch.setenv("HOME", str(home))
    for force in (False, True):  # the home folder is never replaced, whatever the flags
        with pytest.raises(NtgError, match="home"):
            claim_output_dir(home, "report", force=force)
    plain = tmp_path / "file.txt"
    plain.write_text("data")
    with pytest.raises(NtgError, match="is a file"):
        claim_output_dir(plain, "run", force=True)
    with pytest.raises(NtgError, match="is a file"):
        with atomic_dir(plain):
            pass
    assert plain.read_text() == "data"


def test_claim_accepts_own_output_and_tells_kinds_apart(tmp_path: Path) -> None:
    claim_output_dir(tmp_path / "new", "report")  # a new folder is created and marked
    assert output_kind(tmp_path / "new") == "report"
    claim_output_dir(tmp_path / "new", "report")  # its own output: fine
    with pytest.raises(NtgError, match="ntg report folder, not a run"):
        claim_output_dir(tmp_path / "new", "run")
    legacy = tmp_path / "legacy"  # written before markers existed: known by its files
    legacy.mkdir()
    (legacy / "meta.json").write_text("{}")
    (legacy / "flows.parquet").write_bytes(b"")
    assert claim_output_dir(legacy, "dataset", mark=False) == legacy


def test_atomic_writes_respect_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "a.json") as tmp:
            tmp.write_text("{}")
        with atomic_dir(tmp_path / "d", kind="report") as tmp:
            (tmp / "x").write_text("1")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "d" / MARKER_FILE).stat().st_mode) == 0o644


# ---------------------------------------------------------------------------------------------- end to end
def test_prepare_never_replaces_what_it_did_not_write(two_devices: Path, tmp_path: Path) -> None:
    home = unrelated(tmp_path / "home")
    work = unrelated(tmp_path / "work")
    plain = tmp_path / "plain.txt"
    plain.write_text("not a folder")
    before = {p: snapshot(p) for p in (home, work)}
    args = ("data", "prepare", str(two_devices), "--min-flows-per-class", "5", "--quiet")
    for out, force in ((work, ()), (home, ()), (home, ("--force",)), (plain, ()), (plain, ("--force",))):
        result = ntg(*args, "--out", str(out), *force, home=home)
        assert refused(result, out), (out, force, result.stderr)
    assert {p: snapshot(p) for p in (home, work)} == before and plain.read_text() == "not a folder"

    old = os.umask(0o022)
    try:
        made = ntg(*args, "--out", str(tmp_path / "data"), home=home)
    finally:
        os.umask(old)
    assert made.returncode == 0, made.stderr
    for path in (tmp_path / "data", tmp_path / "data" / "flows.parquet", tmp_path / "data" / "meta.json"):
        assert stat.S_IMODE(path.stat().st_mode) in (0o755, 0o644), path  # readable by others
    again = ntg(*args, "--out", str(tmp_path / "data"), home=home)  # its own output: reused
    assert again.returncode == 0 and "up to date" in again.stderr
    rebuilt = ntg(*args, "--out", str(tmp_path / "data"), "--force", home=home)
    assert rebuilt.returncode == 0, rebuilt.stderr
    forced = ntg(*args, "--out", str(work), "--force", home=home)  # --force replaces an unrelated folder
    assert forced.returncode == 0, forced.stderr
    assert len(PreparedDataset.load(work).flows) > 0 and not (work / "notes.txt").exists()


def test_train_evaluate_sample_refuse_unrelated_outputs(iot_small: PreparedDataset, tmp_path: Path) -> None:
    work = unrelated(tmp_path / "work")
    before = snapshot(work)
    data = str(iot_small.root)
    trained = ntg("train", "--family", "markov", "--data", data, "--out", str(work), "--quiet")
    assert refused(trained, work), trained.stderr
    evaluated = ntg("evaluate", "--data", data, "--synthetic", str(iot_small.root / "flows.parquet"),
                    "--out", str(work), "--axes", "fidelity", "--quiet")
    assert refused(evaluated, work), evaluated.stderr
    into_dataset = ntg("train", "--family", "markov", "--data", data, "--out", data, "--quiet")
    assert refused(into_dataset, iot_small.root) and "dataset" in into_dataset.stderr
    assert snapshot(work) == before

    run = tmp_path / "run"
    assert ntg("train", "--family", "markov", "--data", data, "--out", str(run), "--quiet").returncode == 0
    rerun = ntg("train", "--family", "markov", "--data", data, "--out", str(run), "--quiet")
    assert rerun.returncode == 0, rerun.stderr  # its own run folder may be replaced

    letter = tmp_path / "letter.csv"
    letter.write_text("name,address\nAda,London\n")
    sampled = ntg("sample", str(run), "--n", "20", "--out", str(letter))
    assert refused(sampled, letter) and letter.read_text().startswith("name,address")
    flows = tmp_path / "flows.csv"
    for _ in range(2):  # a flow file ntg wrote is replaced without --force
        assert ntg("sample", str(run), "--n", "20", "--out", str(flows)).returncode == 0
    forced = ntg("sample", str(run), "--n", "20", "--out", str(letter), "--force")
    assert forced.returncode == 0 and "payload" in letter.read_text().splitlines()[0]
    assert refused(ntg("sample", str(run), "--n", "20", "--out", str(work)), work)  # a folder is not a file
    real = iot_small.root / "flows.parquet"  # a flow file, but the dataset's own: never overwritten by samples
    before_real = real.read_bytes()
    assert refused(ntg("sample", str(run), "--n", "20", "--out", str(real)), real)
    assert real.read_bytes() == before_real
