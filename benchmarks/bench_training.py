"""Training-loop throughput, checkpoint cost and resume fidelity, per family, on real CESNET flows.

    python benchmarks/bench_training.py [--device auto] [--families transformer ssm diffusion tiny-mlp]
        [--flows 3000] [--epochs 3] [--batch-size 256] [--data-root ../shared/datasets]

For each family it trains ``--epochs`` epochs three times: without checkpoints, with a checkpoint per epoch,
and interrupted after epoch 1 then resumed. It prints training flows/s (mean of epochs after the first),
the checkpoint cost (ms per epoch, with minus without) and the largest weight difference between the resumed
and the uninterrupted run (0 on CPU; GPU kernels may differ in the last bits).
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
sys.path.insert(0, str(REPO / "tests"))  # tiny_generator: the CESNET reader and the tiny-mlp family

from tiny_generator import cesnet_flows  # noqa: E402

from ntg.families import NEURAL_FAMILIES  # noqa: E402
from ntg.models.base import create_generator  # noqa: E402
from ntg.models.fitting import Reporter, TrainConfig, train_generator  # noqa: E402


class _Interrupt(Reporter):
    def report(self, metrics, checkpoint_dir):
        if metrics["epoch"] == 1:
            raise KeyboardInterrupt


def _weights(gen) -> dict[str, torch.Tensor]:
    return {k: v.detach().float().cpu().clone() for k, v in gen.module.state_dict().items()}


def bench_family(family: str, train, val, config: TrainConfig) -> dict[str, float]:
    from dataclasses import replace

    warm_up = replace(config, epochs=1)
    train_generator(create_generator(family), train.take(range(64)), val, warm_up)
    plain = create_generator(family)
    t0 = time.perf_counter()
    result = train_generator(plain, train, val, config)
    wall_plain = time.perf_counter() - t0
    later = result.history[1:] or result.history
    flows_per_s = sum(h.flows_per_s for h in later) / len(later)

    with tempfile.TemporaryDirectory() as tmp:
        checkpointed = create_generator(family)
        t0 = time.perf_counter()
        reference = train_generator(checkpointed, train, val, config, checkpoint_dir=Path(tmp) / "a")
        wall_ckpt = time.perf_counter() - t0
        try:
            train_generator(create_generator(family), train, val, config, checkpoint_dir=Path(tmp) / "b",
                            reporter=_Interrupt())
        except KeyboardInterrupt:
            pass
        resumed = create_generator(family)
        train_generator(resumed, train, val, config, checkpoint_dir=Path(tmp) / "b")
    a, b = _weights(checkpointed), _weights(resumed)
    max_diff = max(float((a[k] - b[k]).abs().max()) for k in a)
    return {
        "params": plain.num_parameters(),
        "device": result.device,
        "flows_per_s": flows_per_s,
        "ckpt_ms_per_epoch": 1e3 * (wall_ckpt - wall_plain) / config.epochs,
        "resume_max_abs_diff": max_diff,
        "final_val_loss": reference.history[-1].val_loss,
        "module_device": str(plain.device),
        "eval_mode": not plain.module.training,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--families", nargs="+", default=list(NEURAL_FAMILIES))
    parser.add_argument("--flows", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    default_root = os.environ.get("NTG_DATA_ROOT", REPO.parent / "shared" / "datasets")
    parser.add_argument("--data-root", default=default_root)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    flows = cesnet_flows(Path(args.data_root), limit=args.flows + args.flows // 4)
    train, val = flows.take(range(args.flows)), flows.take(range(args.flows, len(flows)))
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, device=args.device, patience=100)
    print(f"{len(train)} train / {len(val)} val real CESNET flows, {args.epochs} epochs, "
          f"batch {args.batch_size}")
    print(f"{'family':12} {'params':>9} {'device':>7} {'flows/s':>10} {'ckpt ms/ep':>10} {'resume |dw|':>12} "
          "val_loss")
    for family in args.families:
        r = bench_family(family, train, val, config)
        print(f"{family:12} {r['params']:>9} {r['device']:>7} {r['flows_per_s']:>10.0f} "
              f"{r['ckpt_ms_per_epoch']:>10.1f} {r['resume_max_abs_diff']:>12.2e} {r['final_val_loss']:.4f}  "
              f"(module on {r['module_device']}, eval={r['eval_mode']})", flush=True)


if __name__ == "__main__":
    main()
