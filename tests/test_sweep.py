"""`ntg sweep` on a real local Ray instance with a real Optuna storage file, on real captures (iot_small).

Budgets are tiny (markov/gmm/bootstrap baselines, a one-epoch transformer on 300 flows) so the whole file
stays within a few minutes on two cores; what is checked is the sweep's machinery: records, the study, the
front, feasibility gates, resume after SIGKILL and reproducible proposals.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from ray_cluster import free_ports

from ntg.models.checkpoints import CHECKPOINT_VERSION, readable_checkpoint
from ntg.search.records import load_trial_records
from ntg.search.sweep import STUDY_NAME, SweepOptions, last_checkpoint, run_sweep

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.timeout(600)]
REPO = Path(__file__).resolve().parents[1]

TWO_FAMILIES = """
max_parameters: 2000000
families:
  markov:
    model:
      order: {type: categorical, choices: [1, 2]}
      payload_bins: {type: categorical, choices: [8, 16]}
  transformer:
    model:
      n_layers: {type: int, low: 1, high: 2}
      n_heads: 2
      d_model: {type: categorical, choices: [16, 32]}
      mlp_hidden: "2 * d_model"
    train:
      epochs: 3
      max_train_flows: 300
      batch_size: 128
"""
BASELINES = """
families:
  markov:
    model:
      order: {type: categorical, choices: [1, 2]}
      payload_bins: {type: categorical, choices: [4, 8, 16]}
  gmm:
    model:
      components: {type: int, low: 1, high: 4}
