"""The diffusion denoiser: a small DiT-style transformer over packet positions.

Each of the ``N`` packet positions is one token (its ``F`` matrix channels, linearly embedded, plus a learnt
position embedding). The diffusion time and the class (index ``n_classes`` is the "no class" token used for
classifier-free guidance) form one conditioning vector that modulates every block through adaptive
LayerNorm with zero-initialised gates (adaLN-Zero, as in DiT). With N ≤ 32 tokens the whole network is a few
small matrix products per step, which trains and samples faster on CPU than a conv U-Net over the tiny
``N x F`` grid and lets every packet attend to every other. With ``self_condition`` the input also holds the
previous estimate of the clean matrix (*Analog Bits*, Chen et al. 2023), zeros when there is none yet.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps ``t`` of shape ``(B,)``, in float32."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale[:, None, :]) + shift[:, None, :]


class DenoiserBlock(nn.Module):
    """Pre-norm self-attention + MLP, both modulated and gated by the conditioning vector."""

    def __init__(self, d_model: int, n_heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.norm1 = nn.LayerNorm(d_model, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model, elementwise_affine=False, eps=1e-6)
        hidden = int(d_model * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, d_model)
        )
        self.modulation = nn.Linear(d_model, 6 * d_model)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(F.silu(cond)).chunk(6, dim=-1)
        h = modulate(self.norm1(x), shift1, scale1)
        q, k, v = self.qkv(h).view(b, n, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        drop = self.dropout if self.training else 0.0
        h = F.scaled_dot_product_attention(q, k, v, dropout_p=drop).transpose(1, 2).reshape(b, n, d)
        x = x + gate1[:, None, :] * F.dropout(self.proj(h), drop, self.training)
        h = self.mlp(modulate(self.norm2(x), shift2, scale2))
        return x + gate2[:, None, :] * F.dropout(h, drop, self.training)


class PacketDenoiser(nn.Module):
    """Predicts the diffusion target (``v``) for a noisy ``(B, N, F)`` matrix at time ``t`` for a class."""

    def __init__(
        self,
        n_positions: int,
        n_features: int,
        n_classes: int,
        d_model: int = 128,
        n_layers: int = 5,
        n_heads: int = 4,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        self_condition: bool = False,
    ) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        self.d_model = d_model
        self.self_condition = self_condition
        self.input = nn.Linear(n_features * (2 if self_condition else 1), d_model)
        self.position = nn.Parameter(torch.zeros(1, n_positions, d_model))
        self.time_mlp = nn.Sequential(nn.Linear(d_model, d_model), nn.SiLU(), nn.Linear(d_model, d_model))
        self.class_embedding = nn.Embedding(n_classes + 1, d_model)  # last row: unconditional
        self.blocks = nn.ModuleList(
            DenoiserBlock(d_model, n_heads, mlp_ratio, dropout) for _ in range(n_layers)
        )
        self.final_norm = nn.LayerNorm(d_model, elementwise_affine=False, eps=1e-6)
        self.final_modulation = nn.Linear(d_model, 2 * d_model)
        self.output = nn.Linear(d_model, n_features)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.position, std=0.02)
        nn.init.normal_(self.class_embedding.weight, std=1.0)  # as strong as the time signal from the start
        for block in self.blocks:  # adaLN-Zero: every block starts as the identity
            nn.init.zeros_(block.modulation.weight)
            nn.init.zeros_(block.modulation.bias)
        for layer in (self.final_modulation, self.output):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, class_id: torch.Tensor, x0_estimate: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``x0_estimate`` (self-conditioning only): the previous estimate of the clean matrix, zeros if none."""
        if self.self_condition:
            x = torch.cat([x, torch.zeros_like(x) if x0_estimate is None else x0_estimate.to(x.dtype)], dim=-1)
        cond = self.time_mlp(timestep_embedding(t, self.d_model).to(x.dtype)) + self.class_embedding(class_id)
        h = self.input(x) + self.position[:, : x.shape[1]]
        for block in self.blocks:
            h = block(h, cond)
        shift, scale = self.final_modulation(F.silu(cond)).chunk(2, dim=-1)
        return self.output(modulate(self.final_norm(h), shift, scale))
