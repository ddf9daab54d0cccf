"""Sampling throughput and peak memory of the diffusion generator and the classical baselines.

For each generator: flows/s and peak memory while sampling batches of 1, 256 and 4096 flows (diffusion at its
default DDIM steps and guidance); for the diffusion also training flows/s (the project's training loop).
Peak memory is the CUDA allocator's peak on a GPU, else the process RSS rise above the pre-call level
(polled every 2 ms). Writes ``benchmarks/results/sampling_diffusion.json``.

    python benchmarks/bench_sampling_diffusion.py                 # constructed flows, 29 classes
    python benchmarks/bench_sampling_diffusion.py --data DIR      # a prepared dataset's training split
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import torch

from ntg.data.schema import FlowTable
from ntg.families import BASELINE_FAMILIES
from ntg.models import create_generator
from ntg.models.fitting import TrainConfig

RESULTS = Path(__file__).resolve().parent / "results" / "sampling_diffusion.json"


def constructed_flows(n_classes: int = 29, per_class: int = 300, p: int = 10, seed: int = 0) -> FlowTable:
    """Flows with a class-specific length, payload and timing profile (stand-in when no dataset is given)."""
    rng = np.random.default_rng(seed)
    tables = []
    for c in range(n_classes):
        length = np.clip(rng.poisson(1 + c % p, per_class) + 1, 1, p)
        mask = np.arange(p)[None, :] < length[:, None]
        payload = np.where(mask, rng.lognormal(2 + c % 5, 1.0, (per_class, p)).astype(int), 0)
        iat = np.where(mask, rng.exponential(10.0 ** -(c % 4), (per_class, p)).round(6), 0.0)
        iat[:, 0] = 0
        direction = np.where(mask, rng.random((per_class, p)) < 0.3 + 0.02 * c, 0)
        zeros = np.zeros((per_class, p), int)
        meta = pd.DataFrame({"label": [f"class{c:02d}"] * per_class})
        tables.append(FlowTable(length, np.minimum(payload, 1460), direction, iat, zeros, zeros, meta))
    return FlowTable.concat(tables)


class PeakMemory:
    """Peak memory (bytes) of the code inside the ``with`` block."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.peak = device, 0

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
        else:
            self.process = psutil.Process()
            self.base = self.top = self.process.memory_info().rss
            self.running = True
            self.thread = threading.Thread(target=self._poll, daemon=True)
            self.thread.start()
        return self

    def _poll(self) -> None:
        while self.running:
            self.top = max(self.top, self.process.memory_info().rss)
            time.sleep(0.002)

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated(self.device) - self.base
        else:
            self.running = False
            self.thread.join()
            self.peak = max(self.top, self.process.memory_info().rss) - self.base


def time_sampling(gen, batch: int, device: torch.device, min_seconds: float) -> dict:
    gen.sample(min(batch, 8), seed=0)  # warm-up
    runs, elapsed, peak = 0, 0.0, 0
    while elapsed < min_seconds or runs == 0:
        with PeakMemory(device) as mem:
            t0 = time.perf_counter()
            flows = gen.sample(batch, seed=runs)
            if device.type == "cuda":
                torch.cuda.synchronize()
            elapsed += time.perf_counter() - t0
        flows.validate()
        peak, runs = max(peak, mem.peak), runs + 1
    return {"batch": batch, "flows_per_s": batch * runs / elapsed, "peak_mem_mb": peak / 2**20, "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", help="prepared dataset folder (default: constructed flows, 29 classes)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batches", default="1,256,4096")
    parser.add_argument("--train-epochs", type=int, default=1)
    parser.add_argument(
        "--min-seconds", type=float, default=1.0, help="time each batch size at least this long"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    batches = [int(b) for b in args.batches.split(",")]
    if args.data:
        from ntg.data.dataset import PreparedDataset

        train = PreparedDataset.load(args.data).train
    else:
        train = constructed_flows()
    result = {
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "train_flows": len(train),
        "data": args.data or "constructed (29 classes x 300 flows)",
        "generators": {},
    }

    diffusion = create_generator("diffusion")
    config = TrainConfig(epochs=args.train_epochs, val_fraction=0.0, device=str(device))
    diffusion.fit(train, train_config=config, progress=True)
    hist = diffusion.training_result_.history
    entry = {
        "config": diffusion.get_config(),
        "num_parameters": diffusion.num_parameters(),
        "train_flows_per_s": float(np.mean([h.flows_per_s for h in hist])),
        "train_loss_by_epoch": [h.train_loss for h in hist],
        "sampling": [],
    }
    result["generators"]["diffusion"] = entry
    for batch in batches:
        entry["sampling"].append(time_sampling(diffusion, batch, device, args.min_seconds))
        print("diffusion", entry["sampling"][-1], file=sys.stderr)

    for family in BASELINE_FAMILIES:
        gen = create_generator(family)
        t0 = time.perf_counter()
        gen.fit(train)
        entry = {"num_parameters": gen.num_parameters(), "fit_s": time.perf_counter() - t0, "sampling": []}
        result["generators"][family] = entry
        for batch in batches:
            entry["sampling"].append(time_sampling(gen, batch, torch.device("cpu"), args.min_seconds))
            print(family, entry["sampling"][-1], file=sys.stderr)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
