"""Parallel scan of the linear recurrence ``h_t = a_t * h_{t-1} + b_t`` (``h_{-1} = 0``) along dim 1.

:func:`pscan` is a Hillis–Steele inclusive scan: ``ceil(log2 L)`` rounds, each combining every element with
the one ``2^k`` positions before it under ``(a1, b1) ∘ (a2, b2) = (a1 a2, a2 b1 + b2)``. It is exact (no
division, no log of possibly-zero coefficients). Its autograd backward is again a scan, run in reverse:

    g_t = dL/dh_t + a_{t+1} g_{t+1},   dL/db_t = g_t,   dL/da_t = g_t h_{t-1}

so only ``a`` and ``h`` are kept for backward (mamba.py keeps the same), not every round's intermediates.
:func:`sequential_scan` is the plain loop, the reference the tests compare against.
"""

from __future__ import annotations

import torch


def _scan_inplace(a: torch.Tensor, b: torch.Tensor, reverse: bool = False) -> torch.Tensor:
    """Hillis–Steele scan over dim 1; overwrites ``a`` (with partial products) and ``b`` (with ``h``).

    ``reverse`` scans from the end: ``h_t = a_t h_{t+1} + b_t``.
    """
    length = a.shape[1]
    offset = 1
    while offset < length:
        # element t combines with its partner t ∓ offset; products are taken before anything is overwritten
        head, tail = slice(None, length - offset), slice(offset, None)
        dst, src = (head, tail) if reverse else (tail, head)
        carry = a[:, dst] * b[:, src]
        last = 2 * offset >= length  # the partial products are not needed after the last round
        coeff = None if last else a[:, dst] * a[:, src]
        b[:, dst] += carry
        if coeff is not None:
            a[:, dst] = coeff
        offset *= 2
    return b


class _PScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        h = _scan_inplace(a.clone(), b.clone())
        ctx.save_for_backward(a, h)
        return h

    @staticmethod
    def backward(ctx, grad_h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        a, h = ctx.saved_tensors
        a_next = torch.empty_like(a)  # g_t = a_{t+1} g_{t+1} + dL/dh_t, a reverse scan
        a_next[:, :-1] = a[:, 1:]
        a_next[:, -1:] = 0
        g = _scan_inplace(a_next, grad_h.clone(), reverse=True)
        grad_a = torch.empty_like(a)
        grad_a[:, :1] = 0
        torch.mul(g[:, 1:], h[:, :-1], out=grad_a[:, 1:])
        return grad_a, g


def pscan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``h`` with ``h_t = a_t h_{t-1} + b_t`` along dim 1 for tensors of shape (B, L, ...), in log depth."""
    if a.shape != b.shape:
        raise ValueError(f"pscan needs equal shapes, got {tuple(a.shape)} and {tuple(b.shape)}")
    return _PScan.apply(a, b)


def sequential_scan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Reference recurrence, one step at a time."""
    h = torch.zeros_like(b[:, 0])
    out = []
    for t in range(a.shape[1]):
        h = a[:, t] * h + b[:, t]
        out.append(h)
    return torch.stack(out, dim=1)