"""


def _space(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def _lines() -> tuple[list[str], callable]:
    lines: list[str] = []
    return lines, lines.append


@pytest.fixture(scope="module")
def small_sweep(ray_cluster, iot_small, tmp_path_factory):
    """Six trials over markov + a one-epoch transformer, two at a time, with --max-epochs 1."""
    tmp = tmp_path_factory.mktemp("sweep")
    options = SweepOptions(spaces=[_space(tmp, "two", TWO_FAMILIES)], data_dir=iot_small.root, n_trials=6,
                           out=tmp / "sweep", seed=0, concurrency=2, max_epochs=1, scheduler="asha")
    lines, log = _lines()
    summary = run_sweep(options, log=log)
    return options, summary, lines


def test_small_sweep_two_families_front_and_stored_study(small_sweep):
    import optuna

    from ntg.models.base import load_generator

    options, summary, lines = small_sweep
    sweep_dir = Path(summary["sweep_dir"])
    records = load_trial_records(sweep_dir)
    assert len(records) == 6 and summary["trials"] == 6
    assert {r["family"] for r in records} <= {"markov", "transformer"}
    assert summary["front"], "a sweep of feasible trials has a non-empty front"
    for record in records:
        assert record["status"] == "complete" and record["feasible"], record
        assert all(isinstance(v, float) for v in record["objectives"].values())
        assert set(record["objectives"]) == {"fidelity", "tstr_f1", "flops_per_flow", "parameters",
                                             "sample_flows_per_s", "train_seconds"}
        if record["family"] == "transformer":
            assert record["metrics"]["epochs"] == 1  # --max-epochs caps train.epochs=3
        if not record["metrics"].get("reused_from"):
            gen = load_generator(sweep_dir / record["generator_dir"])
            assert gen.family == record["family"] and gen.num_parameters() == record["objectives"]["parameters"]
    progress = [line for line in lines if line.startswith("[")]
    assert len(progress) == 6 and progress[-1].startswith("[6/6]") and "front" in progress[-1]
    assert "optuna-dashboard sqlite:///" in lines[-1]

    meta = json.loads((sweep_dir / "sweep.json").read_text())
    assert meta["study_storage"] == "study.db" and [o["name"] for o in meta["objectives"]] == [
        "fidelity", "flops_per_flow"]
    study = optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{sweep_dir / 'study.db'}")
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 6 and len(states) == 6
    assert all(t.user_attrs["feasible"] and t.constraints["parameters"] < 0 for t in study.trials)
    assert {t.user_attrs["family"] for t in study.trials} == {r["family"] for r in records}
    key_of = {r["number"]: r["config_key"] for r in records}
    front_keys = {r["config_key"] for r in records if r["trial_id"] in summary["front"]}
    assert {key_of[t.number] for t in study.best_trials} == front_keys  # Optuna's front, duplicates aside
    assert len(front_keys) == len(summary["front"])


def test_finished_sweep_resumed_gives_the_same_front(small_sweep):
    options, summary, _ = small_sweep
    before = {p.name: p.read_text() for p in (Path(summary["sweep_dir"]) / "trials").glob("*.json")}
    lines, log = _lines()
    again = run_sweep(SweepOptions(**{**options.__dict__, "resume": True}), log=log)
    assert again["front"] == summary["front"] and again["trials"] == 6
    after = {p.name: p.read_text() for p in (Path(summary["sweep_dir"]) / "trials").glob("*.json")}
    assert after == before and not any(line.startswith("[") for line in lines)  # nothing ran again

    changed = SweepOptions(**{**options.__dict__, "objectives": "fidelity,tstr_f1"})
    from ntg.errors import NtgError

    with pytest.raises(NtgError, match="another objectives"):
        run_sweep(changed, log=log)


def test_study_opens_in_optuna_dashboard(small_sweep):
    sweep_dir = Path(small_sweep[1]["sweep_dir"])
    port = free_ports(1)[0]
    dashboard = Path(sys.executable).with_name("optuna-dashboard")
    proc = subprocess.Popen([str(dashboard), "--port", str(port), "--quiet", f"sqlite:///{sweep_dir / 'study.db'}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            time.sleep(0.3)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=30) as response:
            studies = json.loads(response.read())["study_summaries"]
        assert [s["study_name"] for s in studies] == [STUDY_NAME]
        assert studies[0]["directions"] == ["minimize", "minimize"]
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_over_budget_is_infeasible_and_untrained_and_bootstrap_fails_privacy(ray_cluster, iot_small, tmp_path):
    from ntg.cli import main

    transformer = _space(tmp_path, "tf", "families:\n  transformer:\n    model: {n_layers: 2, d_model: 64, "
                         "n_heads: 2, mlp_hidden: 128}\n    train: {epochs: 5}\n")
    out = tmp_path / "budget"
    started = time.monotonic()
    code = main(["sweep", "--space", str(transformer), "--data", str(iot_small.root), "--trials", "1", "--out",
                 str(out), "--max-parameters", "1000", "--study-storage", "journal:study.log"])
    assert code == 0 and time.monotonic() - started < 60
    (record,) = load_trial_records(out)
    assert record["status"] == "infeasible" and not record["feasible"] and record["generator_dir"] is None
    assert record["infeasible_reason"].startswith("parameters ") and "> budget 1,000" in record["infeasible_reason"]
    assert record["metrics"]["epochs"] == 0 and record["wall_s"] < 1.0  # built, counted, never trained
    assert all(isinstance(v, float) for v in record["objectives"].values()) and len(record["objectives"]) == 6
    assert (out / "study.log").is_file()

    bootstrap = _space(tmp_path, "boot", "families:\n  bootstrap: {}\n")
    lines, log = _lines()
    summary = run_sweep(SweepOptions(spaces=[bootstrap], data_dir=iot_small.root, n_trials=1,
                                     out=tmp_path / "boot"), log=log)
    (record,) = load_trial_records(tmp_path / "boot")
    assert record["status"] == "infeasible" and record["infeasible_reason"].startswith("privacy: ")
    assert record["metrics"]["copy_rate"] > record["metrics"]["natural_copy_rate"]
    assert summary["front"] == [] and "privacy" in lines[-3]


def test_proposals_repeat_with_a_seed_and_one_trial_at_a_time(ray_cluster, iot_small, tmp_path):
    space = _space(tmp_path, "baselines", BASELINES)
    proposed = []
    for run in ("a", "b"):
        run_sweep(SweepOptions(spaces=[space], data_dir=iot_small.root, n_trials=3, out=tmp_path / run,
                               seed=7, concurrency=1), log=lambda line: None)
        proposed.append([(r["number"], r["family"], r["model"]) for r in load_trial_records(tmp_path / run)])
    assert proposed[0] == proposed[1] and len(proposed[0]) == 3


def _wait_records(sweep_dir: Path, n: int, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(list((sweep_dir / "trials").glob("*.json"))) >= n:
            return
        assert proc.poll() is None, f"the sweep ended early ({proc.returncode})"
        time.sleep(0.5)
    pytest.fail(f"no {n} trial records after {timeout:.0f} s")


def _kill_group(pgid: int) -> None:
    """SIGKILL what is left of the sweep's session (its local Ray instance) and wait until it is gone."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            return
        time.sleep(0.5)
    pytest.fail("the killed sweep's Ray processes are still alive")


