"""The optimiser's pieces of the training loop: AdamW parameter groups, the LR schedule, the weight average."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


def parameter_groups(module: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: decay matrices of linear/conv layers; not norms, biases or embeddings."""
    decay, no_decay, seen = [], [], set()
    for sub in module.modules():
        for param in sub.parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            if param.ndim < 2 or isinstance(sub, nn.Embedding | nn.EmbeddingBag):
                no_decay.append(param)
            else:
                decay.append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


class WarmupCosine:
    """LR multiplier: linear warm-up over ``warmup_steps``, then cosine decay to 0 at ``total_steps``."""

    def __init__(self, warmup_steps: int, total_steps: int) -> None:
        self.warmup_steps = warmup_steps
        self.total_steps = max(total_steps, 1)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        span = max(self.total_steps - self.warmup_steps, 1)
        progress = min((step - self.warmup_steps) / span, 1.0)
        return 0.5 * (1.0 + math.cos(math.pi * progress))


@torch.no_grad()
def update_ema(ema: nn.Module, module: nn.Module, decay: float, step: int) -> None:
    """``ema ← d·ema + (1 − d)·weights`` with ``d = min(decay, (1 + step) / (10 + step))``; buffers copied."""
    d = min(decay, (1 + step) / (10 + step))
    torch._foreach_lerp_(list(ema.parameters()), list(module.parameters()), 1.0 - d)
    for target, source in zip(ema.buffers(), module.buffers(), strict=True):
        target.copy_(source)
