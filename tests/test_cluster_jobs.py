"""`ntg sweep` and `ntg train --workers` on a real two-node Ray cluster on this machine, submitted as Ray jobs.

One cluster for the module (head + one more node, 1 CPU each, own temp dir and free ports), stopped by its finalizer
even when a test fails. What is checked: a sweep job is stopped mid-way and resubmitted with ``--resume`` (the
resubmission SUCCEEDED, the sweep reaches its trial count, every trial finished before the stop is kept, trials that
ran at the same time ran on different nodes, its front is in the sweep folder); a GPU asked of a CPU-only cluster
fails fast in one line; ``ntg train --workers 2`` trains across the two nodes into a run folder whose generator
samples like an in-process one. A trial whose node dies mid-training (a cluster of its own, second node killed) is
retried on the head from its epoch checkpoint and the sweep reaches its trial count.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime
from itertools import combinations
from pathlib import Path

import pytest
from ray_cluster import TwoNodeCluster

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.timeout(900)]
NTG = str(Path(sys.executable).with_name("ntg"))
SWEEP_TRIALS = 16  # Markov trials take a second or two: enough that the stop lands mid-sweep on a loaded machine
MARKOV = """
families:
  markov:
    model:
      order: {type: categorical, choices: [1, 2]}
      payload_bins: {type: int, low: 4, high: 32, step: 4}
      iat_bins: {type: int, low: 4, high: 16, step: 4}
