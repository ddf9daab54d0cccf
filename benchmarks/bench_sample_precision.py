"""Does bf16 sampling change what a trained generator produces? Fidelity and TSTR of fp32 vs bf16 samples.

For each trained run folder (default: the demo's transformer, ssm and diffusion runs), samples the test split's
class mix with ``sample_precision`` float32 and bfloat16 and scores both with the evaluation suite
(fidelity score against the test split, lower is better; TSTR macro-F1 of a random forest), beside the
flows/s of each precision at batch 256. A second fp32 sample with another seed gives the seed-to-seed
spread, the yardstick for "no difference".

    .venv/bin/python benchmarks/bench_sample_precision.py [--runs artifacts/demo/runs] [--data artifacts/demo/data]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from ntg.data.dataset import PreparedDataset
from ntg.evaluation.fidelity import fidelity_report
from ntg.evaluation.tstr import synthetic_like, train_and_score
from ntg.families import NEURAL_FAMILIES
from ntg.models import load_generator
from ntg.utils.io import write_json

RESULTS = Path(__file__).resolve().parent / "results" / "sample_precision.json"


def score(gen, dataset: PreparedDataset, seed: int) -> dict[str, float]:
    n = gen.n_packets
    train, test = dataset.train.first(n), dataset.test.first(n)
    synth_test = synthetic_like(gen, test, seed=seed + 101)
    synth_train = synthetic_like(gen, train, seed=seed)
    tstr = train_and_score(synth_train, test, classifier="rf", n_packets=n, seed=0)
    return {"fidelity": float(fidelity_report(test, synth_test, per_class=False, seed=0)["score"]),
            "tstr_macro_f1": float(tstr["macro_f1"])}


def flows_per_s(gen, batch: int = 256, reps: int = 3) -> float:
    gen.sample(batch, seed=0)
    best = float("inf")
    for rep in range(reps):
        t0 = time.perf_counter()
        gen.sample(batch, seed=rep)
        best = min(best, time.perf_counter() - t0)
    return batch / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("artifacts/demo/runs"))
    parser.add_argument("--data", type=Path, default=Path("artifacts/demo/data"))
    parser.add_argument("--families", nargs="+", default=list(NEURAL_FAMILIES))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dataset = PreparedDataset.load(args.data)
    results: dict = {"runs": str(args.runs), "data": str(args.data), "threads": args.threads, "families": {}}
    for family in args.families:
        if not (args.runs / family).is_dir():
            print(f"{family}: no run folder under {args.runs}, skipped")
            continue
        gen = load_generator(args.runs / family)
        rows = {}
        for tag, precision, seed in (("fp32", "float32", 0), ("fp32_seed1", "float32", 1), ("bf16", "bfloat16", 0)):
            gen.sample_precision = precision
            rows[tag] = {**score(gen, dataset, seed), "flows_per_s": flows_per_s(gen)}
            print(f"{family:11s} {tag:10s} fidelity {rows[tag]['fidelity']:.4f}  "
                  f"TSTR macro-F1 {rows[tag]['tstr_macro_f1']:.3f}  {rows[tag]['flows_per_s']:7.0f} flows/s",
                  flush=True)
        seed_spread = {k: abs(rows["fp32"][k] - rows["fp32_seed1"][k]) for k in ("fidelity", "tstr_macro_f1")}
        bf16_shift = {k: abs(rows["fp32"][k] - rows["bf16"][k]) for k in ("fidelity", "tstr_macro_f1")}
        rows["seed_spread"], rows["bf16_shift"] = seed_spread, bf16_shift
        rows["bf16_speedup"] = rows["bf16"]["flows_per_s"] / rows["fp32"]["flows_per_s"]
        print(f"{family:11s} bf16 shift fidelity {bf16_shift['fidelity']:.4f} (seed spread "
              f"{seed_spread['fidelity']:.4f}), TSTR {bf16_shift['tstr_macro_f1']:.3f} (seed spread "
              f"{seed_spread['tstr_macro_f1']:.3f}); bf16 sampling {rows['bf16_speedup']:.2f}x faster", flush=True)
        results["families"][family] = rows
    write_json(args.out, results)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
