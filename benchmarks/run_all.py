"""Run every CPU benchmark in turn (``make bench``); each prints its measured ratios and writes its JSON.

GPU checks (``gpu_check_*.py``, ``gpu_sweep.py``) are left out: they need a CUDA device. The benchmarks on
trained generators (sampling the task itself, bf16 vs float32 sample quality) run when ``make demo`` has left
its neural sweep in ``artifacts/demo``: each family's most faithful feasible trial (validation fidelity) is
linked as ``artifacts/demo/bench-runs/<family>``, the layout those benchmarks read.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEMO = HERE.parent / "artifacts" / "demo"
DEMO_SWEEP = DEMO / "sweeps" / "neural"
RUNS = DEMO / "bench-runs"
BENCHMARKS = [
    ["bench_ingest.py"],
    ["bench_evaluate.py"],
    ["bench_sweep.py"],
    ["bench_ray_overhead.py"],
    ["bench_training.py", "--device", "cpu"],
    ["bench_sampling_ar.py"],
    ["bench_sampling_diffusion.py", "--device", "cpu", "--batches", "1,256", "--out",
     str(HERE / "results" / "sampling_diffusion_cpu.json")],
]
TRAINED = [
    ["bench_sampling_ar.py", "--trained", str(RUNS)],
    ["bench_sample_precision.py", "--runs", str(RUNS), "--data", str(DEMO / "data")],
]


def link_demo_generators() -> list[str]:
    """``RUNS/<family>`` → the generator of the family's best feasible trial in the demo's neural sweep."""
    from ntg.search.records import load_trial_records

    best: dict[str, tuple[float, Path]] = {}
    for record in load_trial_records(DEMO_SWEEP) if DEMO_SWEEP.is_dir() else []:
        fidelity = (record.get("objectives") or {}).get("fidelity")
        if not record.get("feasible") or record.get("generator_dir") is None or fidelity is None:
            continue
        if record["family"] not in best or fidelity < best[record["family"]][0]:
            best[record["family"]] = (fidelity, DEMO_SWEEP / record["generator_dir"])
    RUNS.mkdir(parents=True, exist_ok=True)
    for family, (_, generator) in best.items():
        link = RUNS / family
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(generator.resolve(), target_is_directory=True)
    return sorted(best)


def main() -> int:
    failures = 0
    benchmarks = list(BENCHMARKS)
    families = link_demo_generators()
    if families:
        print(f"trained generators of the demo's neural sweep: {', '.join(families)} (linked in {RUNS})")
        benchmarks += TRAINED
    else:
        print(f"no neural sweep in {DEMO_SWEEP} (run `make demo` first): the trained-generator benchmarks are "
              "skipped")
    for args in benchmarks:
        print(f"\n=== {' '.join(args)}", flush=True)
        started = time.perf_counter()
        code = subprocess.call([sys.executable, str(HERE / args[0]), *args[1:]])
        print(f"=== {args[0]}: exit {code}, {time.perf_counter() - started:.0f} s", flush=True)
        failures += code != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