"""
TINY_TRANSFORMER = ["--set", "model.d_model=16", "--set", "model.n_layers=1", "--set", "model.n_heads=2",
                    "--set", "model.mlp_hidden=32", "--set", "train.epochs=2", "--set", "train.max_train_flows=400",
                    "--set", "train.batch_size=64"]


@pytest.fixture(scope="module")
def cluster():
    nodes = TwoNodeCluster()
    try:
        yield nodes
    finally:
        nodes.stop()


def _records(sweep_dir: Path) -> dict[str, dict]:
    folder = sweep_dir / "trials"
    return {p.name: json.loads(p.read_text()) for p in folder.glob("*.json")} if folder.is_dir() else {}


def _status(cluster: TwoNodeCluster, job_id: str) -> str:
    return cluster.status(job_id)


def _overlapping(records: list[dict]) -> list[tuple[dict, dict]]:
    """Pairs of trials whose runs (``started`` + ``wall_s``, both measured in the trial) overlapped in time."""
    spans = [(datetime.fromisoformat(r["started"]).timestamp(), r) for r in records]
    return [(a, b) for (t_a, a), (t_b, b) in combinations(spans, 2)
            if t_a < t_b + b["wall_s"] and t_b < t_a + a["wall_s"]]


def test_sweep_job_stopped_then_resumed_on_both_nodes(cluster, iot_small, tmp_path):
    space = tmp_path / "markov.yaml"
    space.write_text(MARKOV)
    sweep_dir = tmp_path / "sweep"
    sweep = ["ntg", "sweep", "--space", str(space), "--data", str(iot_small.root), "--trials", str(SWEEP_TRIALS),
             "--out", str(sweep_dir), "--cpus-per-trial", "1", "--concurrency", "2", "--address", "auto"]
    submit = ["submit", "--working-dir", ".", "--runtime-env", "cluster/runtime_env.yaml"]
    first = cluster.job(*submit, "--submission-id", "sweep-1", "--no-wait", "--", *sweep)
    assert first.returncode == 0, first.stderr[-2000:]
    deadline = time.monotonic() + 300
    while not _records(sweep_dir) and time.monotonic() < deadline:
        assert _status(cluster, "sweep-1") != "FAILED", cluster.job("logs", "sweep-1").stdout[-3000:]
        time.sleep(2)
    stop = cluster.job("stop", "sweep-1", timeout=120)
    assert stop.returncode == 0, stop.stderr[-2000:]
    before = _records(sweep_dir)
    assert 1 <= len(before) < SWEEP_TRIALS, "the stop came mid-sweep"
    assert _status(cluster, "sweep-1") == "STOPPED"

    second = cluster.job(*submit, "--submission-id", "sweep-2", "--", *sweep, "--resume", timeout=600)
    logs = cluster.job("logs", "sweep-2").stdout
    assert second.returncode == 0, logs[-3000:] + second.stderr[-2000:]
    assert _status(cluster, "sweep-2") == "SUCCEEDED"
    # progress lines reach `ray job logs`
    assert f"[{SWEEP_TRIALS}/{SWEEP_TRIALS}]" in logs and "front (fidelity, flops_per_flow)" in logs

    after = _records(sweep_dir)
    assert len(after) == SWEEP_TRIALS
    assert all(after[name] == record for name, record in before.items())  # kept, not trained again
    trained = [r for r in after.values() if not r["metrics"].get("reused_from")]
    assert all(r["node_id"] and r["node_ip"] and r["started"] for r in trained)
    # Trials that ran at the same time ran on different nodes (one CPU each). Which node a trial gets is Ray's
    # choice: a Markov trial takes a second or two, and on a loaded machine Tune may hand every trial to the same
    # reused actor one after another (seen once, with the other core busy), so both nodes are not required here;
    # `ntg train --workers 2` below must use both.
    together = _overlapping(trained)
    assert all(a["node_id"] != b["node_id"] for a, b in together), "two trials at once on a node of one CPU"
    meta = json.loads((sweep_dir / "sweep.json").read_text())
    assert meta["study_storage"] == "study.db"  # a local disk: SQLite (journal on a network file system)

    pareto = subprocess.run([NTG, "pareto", str(sweep_dir)], capture_output=True, text=True, timeout=300)
    assert pareto.returncode == 0, pareto.stderr[-2000:]
    front = json.loads((sweep_dir / "front.json").read_text())
    on_front = [row for row in front["trials"] if row["on_front"]] if "trials" in front else front
    assert on_front and all((sweep_dir / row["generator_dir"] / "config.json").is_file() for row in on_front)


def test_gpu_on_a_cpu_only_cluster_fails_fast(cluster, iot_small, tmp_path):
    space = tmp_path / "markov.yaml"
    space.write_text(MARKOV)
    started = time.monotonic()
    sweep = subprocess.run([NTG, "sweep", "--space", str(space), "--data", str(iot_small.root), "--trials", "2",
                            "--out", str(tmp_path / "gpu-sweep"), "--gpus-per-trial", "0.5",
                            "--address", cluster.address], capture_output=True, text=True, env=cluster.env,
                           timeout=120)
    train = subprocess.run([NTG, "train", "--family", "transformer", "--data", str(iot_small.root), "--out",
                            str(tmp_path / "gpu-run"), "--workers", "2", "--gpus-per-worker", "1", "--address",
                            cluster.address], capture_output=True, text=True, env=cluster.env, timeout=120)
    assert time.monotonic() - started < 100
    for done, option in ((sweep, "--gpus-per-trial 0"), (train, "drop --gpus-per-worker")):
        errors = [line for line in done.stderr.splitlines() if line.startswith("ntg: error:")]
        assert done.returncode == 2 and len(errors) == 1, done.stderr[-2000:]
        assert "0 GPU" in errors[0] and option in errors[0]
    assert not (tmp_path / "gpu-run" / "run.json").exists()


def test_train_with_two_workers_across_the_nodes(cluster, iot_small, tmp_path):
    from ntg.data.schema import FlowTable
    from ntg.models.base import load_generator
    from ntg.training.runs import sample_run, train_run

    out = tmp_path / "ddp"
    done = subprocess.run([NTG, "train", "--family", "transformer", "--data", str(iot_small.root), "--out",
                           str(out), "--workers", "2", "--address", cluster.address, *TINY_TRANSFORMER],
                          capture_output=True, text=True, env=cluster.env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    log = json.loads((out / "train_log.json").read_text())
    run = json.loads((out / "run.json").read_text())
    # 2 workers of 1 CPU on two 1-CPU nodes: one worker on each node
    assert log["world_size"] == 2 and run["distributed"]["num_workers"] == 2 and len(log["history"]) == 2
    assert (out / "checkpoints" / "checkpoint.pt").is_file()  # a rerun resumes from it

    local = train_run("transformer", iot_small.root, tmp_path / "local",
                      overrides=[s for s in TINY_TRANSFORMER if s != "--set"], progress=False)
    local_log = json.loads((Path(local) / "train_log.json").read_text())
    assert {p.name for p in Path(local).iterdir()} <= {p.name for p in out.iterdir()}  # same run folder
    assert load_generator(out).get_config() == load_generator(local).get_config()
    # same loop, same data: the two losses agree to within what the sharded batches change
    ddp_loss, local_loss = log["history"][-1]["val_loss"], local_log["history"][-1]["val_loss"]
    assert abs(ddp_loss - local_loss) < 0.25 * local_loss, (ddp_loss, local_loss)
    ddp = FlowTable.read(sample_run(out, 300, seed=1, out=tmp_path / "ddp.parquet"))
    ref = FlowTable.read(sample_run(local, 300, seed=1, out=tmp_path / "local.parquet"))
    assert len(ddp) == len(ref) == 300 and set(ddp.meta.columns) == set(ref.meta.columns)
    assert set(ddp.meta["label"]) <= set(iot_small.classes)
    assert abs(float(ddp.length.mean()) - float(ref.length.mean())) < 0.35 * float(ref.length.mean())


TINY_SPACE = """
families:
  transformer:
    model:
      d_model: {type: categorical, choices: [16]}
      n_layers: 1
      n_heads: 2
      mlp_hidden: 32
    train:
      epochs: 2
      max_train_flows: 400
      batch_size: 64
