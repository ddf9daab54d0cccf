"""Does `ntg sweep` keep the cores busy, and what does Ray cost per trial? Beside a plain sequential loop.

    python benchmarks/bench_sweep.py [--trials 6] [--epochs 32] [--data DIR] [--out benchmarks/results/sweep.json]

A sweep of transformer trials of about 30 s each (1 CPU and 1 torch thread per trial, as many at a time as
there are cores; a continuous learning rate, so no configuration repeats and none is reused) on eight
iot-sentinel device types (real captures, prepared into a temporary folder unless
``--data`` names a prepared dataset); then the same configurations, read back from the trial records, are
trained and evaluated one after the other in this process with the same code (``evaluate_config``), no Ray.

Printed and written to the results JSON:

* ``busy`` = Σ trial compute / (cores × sweep wall time), trial compute being each trial's own wall time
  inside its worker (training, evaluation, saving); the issue asks for ≥ 0.8 with trials of ≥ 30 s.
* ``ray_overhead_per_trial_s`` = (concurrency × sweep wall − Σ trial compute) / trials: what each trial slot
  spends outside the trial function (actor start or reuse, scheduling, result and checkpoint handling in
  the driver, waiting for the last trials); ``in_trial_overhead_s`` = mean trial compute under Ray − mean
  wall of the same configuration run sequentially (per-epoch ``tune.report`` and checkpoint uploads, and any
  contention between the concurrent trials).
* ``trial_cpu_s`` / ``sequential_cpu_s`` (``time.process_time``) beside the wall times: where a trial's wall
  time exceeds its sequential run but its CPU time does not, it waited for a core (other load on the machine),
  which is not Ray's cost; ``busy_cpu`` is ``busy`` counted in CPU time.
* ``ray_init_s``: starting the local Ray instance (paid once per sweep, not counted in the sweep wall).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from conftest import DATASETS, IOT_SMALL_DEVICES, iot_sentinel_dir  # noqa: E402

from ntg.search.records import load_trial_records  # noqa: E402
from ntg.search.sweep import OBJECT_STORE_BYTES, SweepOptions, run_sweep  # noqa: E402
from ntg.search.trial import evaluate_config  # noqa: E402
from ntg.utils.io import write_json  # noqa: E402

SPACE = """
max_parameters: 2000000
families:
  transformer:
    model:
      n_layers: {{type: categorical, choices: [2, 3]}}
      n_heads: 4
      d_model: {{type: categorical, choices: [64, 96]}}
      mlp_hidden: "3 * d_model"
    train:
      lr: {{type: float, low: 5.0e-4, high: 3.0e-3, log: true}}
      epochs: {epochs}
      patience: {epochs}
      batch_size: 128
"""


def prepare_small(root: Path) -> Path:
    """Eight iot-sentinel device types (the tests' iot_small), prepared into ``root``."""
    from ntg.data.prepare import PrepareOptions, prepare_dataset

    captures = root / "captures"
    captures.mkdir()
    for device in IOT_SMALL_DEVICES:
        (captures / device).symlink_to(iot_sentinel_dir(DATASETS) / device, target_is_directory=True)
    options = PrepareOptions(labels="dir", device_only=True, min_flows_per_class=10)
    prepare_dataset(str(captures), root / "data", options, jobs=1, progress=False, log=lambda m: None)
    return root / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=32, help="epochs per trial (about 0.7 s each here)")
    parser.add_argument("--data", type=Path, help="a prepared dataset (default: eight iot-sentinel devices)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "sweep.json")
    args = parser.parse_args()

    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    torch.set_num_threads(1)
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        tmp = Path(tmp)
        data = args.data or prepare_small(tmp)
        space = tmp / "space.yaml"
        space.write_text(SPACE.format(epochs=args.epochs))
        t0 = time.perf_counter()
        ray.init(num_cpus=cores, object_store_memory=OBJECT_STORE_BYTES, include_dashboard=False,
                 log_to_driver=False, runtime_env={"env_vars": {"RAY_AUTH_MODE": "disabled", "OMP_NUM_THREADS": "1"}})
        ray_init_s = time.perf_counter() - t0
        try:
            options = SweepOptions(spaces=[space], data_dir=data, n_trials=args.trials, out=tmp / "sweep",
                                   seed=0, concurrency=cores, cpus_per_trial=1)
            t0 = time.perf_counter()
            run_sweep(options, log=print)
            sweep_wall = time.perf_counter() - t0
        finally:
            ray.shutdown()
        records = [r for r in load_trial_records(tmp / "sweep") if not r["metrics"].get("reused_from")]
        compute = [float(r["wall_s"]) for r in records]
        compute_cpu = [float(r["metrics"]["cpu_s"]) for r in records]
        sequential, sequential_cpu = [], []
        settings = {"data_dir": str(data), "max_parameters": 2_000_000, "max_epochs": None}
        for i, record in enumerate(records):  # the same configurations, one after the other, no Ray
            t0, c0 = time.perf_counter(), time.process_time()
            evaluate_config(record["family"], record["model"], record["train"], settings, work_dir=tmp / f"seq{i}")
            sequential.append(time.perf_counter() - t0)
            sequential_cpu.append(time.process_time() - c0)

    n = len(records)
    concurrency = min(cores, args.trials)
    result = {
        "cores": cores, "trials": n, "epochs": args.epochs, "ray_init_s": ray_init_s, "sweep_wall_s": sweep_wall,
        "trial_compute_s": compute, "sequential_s": sequential,
        "trial_cpu_s": compute_cpu, "sequential_cpu_s": sequential_cpu,
        "busy": sum(compute) / (cores * sweep_wall),
        "busy_cpu": sum(compute_cpu) / (cores * sweep_wall),
        "in_trial_cpu_overhead_s": sum(compute_cpu) / n - sum(sequential_cpu) / n,
        "load_average_after": os.getloadavg(),
        "ray_overhead_per_trial_s": (concurrency * sweep_wall - sum(compute)) / n,
        "in_trial_overhead_s": sum(compute) / n - sum(sequential) / n,
        "speedup_vs_sequential": sum(sequential) / sweep_wall,
        "torch": torch.__version__, "ray": ray.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }
    print(f"{n} trials of {sum(compute) / n:.1f} s (sequential {sum(sequential) / n:.1f} s) on {cores} cores: "
          f"sweep {sweep_wall:.1f} s (+ ray.init {ray_init_s:.1f} s) vs sequential {sum(sequential):.1f} s "
          f"({result['speedup_vs_sequential']:.2f}×); busy {result['busy']:.2f} (target ≥ 0.8); "
          f"Ray overhead {result['ray_overhead_per_trial_s']:.1f} s per trial slot, "
          f"{result['in_trial_overhead_s']:+.1f} s inside each trial (CPU time "
          f"{result['in_trial_cpu_overhead_s']:+.1f} s: the rest is waiting for a core); "
          f"busy by CPU time {result['busy_cpu']:.2f}; load average {os.getloadavg()[0]:.1f}")
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
