"""Run every CPU benchmark in turn (``make bench``); each prints its measured ratios and writes its JSON.

GPU checks (``gpu_check_*.py``) are left out: they need a CUDA device. The benchmarks on trained generators
(sampling the task itself, bf16 vs float32 sample quality) run when ``make demo`` has left its generators
in ``artifacts/demo``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEMO = HERE.parent / "artifacts" / "demo"
BENCHMARKS = [
    ["bench_ingest.py"],
    ["bench_evaluate.py"],
    ["bench_training.py", "--device", "cpu"],
    ["bench_sampling_ar.py"],
    ["bench_sampling_diffusion.py", "--device", "cpu", "--batches", "1,256", "--out",
     str(HERE / "results" / "sampling_diffusion_cpu.json")],
]
TRAINED = [
    ["bench_sampling_ar.py", "--trained", str(DEMO / "runs")],
    ["bench_sample_precision.py", "--runs", str(DEMO / "runs"), "--data", str(DEMO / "data")],
]


def main() -> int:
    failures = 0
    benchmarks = list(BENCHMARKS)
    if (DEMO / "runs").is_dir():
        benchmarks += TRAINED
    else:
        print(f"no trained generators in {DEMO} (run `make demo` first): the trained-generator benchmarks are skipped")
    for args in benchmarks:
        print(f"\n=== {' '.join(args)}", flush=True)
        started = time.perf_counter()
        code = subprocess.call([sys.executable, str(HERE / args[0]), *args[1:]])
        print(f"=== {args[0]}: exit {code}, {time.perf_counter() - started:.0f} s", flush=True)
        failures += code != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
