"""Mamba-style selective state-space model over packet tokens (the ``ssm`` family), pure PyTorch.

Each residual block is RMSNorm → Mamba mixer (as in mamba.py / the Mamba paper):

* ``in_proj`` splits into a branch ``x`` and a gate ``z``;
* ``x`` goes through a depthwise causal conv (kernel ``d_conv``) and SiLU;
* input-dependent ``Δ = softplus(dt_proj(·))``, ``B``, ``C`` come from ``x_proj(x)``;
* the selective scan ``h_t = exp(Δ_t A) h_{t-1} + Δ_t B_t x_t``, ``y_t = C_t h_t + D x_t`` runs as a parallel
  log-depth scan in training on accelerators (:func:`ntg.models.scan.pscan`) and as a constant-memory
  recurrence in sampling (:meth:`MambaMixer.step`, carrying the last ``d_conv - 1`` conv inputs and the
  ``(d_state, d_inner)`` ssm state). On a CPU, training uses :func:`selective_scan_sequential` instead: for
  flows of at most 33 tokens a fused step loop makes ~3 passes over the state where the log-depth scan makes
  ~12, and is about 1.6× faster end to end (same maths; the tests check both against each other);
* output ``out_proj(y * silu(z))``.

When ``mamba_ssm`` is importable and the tensors are on CUDA, its fused ``selective_scan_fn`` replaces the
PyTorch scan (optional speed-up; same maths).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ntg.data.schema import DEFAULT_N
from ntg.models.autoregressive import AutoregressiveGenerator
from ntg.models.base import register
from ntg.models.scan import pscan
from ntg.models.settings import spec

try:  # optional fused CUDA kernel
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - not installed in CPU environments
    selective_scan_fn = None

MixerState = tuple[tuple[torch.Tensor, ...], torch.Tensor]
SSMState = list[MixerState]


SEQUENTIAL_SCAN_MAX_LEN = 64


def selective_scan_sequential(
    delta: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, x: torch.Tensor
) -> torch.Tensor:
    """``y_t = C_t · h_t`` with ``h_t = exp(Δ_t A) h_{t-1} + Δ_t x_t B_t``, one fused step per position.

    Shapes: delta, x (B, L, D); a (D, N); b, c (B, L, N) → y (B, L, D). Never materialises (B, L, D, N).
    """
    h = torch.zeros(x.shape[0], x.shape[2], a.shape[1], dtype=torch.promote_types(x.dtype, a.dtype),
                    device=x.device)
    dx = delta * x
    ys = []
    for t in range(x.shape[1]):
        h = torch.exp(delta[:, t, :, None] * a) * h + dx[:, t, :, None] * b[:, t, None, :]
        ys.append(torch.einsum("bdn,bn->bd", h, c[:, t].to(h.dtype)))
    return torch.stack(ys, dim=1).to(x.dtype)


class MambaMixer(nn.Module):
    def __init__(self, d_model: int, d_state: int = 8, expand: int = 2, d_conv: int = 4) -> None:
        super().__init__()
        d_inner = expand * d_model
        self.d_inner, self.d_state, self.d_conv = d_inner, d_state, d_conv
        self.dt_rank = math.ceil(d_model / 16)
        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=False)
        self.conv1d = nn.Conv1d(d_inner, d_inner, d_conv, groups=d_inner, padding=d_conv - 1)
        self.x_proj = nn.Linear(d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, d_inner, bias=True)
        a_init = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(d_inner, 1)
        self.A_log = nn.Parameter(torch.log(a_init))
        self.D = nn.Parameter(torch.ones(d_inner))
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)
        # Mamba's Δ init: softplus(bias) log-uniform in [1e-3, 1e-1]
        dt = torch.exp(torch.rand(d_inner) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
            nn.init.uniform_(self.dt_proj.weight, -self.dt_rank**-0.5, self.dt_rank**-0.5)

    def _causal_conv(self, x: torch.Tensor) -> torch.Tensor:
        """Depthwise causal conv over positions, (B, L, D) → (B, L, D).

        Written as ``d_conv`` shifted multiply-adds: the same maths as ``self.conv1d`` with left padding,
        but its backward is several times cheaper than the depthwise convolution's on CPUs.
        """
        if x.is_cuda:
            return self.conv1d(x.transpose(1, 2))[..., : x.shape[1]].transpose(1, 2)
        length, k = x.shape[1], self.d_conv
        padded = F.pad(x, (0, 0, k - 1, 0))
        weight = self.conv1d.weight[:, 0, :]  # (D, k)
        out = self.conv1d.bias + padded[:, :length] * weight[:, 0]
        for i in range(1, k):
            out = out + padded[:, i : i + length] * weight[:, i]
        return out

    def _ssm_params(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        dt, b, c = self.x_proj(x).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        return F.softplus(self.dt_proj(dt)), b, c

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """u (B, L, d_model) → (B, L, d_model), causal."""
        length = u.shape[1]
        x, z = self.in_proj(u).chunk(2, dim=-1)
        x = F.silu(self._causal_conv(x))
        delta, b, c = self._ssm_params(x)
        a = -torch.exp(self.A_log.float())
        if not x.is_cuda and length <= SEQUENTIAL_SCAN_MAX_LEN:
            y = selective_scan_sequential(delta, a, b, c, x) + self.D * x
        elif selective_scan_fn is not None and x.is_cuda:
            def channels_first(v: torch.Tensor) -> torch.Tensor:
                return v.transpose(1, 2).contiguous()

            y = selective_scan_fn(channels_first(x), channels_first(delta), a, channels_first(b),
                                  channels_first(c), self.D.float(), delta_softplus=False).transpose(1, 2)
        else:
            decay = torch.exp(delta.unsqueeze(-1) * a)  # (B, L, d_inner, d_state)
            drive = (delta * x).unsqueeze(-1) * b.unsqueeze(2)
            h = pscan(decay, drive)
            y = (h @ c.unsqueeze(-1)).squeeze(-1) + self.D * x
        return self.out_proj(y.to(z.dtype) * F.silu(z))

    def init_state(self, batch: int, device: torch.device) -> MixerState:
        """Zero state: the last ``d_conv - 1`` conv inputs (each (B, d_inner)) and the ssm state (B, N, d_inner).

        The ssm state is kept channels-last so that every update runs along the contiguous ``d_inner`` axis.
        """
        dtype = self.in_proj.weight.dtype
        window = tuple(torch.zeros(batch, self.d_inner, device=device, dtype=dtype) for _ in range(self.d_conv - 1))
        return window, torch.zeros(batch, self.d_state, self.d_inner, device=device, dtype=torch.float32)

    def step(self, u: torch.Tensor, state: MixerState) -> tuple[torch.Tensor, MixerState]:
        """u (B, d_model) → (B, d_model); the returned state is new (the old one is left untouched)."""
        window, h = state
        x, z = self.in_proj(u).chunk(2, dim=-1)
        weight = self.conv1d.weight[:, 0, :].t().contiguous()  # (d_conv, d_inner); last row: the newest input
        conv = torch.addcmul(self.conv1d.bias, x, weight[-1])
        for i, past in enumerate(window):
            conv.addcmul_(past, weight[i])
        window = (*window[1:], x)
        x = F.silu(conv)
        delta, b, c = self._ssm_params(x)
        a = -torch.exp(self.A_log.float()).t().contiguous()  # (N, d_inner)
        delta = delta.float()
        # h' = exp(Δ A) h + Δ x B and y = C h' + D x on (B, N, d_inner): one fresh buffer, updated in place
        drive = (delta * x.float())[:, None, :]
        h = torch.mul(delta[:, None, :], a).exp_().mul_(h).addcmul_(b.float()[:, :, None], drive)
        y = torch.bmm(c.float()[:, None, :], h)[:, 0].to(x.dtype) + self.D * x
        return self.out_proj(y.to(z.dtype) * F.silu(z)), (window, h)


class ResidualBlock(nn.Module):
    def __init__(self, d_model: int, d_state: int, expand: int, d_conv: int) -> None:
        super().__init__()
        self.norm = nn.RMSNorm(d_model)
        self.mixer = MambaMixer(d_model, d_state, expand, d_conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mixer(self.norm(x))

    def step(self, x: torch.Tensor, state: MixerState) -> tuple[torch.Tensor, MixerState]:
        y, state = self.mixer.step(self.norm(x), state)
        return x + y, state


class MambaBackbone(nn.Module):
    """Stack of Mamba blocks: ``forward`` with the parallel scan, ``init_state``/``step`` recurrently."""

    def __init__(self, d_model: int, n_layers: int, d_state: int, expand: int, d_conv: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(ResidualBlock(d_model, d_state, expand, d_conv) for _ in range(n_layers))
        self.norm = nn.RMSNorm(d_model)
        for layer in self.layers:  # scaled init of the residual output projections
            nn.init.normal_(layer.mixer.out_proj.weight, std=0.02 / (2 * n_layers) ** 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)

    def init_state(self, batch: int, device: torch.device) -> SSMState:
        return [layer.mixer.init_state(batch, device) for layer in self.layers]

    def select_state(self, state: SSMState, rows: torch.Tensor) -> SSMState:
        """Keep only batch ``rows`` of the conv and ssm states."""
        return [(tuple(past[rows] for past in window), h[rows]) for window, h in state]

    def step(self, x: torch.Tensor, state: SSMState, t: int) -> tuple[torch.Tensor, SSMState]:
        new_state = []
        for layer, s in zip(self.layers, state, strict=True):
            x, s = layer.step(x, s)
            new_state.append(s)
        return self.norm(x), new_state


@register("ssm")
class SSMGenerator(AutoregressiveGenerator):
    """Mamba-style selective SSM over packet tokens; the defaults have about 1.1 M parameters."""

    bf16_sampling_helps = False  # its sampling time is in the float32 state update, not in matmuls
    default_context_noise = 0.3  # it fits its training flows faster than the transformer (data_rules.py)
    SETTINGS: ClassVar[dict[str, Any]] = {
        "d_model": spec("width of the residual stream", 1),
        "n_layers": spec("Mamba blocks", 1),
        "d_state": spec("state size per channel of the selective scan", 1),
        "expand": spec("inner width as a multiple of d_model", 1),
        "d_conv": spec("kernel width of the causal depthwise convolution", 1),
    }

    def __init__(
        self,
        n_packets: int = DEFAULT_N,
        d_model: int = 160,
        n_layers: int = 6,
        d_state: int = 8,
        expand: int = 2,
        d_conv: int = 4,
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

    def build_backbone(self) -> MambaBackbone:
        return MambaBackbone(self.d_model, self.n_layers, self.d_state, self.expand, self.d_conv)