def test_sigkilled_driver_resumes_without_losing_or_retraining_trials(iot_small, tmp_path):
    import optuna

    space = _space(tmp_path, "baselines", BASELINES)
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "ntg.cli", "sweep", "--space", str(space), "--data", str(iot_small.root),
               "--trials", "5", "--out", str(out), "--concurrency", "1", "--seed", "3"]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        _wait_records(out, 2, proc, timeout=240)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        _kill_group(proc.pid)
    before = {p.name: p.read_text() for p in (out / "trials").glob("*.json")}
    assert 2 <= len(before) < 5

    resumed = subprocess.run([*command, "--resume"], env=env, cwd=REPO, capture_output=True, text=True,
                             timeout=400, start_new_session=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = {p.name: p.read_text() for p in (out / "trials").glob("*.json")}
    assert len(after) == 5 and all(after[name] == text for name, text in before.items())
    assert f"{len(before)} of 5 trials done" in resumed.stdout
    # only the missing trials ran in the resumed Tune run
    assert len(list((out / "tune" / "run-2").glob("trial_*"))) == 5 - len(before)
    study = optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{out / 'study.db'}")
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials) == 5


def test_trial_cut_mid_training_resumes_from_its_last_epoch_checkpoint(iot_small, tmp_path):
    space = _space(tmp_path, "tf", "families:\n  transformer:\n    model: {n_layers: 1, d_model: 32, n_heads: 2, "
                   "mlp_hidden: 64}\n    train: {epochs: 16, patience: 16, max_train_flows: 300, batch_size: 64}\n")
    out = tmp_path / "cut"
    command = [sys.executable, "-m", "ntg.cli", "sweep", "--space", str(space), "--data", str(iot_small.root),
               "--trials", "1", "--out", str(out)]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        # a whole one: killed while Tune copies the newest, the sweep resumes from the one before (test below)
        while not any(map(readable_checkpoint, out.glob("tune/run-1/trial_*/checkpoint_00000[2-9]/checkpoint.pt"))):
            assert proc.poll() is None and time.monotonic() < deadline, "no third epoch checkpoint"
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        _kill_group(proc.pid)
    assert not load_trial_records(out)
    resumed = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=300,
                             start_new_session=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    (record,) = load_trial_records(out)
    assert record["status"] == "complete" and record["metrics"]["resumed_from_epoch"] >= 3
    assert record["metrics"]["epochs"] == 16


def test_a_checkpoint_cut_while_being_copied_is_passed_over_for_the_one_before(tmp_path):
    import torch

    trial = tmp_path / "tune" / "run-1" / "trial_0"
    trial.mkdir(parents=True)
    (trial / "params.json").write_text(json.dumps({"trial_number": 4}))
    for epoch in (1, 2):
        (trial / f"checkpoint_00000{epoch}").mkdir()
        torch.save({"version": CHECKPOINT_VERSION, "epoch": epoch}, trial / f"checkpoint_00000{epoch}/checkpoint.pt")
    newest = trial / "checkpoint_000002" / "checkpoint.pt"
    assert last_checkpoint(tmp_path, 4) == newest and last_checkpoint(tmp_path, 5) is None
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    assert last_checkpoint(tmp_path, 4) == trial / "checkpoint_000001" / "checkpoint.pt"


