"""Run every CPU benchmark in turn (``make bench``); each prints its measured ratios and writes its JSON.

GPU checks (``gpu_check_*.py``) are left out: they need a CUDA device.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = [
    ["bench_ingest.py"],
    ["bench_training.py", "--device", "cpu"],
    ["bench_sampling_ar.py"],
    ["bench_sampling_diffusion.py", "--device", "cpu", "--batches", "1,256", "--out",
     str(HERE / "results" / "sampling_diffusion_cpu.json")],
]


def main() -> int:
    failures = 0
    for args in BENCHMARKS:
        print(f"\n=== {' '.join(args)}", flush=True)
        started = time.perf_counter()
        code = subprocess.call([sys.executable, str(HERE / args[0]), *args[1:]])
        print(f"=== {args[0]}: exit {code}, {time.perf_counter() - started:.0f} s", flush=True)
        failures += code != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