"""


def test_trial_with_two_ray_train_workers_joins_the_front(cluster, iot_small, tmp_path):
    space = tmp_path / "tiny.yaml"
    space.write_text(TINY_SPACE)
    sweep_dir = tmp_path / "ddp-sweep"
    done = subprocess.run([NTG, "sweep", "--space", str(space), "--data", str(iot_small.root), "--trials", "1",
                           "--out", str(sweep_dir), "--workers-per-trial", "2", "--cpus-per-trial", "1",
                           "--address", cluster.address], capture_output=True, text=True, env=cluster.env,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "× 2 Ray Train workers" in done.stdout
    (record,) = _records(sweep_dir).values()
    # 2 workers of 1 CPU on two 1-CPU nodes: one on each; the evaluation ran once, in the trial
    assert record["status"] == "complete" and record["feasible"], record
    assert record["metrics"]["world_size"] == 2 and record["metrics"]["epochs"] == 2
    assert (sweep_dir / record["generator_dir"] / "model.safetensors").is_file()
    assert f"front (fidelity, flops_per_flow): 1 trial(s) {record['trial_id']}" in done.stdout
    assert list((sweep_dir / "tune" / "train").glob("ddp-*")), "the Train run is named after the Tune trial"


LOST_NODE_SPACE = """
families:
  transformer:
    model:
      d_model: {type: categorical, choices: [16, 24]}
      n_layers: 1
      n_heads: 2
      mlp_hidden: {type: int, low: 16, high: 64, step: 8}
    train:
      epochs: 16
      max_train_flows: 400
      batch_size: 64
"""


def _trial_running_on(nodes: TwoNodeCluster, node_id: str, run_dir: Path, epochs: int) -> Path | None:
    """The Tune folder of a trial that reported an epoch (so it has a checkpoint) from a process alive on
    ``node_id`` and has half its epochs or more left (a margin for a loaded machine): Tune puts each result's
    ``pid`` in ``result.json``; the State API says which node each alive actor's process is on."""
    from ray.util.state import list_actors

    pids = {a.pid for a in list_actors(address=nodes.dashboard,
                                       filters=[("state", "=", "ALIVE"), ("node_id", "=", node_id)], detail=True,
                                       raise_on_missing_output=False)}
    for folder in run_dir.glob("trial_*"):
        lines = (folder / "result.json").read_text().splitlines() if (folder / "result.json").is_file() else []
        try:
            last = json.loads(lines[-1]) if lines else None
        except ValueError:  # being written
            continue
        mid_training = last and not last.get("ntg_done") and last["training_iteration"] <= epochs // 2
        if mid_training and last.get("pid") in pids:
            return folder
    return None


def test_trial_on_a_lost_node_is_retried_and_the_sweep_goes_on(iot_small, tmp_path):
    nodes = TwoNodeCluster()  # a cluster of its own: this test kills its second node
    driver = None
    try:
        head_id, worker_id = nodes.node_ids()
        space = tmp_path / "tf.yaml"
        space.write_text(LOST_NODE_SPACE)
        sweep_dir = tmp_path / "lost-node"
        log = tmp_path / "driver.log"
        with open(log, "wb") as out:  # the driver connects to the head's raylet (Ray prefers the head)
            driver = subprocess.Popen([NTG, "sweep", "--space", str(space), "--data", str(iot_small.root),
                                       "--trials", "3", "--out", str(sweep_dir), "--cpus-per-trial", "1",
                                       "--concurrency", "2", "--address", nodes.address],
                                      stdout=out, stderr=subprocess.STDOUT, env=nodes.env)
        victim, deadline = None, time.monotonic() + 240
        while victim is None and time.monotonic() < deadline:
            assert driver.poll() is None, log.read_text()[-3000:]
            victim = _trial_running_on(nodes, worker_id, sweep_dir / "tune" / "run-1", epochs=16)
            time.sleep(0.5)
        assert victim is not None, "no trial was caught mid-training on the second node:\n" + log.read_text()[-3000:]
        nodes.kill_worker()
        started = time.monotonic()
        assert driver.wait(timeout=400) == 0, log.read_text()[-3000:]
        print(f"the sweep finished {time.monotonic() - started:.0f} s after the node died")
        output = log.read_text()
        assert "[3/3]" in output

        records = _records(sweep_dir)
        assert len(records) == 3 and all(r["status"] in ("complete", "infeasible") for r in records.values())
        number = json.loads((victim / "params.json").read_text())["trial_number"]
        (retried,) = [r for r in records.values() if r["number"] == number]
        # the trial cut on the dead node ran again on the head, from the epoch checkpoint it had reported
        assert retried["status"] == "complete" and retried["node_id"] == head_id, retried
        assert retried["metrics"]["resumed_from_epoch"] >= 1, retried["metrics"]
        assert "Failure # 1" in (victim / "error.txt").read_text()  # Tune's record of the failure it retried
        print(f"{victim.name} (trial {number}) retried on the head from epoch "
              f"{retried['metrics']['resumed_from_epoch']} of {retried['metrics']['epochs']}")
    finally:
        if driver is not None and driver.poll() is None:
            driver.kill()
            driver.wait()
        nodes.stop()