def test_sweep_never_writes_into_a_dataset_folder_or_a_local_folder_named_after_a_uri(iot_small, tmp_path, monkeypatch):
    from ntg.errors import NtgError

    space = _space(tmp_path, "baselines", BASELINES)
    before = sorted(p.name for p in iot_small.root.iterdir())
    with pytest.raises(NtgError, match="ntg dataset folder.*--force"):
        run_sweep(SweepOptions(spaces=[space], data_dir=iot_small.root, n_trials=1, out=iot_small.root))
    assert sorted(p.name for p in iot_small.root.iterdir()) == before  # nothing written there

    monkeypatch.chdir(tmp_path)
    with pytest.raises(NtgError, match=r"ftp:// is not storage ntg writes; give a path .* s3://bucket/prefix"):
        run_sweep(SweepOptions(spaces=[space], data_dir=iot_small.root, n_trials=1, out="ftp://host/sweeps/a"))
    assert not (tmp_path / "ftp:").exists()  # s3:// and gs://: tests/test_sweep_storage.py


def test_study_storage_sqlite_on_local_disks_journal_on_network_file_systems(tmp_path, monkeypatch):
    import ntg.search.sweep as sweep
    from ntg.errors import NtgError
    from ntg.search.records import filesystem_type, resolve_sweep_dir

    assert resolve_sweep_dir(f"file://{tmp_path}/a%20b") == tmp_path / "a b"
    assert filesystem_type(tmp_path) != "unknown"  # read from /proc/mounts
    (tmp_path / "local").mkdir()
    _, text, _ = sweep.open_storage(None, tmp_path / "local")
    assert text == "study.db"
    monkeypatch.setattr(sweep, "is_network_fs", lambda path: True)  # as on an NFS mount
    _, text, dashboard = sweep.open_storage(None, tmp_path / "nfs")
    assert text == "journal:study.journal" and (tmp_path / "nfs").is_dir() and dashboard.endswith("study.journal")
    for spec in ("study.db", f"sqlite:///{tmp_path}/nfs/x.db"):
        with pytest.raises(NtgError, match="SQLite on a network file system is not safe; use journal:study.journal"):
            sweep.open_storage(spec, tmp_path / "nfs")


def test_a_trial_that_fits_no_node_is_refused_before_it_runs():
    from ntg.errors import NtgError
    from ntg.search.driver import check_cluster_fits

    two_cpu_nodes = [{"CPU": 1.0}, {"CPU": 1.0}]
    check_cluster_fits(two_cpu_nodes, 1, 0, workers=2)  # one Ray Train worker on each node
    with pytest.raises(NtgError, match=r"0\.5 GPU .* \(nodes: 1 CPU/0 GPU, 1 CPU/0 GPU\); use --gpus-per-trial 0"):
        check_cluster_fits(two_cpu_nodes, 1, 0.5)
    with pytest.raises(NtgError, match="2 CPU and 0 GPU .* --allow-autoscale"):
        check_cluster_fits(two_cpu_nodes, 2, 0)
    with pytest.raises(NtgError, match=r"each Ray Train worker .*\(× 3 workers\)"):
        check_cluster_fits(two_cpu_nodes, 1, 0, workers=3)
    check_cluster_fits(two_cpu_nodes, 2, 1, allow_autoscale=True)  # the autoscaler adds such nodes
    check_cluster_fits([{"CPU": 8.0, "GPU": 1.0}], 2, 0.25)  # fractional GPUs share one


def test_sweep_to_a_file_uri_writes_everything_there(ray_cluster, iot_small, tmp_path):
    space = _space(tmp_path, "baselines", BASELINES)
    target = tmp_path / "shared mount" / "sweep"
    summary = run_sweep(SweepOptions(spaces=[space], data_dir=iot_small.root, n_trials=2,
                                     out=f"file://{str(target).replace(' ', '%20')}", concurrency=2),
                        log=lambda line: None)
    assert Path(summary["sweep_dir"]) == target
    records = load_trial_records(target)
    assert len(records) == 2 and (target / "sweep.json").is_file() and (target / "study.db").is_file()
    assert list((target / "tune").glob("run-1/trial_*")), "Tune's storage_path is the same folder"
    trained = [r for r in records if not r["metrics"].get("reused_from")]
    assert all(r["node_id"] and r["node_ip"] for r in trained)
    # when and how long each trial ran, measured in the trial: it started before the driver recorded it
    for r in trained:
        started = datetime.fromisoformat(r["started"])
        assert started + timedelta(seconds=r["wall_s"]) <= datetime.fromisoformat(r["finished"]) + timedelta(seconds=1)
    assert all((target / r["generator_dir"] / "config.json").is_file() for r in records)
