"""Ray's fixed cost per sweep trial and per DDP trial, beside a trial's own compute, on a two-node local cluster.

    python benchmarks/bench_ray_overhead.py [--trials 4] [--ddp-trials 2] [--out benchmarks/results/ray_overhead.json]

Starts the tests' two-node cluster (tests/ray_cluster.py: head + one node, 1 CPU each, on this machine) and
runs Tune trials whose function does no work, so every second measured is Ray's (timestamps on one clock):

* ``slot_s`` = 2 × Tuner.fit wall / trials (two trials at a time, one per node, doing no work): everything a
  trial costs Ray from the driver's side (placement, actor start, reports, checkpoint, bookkeeping);
* ``start_s``: Tune's ``on_trial_start`` in the driver (emitted once the actor is up) → the trial function's
  first line;
* ``first_report_s``: ``tune.report`` called in the trial → the result seen by the driver's callback;
* ``checkpoint_s``: the same for a report carrying a 5 MB checkpoint folder (a 1.3 M-parameter generator);
* DDP trials (``--workers-per-trial 2`` in a sweep): the trial function starts a ``TorchTrainer`` of two
  workers, one per node: ``ddp_start_s`` = trial function → both workers running the loop (process group
  up), ``ddp_fit_s`` = the whole ``trainer.fit()`` of a loop that reports once, with a checkpoint;
  ``ddp_slot_s`` = Tuner.fit wall / DDP trials (two trial functions at a time, holding no CPU; their
  workers queue for the two nodes' CPUs, so the second ``ddp_fit_s`` includes waiting for the first).

Beside them, the compute of real trials, measured in this process without Ray (``evaluate_config``: training,
fast evaluation, saving): a markov trial and a small one-epoch transformer on eight iot-sentinel device types.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

CHECKPOINT_BYTES = 5 * 1024 * 1024


def probe_trial(config: dict) -> None:
    """No work: enter, report, report with a checkpoint."""
    from ray import tune

    entered = time.time()
    tune.report({"entered": entered, "sent": time.time()})
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "model.safetensors").write_bytes(os.urandom(CHECKPOINT_BYTES))
        tune.report({"entered": entered, "sent": time.time()}, checkpoint=tune.Checkpoint.from_directory(folder))


def _ddp_loop(config: dict) -> None:
    import ray.train
    import torch.distributed as dist

    started = time.time()
    if dist.is_initialized():
        dist.barrier()  # both workers up
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "model.safetensors").write_bytes(os.urandom(CHECKPOINT_BYTES))
        ray.train.report({"worker_started": started},
                         checkpoint=ray.train.Checkpoint.from_directory(folder))


def ddp_trial(config: dict) -> None:
    """A TorchTrainer of two CPU workers started from the trial function, as `--workers-per-trial 2` does."""
    from ray import tune
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    entered = time.time()
    trainer = TorchTrainer(_ddp_loop, scaling_config=ScalingConfig(num_workers=2, resources_per_worker={"CPU": 1}),
                           run_config=RunConfig(name=f"ddp-{tune.get_context().get_trial_id()}",
                                                storage_path=config["storage"]))
    result = trainer.fit()
    tune.report({"entered": entered, "worker_started": result.metrics["worker_started"],
                 "fit_s": time.time() - entered, "sent": time.time()})


class Clock:
    """Driver-side timestamps of trial starts and results."""

    def __init__(self) -> None:
        from ray import tune

        class _Callback(tune.Callback):
            def on_trial_start(cb, iteration, trials, trial, **info):  # noqa: N805
                self.starts[trial.trial_id] = time.time()

            def on_trial_result(cb, iteration, trials, trial, result, **info):  # noqa: N805
                self.results.setdefault(trial.trial_id, []).append((time.time(), dict(result)))

        self.wall_s = 0.0
        self.starts: dict[str, float] = {}
        self.results: dict[str, list] = {}
        self.callback = _Callback()


def run_tune(trainable, n: int, resources: dict, storage: Path, name: str, config: dict | None = None) -> Clock:
    from ray import tune

    clock = Clock()
    tuner = tune.Tuner(tune.with_resources(trainable, resources), param_space={"i": tune.grid_search(list(range(n))),
                                                                               **(config or {})},
                       tune_config=tune.TuneConfig(max_concurrent_trials=2, reuse_actors=False),
                       run_config=tune.RunConfig(name=name, storage_path=str(storage), verbose=0,
                                                 callbacks=[clock.callback]))
    t0 = time.perf_counter()
    tuner.fit()
    clock.wall_s = time.perf_counter() - t0
    return clock


def trial_compute(tmp: Path) -> dict[str, float]:
    """Seconds of one markov and one small transformer trial run without Ray (training + evaluation)."""
    from bench_sweep import prepare_small

    from ntg.search.trial import evaluate_config

    data = prepare_small(tmp)
    settings = {"data_dir": str(data), "max_parameters": 2_000_000, "max_epochs": None}
    compute = {}
    for family, model, train in (("markov", {"order": 2}, {}),
                                 ("transformer", {"n_layers": 2, "n_heads": 4, "d_model": 64, "mlp_hidden": 192},
                                  {"epochs": 1, "batch_size": 128})):
        evaluate_config(family, model, train, settings, work_dir=tmp / f"warm-{family}")  # imports, caches
        t0 = time.perf_counter()
        evaluate_config(family, model, train, settings, work_dir=tmp / family)
        compute[family] = time.perf_counter() - t0
    return compute


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--ddp-trials", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "ray_overhead.json")
    args = parser.parse_args()

    import ray
    import torch
    from ray_cluster import TwoNodeCluster

    from ntg.utils.io import write_json

    os.environ["RAY_AUTH_MODE"] = "disabled"
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        cluster = TwoNodeCluster()
        cluster_s = time.perf_counter() - t0
        try:
            t0 = time.perf_counter()
            ray.init(address=cluster.address, log_to_driver=False,
                     runtime_env={"env_vars": {"RAY_AUTH_MODE": "disabled", "OMP_NUM_THREADS": "1"}})
            init_s = time.perf_counter() - t0
            plain = run_tune(probe_trial, args.trials, {"cpu": 1}, tmp / "tune", "plain")
            ddp = run_tune(ddp_trial, args.ddp_trials, {"cpu": 0, "memory": 1 << 20}, tmp / "tune", "ddp",
                           {"storage": str(tmp / "train")})
        finally:
            ray.shutdown()
            cluster.stop()
        compute = trial_compute(tmp)

    start = [plain.results[t][0][1]["entered"] - plain.starts[t] for t in plain.results]
    first = [plain.results[t][0][0] - plain.results[t][0][1]["sent"] for t in plain.results]
    checkpoint = [plain.results[t][1][0] - plain.results[t][1][1]["sent"] for t in plain.results]
    ddp_start = [r[-1][1]["worker_started"] - r[-1][1]["entered"] for r in ddp.results.values()]
    ddp_fit = [r[-1][1]["fit_s"] for r in ddp.results.values()]
    ddp_trial_start = [ddp.results[t][-1][1]["entered"] - ddp.starts[t] for t in ddp.results]
    mean = statistics.fmean
    result = {
        "nodes": 2, "cpus_per_node": 1, "cluster_start_s": cluster_s, "ray_init_s": init_s,
        "start_s": start, "first_report_s": first, "checkpoint_s": checkpoint, "checkpoint_bytes": CHECKPOINT_BYTES,
        "ddp_trial_start_s": ddp_trial_start, "ddp_start_s": ddp_start, "ddp_fit_s": ddp_fit,
        "trial_compute_s": compute,
        "slot_s": 2 * plain.wall_s / len(plain.results), "ddp_slot_s": ddp.wall_s / len(ddp.results),
        "load_average_after": os.getloadavg(), "ray": ray.__version__, "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }
    print(f"per trial: {result['slot_s']:.2f} s of Ray (function start {mean(start):.3f} s after the actor, "
          f"first report {mean(first):.3f} s, 5 MB checkpoint {mean(checkpoint):.3f} s); per DDP trial (2 workers "
          f"on 2 nodes): {result['ddp_slot_s']:.1f} s of Ray (Train workers up {mean(ddp_start):.1f} s after the "
          f"trial function, fit {mean(ddp_fit):.1f} s); beside trial compute markov "
          f"{compute['markov']:.1f} s, 1-epoch transformer {compute['transformer']:.1f} s "
          f"(cluster start {cluster_s:.0f} s, ray.init {init_s:.1f} s, load {os.getloadavg()[0]:.1f})")
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
