"""LLaMA-style decoder over packet tokens (the ``transformer`` family), in the spirit of nanoGPT's model.py.

Pre-norm blocks of RMSNorm → causal self-attention with rotary position embeddings (via
``F.scaled_dot_product_attention``) → RMSNorm → SwiGLU MLP. Position 0 holds the class embedding; packets
follow (see :mod:`ntg.models.autoregressive` for the layout and :mod:`ntg.models.tokenizer` for the tokens).
Sampling uses a preallocated KV cache: one position per step, no recomputation of the prefix.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ntg.data.schema import DEFAULT_N
from ntg.errors import NtgError
from ntg.models.autoregressive import AutoregressiveGenerator
from ntg.models.base import register
from ntg.models.settings import spec

KVCache = list[tuple[torch.Tensor, torch.Tensor]]


def rotary_tables(n_pos: int, head_dim: int, base: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables (n_pos, head_dim/2) for rotary position embeddings."""
    inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(n_pos, dtype=torch.float32), inv_freq)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs (first half, second half) of ``x`` (B, H, L, hd) by position-dependent angles."""
    x1, x2 = x.chunk(2, dim=-1)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class Attention(nn.Module):
    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.proj = nn.Linear(d_model, d_model, bias=False)

    def _heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, length, d = x.shape
        q, k, v = self.qkv(x).view(b, length, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return q, k, v

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, length, d = x.shape
        q, k, v = self._heads(x)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, length, d))

    def step(self, x: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor], t: int,
             rotation: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """One position ``t``: x (B, d); writes k/v into ``cache`` in place, attends to positions ≤ t.

        ``rotation`` is :func:`step_rotation` at ``t``: q and k are rotated together in three kernels.
        """
        b, d = x.shape
        qkv = self.qkv(x).view(b, 3, self.n_heads, self.head_dim)
        qk = qkv[:, :2]
        cos, signed_sin = rotation
        qk = torch.addcmul(qk * cos, qk.roll(self.head_dim // 2, dims=-1), signed_sin)
        k_cache, v_cache = cache
        k_cache[:, :, t] = qk[:, 1]
        v_cache[:, :, t] = qkv[:, 2]
        y = F.scaled_dot_product_attention(qk[:, 0, :, None], k_cache[:, :, : t + 1], v_cache[:, :, : t + 1])
        return self.proj(y.reshape(b, d))


def step_rotation(cos: torch.Tensor, sin: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Tables for rotating one position as ``x * cos' + roll(x, hd/2) * sin'`` (same maths as
    :func:`apply_rotary`): ``cos' = [cos, cos]``, ``sin' = [-sin, sin]`` over the head dimension."""
    return torch.cat([cos, cos], -1).to(dtype), torch.cat([-sin, sin], -1).to(dtype)


class SwiGLU(nn.Module):
    """``down(silu(gate(x)) * up(x))`` with gate and up fused into one matmul."""

    def __init__(self, d_model: int, hidden: int) -> None:
        super().__init__()
        self.gate_up = nn.Linear(d_model, 2 * hidden, bias=False)
        self.down = nn.Linear(hidden, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class Block(nn.Module):
    def __init__(self, d_model: int, n_heads: int, mlp_hidden: int) -> None:
        super().__init__()
        self.attn_norm = nn.RMSNorm(d_model)
        self.attn = Attention(d_model, n_heads)
        self.mlp_norm = nn.RMSNorm(d_model)
        self.mlp = SwiGLU(d_model, mlp_hidden)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin)
        return x + self.mlp(self.mlp_norm(x))

    def step(self, x: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor], t: int,
             rotation: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x = x + self.attn.step(self.attn_norm(x), cache, t, rotation)
        return x + self.mlp(self.mlp_norm(x))


class TransformerBackbone(nn.Module):
    """Causal LLaMA-style stack: ``forward`` on whole sequences, ``init_state``/``step`` with a KV cache."""

    def __init__(self, d_model: int, n_layers: int, n_heads: int, mlp_hidden: int, max_len: int) -> None:
        super().__init__()
        self.max_len = max_len
        self.blocks = nn.ModuleList(Block(d_model, n_heads, mlp_hidden) for _ in range(n_layers))
        self.norm = nn.RMSNorm(d_model)
        cos, sin = rotary_tables(max_len, d_model // n_heads)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        for name, p in self.named_parameters():  # GPT-2 style: scaled init of the residual projections
            if p.dim() == 2:
                std = 0.02 / (2 * n_layers) ** 0.5 if name.endswith(("proj.weight", "down.weight")) else 0.02
                nn.init.normal_(p, std=std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        cos, sin = self.cos[:length], self.sin[:length]
        for block in self.blocks:
            x = block(x, cos, sin)
        return self.norm(x)

    def init_state(self, batch: int, device: torch.device) -> KVCache:
        attn = self.blocks[0].attn
        shape = (batch, attn.n_heads, self.max_len, attn.head_dim)
        dtype = self.norm.weight.dtype
        empty = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(2 * len(self.blocks))]
        return list(zip(empty[::2], empty[1::2], strict=True))

    def select_state(self, state: KVCache, rows: torch.Tensor) -> KVCache:
        """Keep only batch ``rows`` of the cache."""
        return [(k[rows], v[rows]) for k, v in state]

    def step(self, x: torch.Tensor, state: KVCache, t: int) -> tuple[torch.Tensor, KVCache]:
        """x (B, d) at position ``t`` → hidden (B, d); the cache is updated in place."""
        rotation = step_rotation(self.cos[t], self.sin[t], x.dtype)
        for block, cache in zip(self.blocks, state, strict=True):
            x = block.step(x, cache, t, rotation)
        return self.norm(x), state


@register("transformer")
class TransformerGenerator(AutoregressiveGenerator):
    """LLaMA-style decoder over packet tokens; the defaults have about 1.36 M parameters."""

    SETTINGS: ClassVar[dict[str, Any]] = {
        "d_model": spec("width of the residual stream", 2),
        "n_layers": spec("decoder blocks", 1),
        "n_heads": spec("attention heads (must divide d_model into heads of even size)", 1),
        "mlp_hidden": spec("hidden width of each block's SwiGLU MLP", 1),
    }

    def __init__(
        self,
        n_packets: int = DEFAULT_N,
        d_model: int = 160,
        n_layers: int = 4,
        n_heads: int = 5,
        mlp_hidden: int = 448,
        seed: int = 0,
        n_size_bins: int = 48,
        n_iat_bins: int = 48,
        temperature: float = 1.0,
        top_p: float = 1.0,
        sample_precision: str = "auto",
        dropout: float = 0.0,
        class_support: bool | None = None,
        capture_balance: bool | None = None,
        context_noise: float | None = None,
    ) -> None:
        super().__init__(n_packets, seed, n_size_bins, n_iat_bins, temperature, top_p, sample_precision,
                         dropout, class_support, capture_balance, context_noise)
        self._init_settings(locals())
        if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 2:
            raise NtgError(f"model.d_model={d_model} must split into model.n_heads={n_heads} heads of even size "
                           "(rotary embeddings); change one of them")

    def build_backbone(self) -> TransformerBackbone:
        return TransformerBackbone(self.d_model, self.n_layers, self.n_heads, self.mlp_hidden, self.n_packets)
