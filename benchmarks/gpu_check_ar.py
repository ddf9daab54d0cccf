"""GPU readiness of the transformer and SSM families (run on a CUDA machine; prints a JSON summary).

Checks, per family, on ``cuda``: training through ``gen.fit`` (bf16 autocast), loss falling, valid and seeded
samples in float32 and bf16, the recurrent step matching the parallel forward, the parallel scan matching
the recurrence, a save → load → ``to("cuda")`` round trip giving identical samples, and sampling throughput.

    python benchmarks/gpu_check_ar.py [--out results/gpu_check_ar.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ntg.models import create_generator, load_generator  # noqa: E402
from ntg.models.scan import pscan, sequential_scan  # noqa: E402
from tests.ar_flows import two_class_flows  # noqa: E402


def check_family(family: str, flows, device: torch.device) -> dict:
    out: dict = {}
    gen = create_generator(family, sample_precision="float32")  # the bf16 copy is checked beside it below
    t0 = time.perf_counter()
    gen.fit(flows, None, train_config={"epochs": 6, "batch_size": 256, "lr": 3e-3, "device": "cuda", "bf16": True})
    out["fit_s"] = time.perf_counter() - t0
    hist = gen.training_result_.history
    out["train_loss_first_last"] = [hist[0].train_loss, hist[-1].train_loss]
    out["training_flows_per_s"] = hist[-1].flows_per_s
    out["device"] = str(gen.device)
    assert gen.device.type == "cuda"
    a, b = gen.sample(2000, seed=1), gen.sample(2000, seed=1)
    a.validate()
    out["seeded_identical"] = bool(np.array_equal(a.payload, b.payload) and np.array_equal(a.iat, b.iat))
    short, long = gen.sample(500, "short", seed=2), gen.sample(500, "long", seed=2)
    out["mean_length_short_long"] = [float(short.length.mean()), float(long.length.mean())]
    with tempfile.TemporaryDirectory() as tmp:
        gen.save_pretrained(Path(tmp) / "m")
        loaded = load_generator(Path(tmp) / "m").to(device)
        c = loaded.sample(2000, seed=1)
    out["round_trip_identical"] = bool(np.array_equal(a.payload, c.payload) and np.array_equal(a.iat, c.iat))
    bf = create_generator(family, **{**gen.get_config(), "sample_precision": "bfloat16"})
    bf.set_learnt_metadata(gen.learnt_metadata())
    bf.load_state_arrays(gen.state_arrays())
    bf.to(device)
    bf.sample(1000, seed=0).validate()
    # step == forward on the GPU
    backbone = gen.module.backbone
    x = torch.randn(8, gen.n_packets, gen.d_model, device=device)
    with torch.no_grad():
        full = backbone(x)
        state = backbone.init_state(8, device)
        steps = []
        for t in range(gen.n_packets):
            h, state = backbone.step(x[:, t], state, t)
            steps.append(h)
    out["step_vs_forward_max_abs"] = float((torch.stack(steps, 1) - full).abs().max())
    for name, g in (("fp32", gen), ("bf16", bf)):
        for batch in (256, 4096, 65536):
            g.sample(batch, seed=0)
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            g.sample(batch, seed=0)
            torch.cuda.synchronize()
            out[f"sample_flows_per_s_{name}_{batch}"] = batch / (time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    device = torch.device("cuda")
    flows = two_class_flows(4000, seed=0)
    results: dict = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__}
    a = torch.rand(4, 33, 64, 16, device=device, dtype=torch.float64)
    b = torch.randn(4, 33, 64, 16, device=device, dtype=torch.float64)
    results["pscan_vs_sequential_max_abs"] = float((pscan(a, b) - sequential_scan(a, b)).abs().max())
    for family in ("transformer", "ssm"):
        results[family] = check_family(family, flows, device)
        print(family, json.dumps(results[family], indent=1), flush=True)
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
