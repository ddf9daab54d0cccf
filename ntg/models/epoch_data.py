"""What one epoch of the training loop feeds the network: encoded rows, this worker's row order, batches.

:func:`epoch_order` is where sharding and the capture-balance draws (:mod:`ntg.models.data_rules`) meet: every
epoch draws a permutation (or, with flow weights, ``n`` draws with replacement) from a generator seeded by
``(seed, epoch)``, so a resumed run and every DDP rank see the same order, and each rank takes its stride of it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch

from ntg.data.schema import FlowTable
from ntg.errors import NtgError

if TYPE_CHECKING:
    from ntg.models.neural import NeuralGenerator


def encode_rows(gen: NeuralGenerator, flows: FlowTable, what: str) -> dict[str, torch.Tensor]:
    """``gen.encode(flows)``, checked to hold one row per flow (``what`` names the flows in errors)."""
    batch = gen.encode(flows)
    if not batch:
        raise NtgError(f"{gen.family}.encode returned no tensors for the {what} flows")
    lengths = {name: len(t) for name, t in batch.items()}
    if set(lengths.values()) != {len(flows)}:
        raise ValueError(f"{gen.family}.encode: need one row per flow ({len(flows)}), got {lengths}")
    return batch


def epoch_order(n: int, epoch: int, seed: int, rank: int = 0, world: int = 1,
                weights: np.ndarray | None = None) -> torch.Tensor:
    """This worker's row order for an epoch: a seeded permutation (with ``weights``, ``n`` seeded draws with
    replacement, each row with chance proportional to its weight), padded (like DistributedSampler) to a
    multiple of ``world`` so every worker runs the same number of steps, then strided by rank."""
    if weights is not None and len(weights) != n:
        raise ValueError(f"{len(weights)} flow weights for {n} training flows; prepare() the generator again")
    g = torch.Generator().manual_seed(seed * 10_007 + epoch)
    if weights is not None:
        order = torch.multinomial(torch.as_tensor(weights, dtype=torch.float64), n, replacement=True, generator=g)
    else:
        order = torch.randperm(n, generator=g)
    if world > 1:
        padded = math.ceil(n / world) * world
        order = torch.cat([order, order[: padded - n]]) if padded > n else order
        order = order[rank::world]
    return order


def batches(data: dict[str, torch.Tensor], order: torch.Tensor, batch_size: int, device: torch.device
            ) -> Iterator[tuple[int, dict[str, torch.Tensor]]]:
    """``(rows, tensors)`` per batch of ``order``, moved to ``device``."""
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        yield len(idx), {k: v[idx].to(device, non_blocking=True) for k, v in data.items()}
