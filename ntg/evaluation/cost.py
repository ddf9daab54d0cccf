"""What a generator costs: parameters, FLOPs per flow, training time, sampling throughput and peak memory.

Measured in the calling process:

* ``sampling_flows_per_s`` — ``n_flows`` flows generated in batches of ``batch`` (labels drawn from the
  training class mix), after one untimed warm-up batch; wall clock (``time.perf_counter``).
* ``peak_memory_bytes`` — the peak extra memory of that sampling: for generators without torch modules,
  ``tracemalloc``'s peak of Python/numpy allocations (``memory_method = "tracemalloc"``); on a GPU,
  ``torch.cuda.max_memory_allocated`` (``"cuda_max_allocated"``); for torch on CPU, the growth of the
  process's maximum resident set size from ``resource.getrusage`` (``"rusage_maxrss_delta"``: only counts
  growth beyond the earlier peak, so it can read 0 — a lower bound).
* ``train_wall_s`` — from the run folder's ``train_log.json`` (``wall_s``, or the sum of its history's
  ``wall_s``), else ``run.json``'s ``result.wall_s`` / ``train_wall_s``; None when there is no run folder.
"""

from __future__ import annotations

import resource
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

from ntg.models.base import Generator
from ntg.utils.io import read_json


def training_wall_time(run_dir: str | Path | None) -> float | None:
    """Seconds the generator's training took, read from ``run_dir`` (see module docstring)."""
    if run_dir is None:
        return None
    run_dir = Path(run_dir)
    log_path, run_path = run_dir / "train_log.json", run_dir / "run.json"
    for path in (log_path, run_path):
        if not path.exists():
            continue
        try:
            data = read_json(path)
        except ValueError:
            continue
        found = _find_wall(data)
        if found is not None:
            return found
    return None


def _find_wall(data: Any) -> float | None:
    if isinstance(data, dict):
        for key in ("wall_s", "train_wall_s"):
            if isinstance(data.get(key), int | float):
                return float(data[key])
        if _is_history(data.get("history")):
            return float(sum(h["wall_s"] for h in data["history"]))
        for key in ("result", "train_result", "train"):
            found = _find_wall(data.get(key)) if isinstance(data.get(key), dict) else None
            if found is not None:
                return found
    if _is_history(data):
        return float(sum(h["wall_s"] for h in data))
    return None


def _is_history(value: Any) -> bool:
    if not isinstance(value, list) or not value:
        return False
    return all(isinstance(h, dict) and "wall_s" in h for h in value)


def _torch_device(generator: Generator) -> str | None:
    module = getattr(generator, "module", None)
    if module is None or "torch" not in sys.modules:
        return None
    try:
        return next(module.parameters()).device.type
    except (StopIteration, AttributeError):
        return "cpu"


def _maxrss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


def measure_sampling(
    generator: Generator, n_flows: int = 2048, batch: int = 256, seed: int = 0
) -> dict[str, Any]:
    """Throughput and peak memory of sampling ``n_flows`` flows in batches of ``batch``."""
    priors = np.asarray(getattr(generator, "class_priors_", None) or [1.0] * len(generator.classes_ or [1]))
    classes = np.asarray(generator.classes_, dtype=object)
    rng = np.random.default_rng(seed)
    labels = classes[rng.choice(len(classes), size=n_flows, p=priors / priors.sum())]
    device = _torch_device(generator)
    generator.sample(min(batch, n_flows), label=labels[: min(batch, n_flows)], seed=seed)  # warm-up
    if device == "cuda":
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base, method = torch.cuda.memory_allocated(), "cuda_max_allocated"
    elif device is None:
        tracemalloc.start()
        method = "tracemalloc"
    else:
        base, method = _maxrss_bytes(), "rusage_maxrss_delta"
    start = time.perf_counter()
    for i, lo in enumerate(range(0, n_flows, batch)):
        chunk = labels[lo : lo + batch]
        generator.sample(len(chunk), label=chunk, seed=seed + 1 + i)
    if device == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() - base
    elif device is None:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    else:
        peak = _maxrss_bytes() - base
    return {
        "sampling_flows_per_s": n_flows / elapsed if elapsed > 0 else None,
        "sampling_wall_s": elapsed,
        "sampling_batch": batch,
        "sampling_flows": n_flows,
        "peak_memory_bytes": int(max(peak, 0)),
        "memory_method": method,
        "device": device or "cpu",
    }


def measure_cost(
    generator: Generator,
    run_dir: str | Path | None = None,
    n_flows: int = 2048,
    batch: int = 256,
    seed: int = 0,
) -> dict[str, Any]:
    """Parameters, FLOPs per flow, training wall time and sampling cost of ``generator``, in one dict."""
    return {
        "family": generator.family,
        "parameters": int(generator.num_parameters()),
        "flops_per_flow": float(generator.flops_per_flow(batch)),
        "train_wall_s": training_wall_time(run_dir),
        **measure_sampling(generator, n_flows, batch, seed),
        "sample_precision": _sample_precision(generator),
    }


def _sample_precision(generator: Generator) -> str | None:
    """The precision the neural families sampled in (``"auto"`` resolved); None for the baselines."""
    from ntg.models.neural import NeuralGenerator

    return generator.resolved_sample_precision() if isinstance(generator, NeuralGenerator) else None
