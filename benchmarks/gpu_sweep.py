"""Trials per hour per GPU of a small `ntg sweep` with fractional GPUs: the figure cluster/README.md sizes with.

    python benchmarks/gpu_sweep.py [--trials 8] [--gpus-per-trial 0.25] [--cpus-per-trial 2] [--epochs 8]
                                   [--data DIR] [--out benchmarks/results/gpu_sweep.json]

Needs CUDA (exits with a one-line message otherwise). Starts a local Ray instance with this machine's CPUs and
GPUs, runs transformer trials (default search-space sizes, ``--epochs`` epochs, 1 / ``--gpus-per-trial``
trials sharing each GPU) on eight iot-sentinel device types (real captures from ``NTG_DATA_ROOT`` or
../shared/datasets, prepared into a temporary folder unless ``--data`` names a prepared dataset), and reports
trials per hour per GPU = trials / sweep wall hours / GPUs, beside each trial's device, sampling precision and
own wall time (training + evaluation). The sweep's wall time excludes ``ray.init`` (reported apart).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "tests"))

SPACE = """
max_parameters: 2000000
families:
  transformer:
    model:
      n_layers: {{type: int, low: 2, high: 4}}
      n_heads: 4
      d_model: {{type: categorical, choices: [96, 128, 160]}}
      mlp_hidden: "4 * d_model"
    train:
      lr: {{type: float, low: 5.0e-4, high: 3.0e-3, log: true}}
      epochs: {epochs}
      patience: {epochs}
      batch_size: 256
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--gpus-per-trial", type=float, default=0.25)
    parser.add_argument("--cpus-per-trial", type=float, default=2)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--data", type=Path, help="a prepared dataset (default: eight iot-sentinel devices)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "gpu_sweep.json")
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print("gpu_sweep: no CUDA device here (torch.cuda.is_available() is False); run it on a GPU machine",
              file=sys.stderr)
        return 2
    import ray

    from ntg.search.records import load_trial_records
    from ntg.search.sweep import SweepOptions, run_sweep
    from ntg.utils.io import write_json

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    gpus = torch.cuda.device_count()
    cpus = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="gpu-sweep-") as tmp:
        tmp = Path(tmp)
        if args.data is None:
            from bench_sweep import prepare_small

            data = prepare_small(tmp)
        else:
            data = args.data
        space = tmp / "space.yaml"
        space.write_text(SPACE.format(epochs=args.epochs))
        t0 = time.perf_counter()
        ray.init(num_cpus=cpus, num_gpus=gpus, object_store_memory=500 * 1024 * 1024, include_dashboard=False,
                 log_to_driver=False, runtime_env={"env_vars": {"RAY_AUTH_MODE": "disabled"}})
        ray_init_s = time.perf_counter() - t0
        try:
            concurrency = min(int(gpus / args.gpus_per_trial), int(cpus // args.cpus_per_trial))
            options = SweepOptions(spaces=[space], data_dir=data, n_trials=args.trials, out=tmp / "sweep", seed=0,
                                   concurrency=max(1, concurrency), cpus_per_trial=args.cpus_per_trial,
                                   gpus_per_trial=args.gpus_per_trial)
            t0 = time.perf_counter()
            run_sweep(options, log=print)
            wall = time.perf_counter() - t0
        finally:
            ray.shutdown()
        records = load_trial_records(tmp / "sweep")

    trained = [r for r in records if r["status"] == "complete" and not r["metrics"].get("reused_from")]
    result = {
        "gpu": torch.cuda.get_device_name(0), "gpus": gpus, "cpus": cpus, "trials": len(records),
        "trained_trials": len(trained), "gpus_per_trial": args.gpus_per_trial, "cpus_per_trial": args.cpus_per_trial,
        "concurrency": options.concurrency, "epochs": args.epochs, "ray_init_s": ray_init_s, "sweep_wall_s": wall,
        "trials_per_hour_per_gpu": len(records) / (wall / 3600) / gpus,
        "per_trial": [{"trial_id": r["trial_id"], "device": r["device"], "status": r["status"],
                       "sample_precision": r["metrics"].get("sample_precision"), "wall_s": r["wall_s"],
                       "train_seconds": r["objectives"].get("train_seconds"),
                       "fidelity": r["objectives"].get("fidelity")} for r in records],
        "torch": torch.__version__, "ray": ray.__version__, "date": time.strftime("%Y-%m-%d"),
    }
    devices = sorted({r["device"] for r in trained})
    print(f"{len(records)} trials ({len(trained)} trained on {', '.join(devices) or '-'}) in {wall:.0f} s on "
          f"{gpus} × {result['gpu']}, {options.concurrency} at a time ({args.gpus_per_trial:g} GPU each): "
          f"{result['trials_per_hour_per_gpu']:.0f} trials per hour per GPU")
    write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
