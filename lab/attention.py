"""Causal grouped-query attention, choosing the faster of two exact implementations.

``scaled_dot_product_attention`` is the default everywhere. On a CPU with native bf16
(AVX512-BF16 or AMX), in bf16 at short sequences, its flash kernel (whose bf16 backward is
slow at small head dims) loses by ~2x to a blocked attention written as batched matmuls and
softmaxes; bench/attention.py measures the two side by side. Where bf16 is emulated (an AVX2
CPU) the blocked path loses instead (~0.4x SDPA), and in fp32 the two are on par at 128-256
positions (within 0-6% of a training step on either CPU), so those stay on SDPA, the kernel
transformers' Llama uses too. The blocked path folds the G query heads that share a K/V head
into the rows of one matmul, so K and V are never repeated.

Both take q already multiplied by 1/sqrt(head_dim) (the model folds it into q's weight rows,
which costs nothing) and return the heads concatenated: (B, T, H * hd).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from lab.precision import cpu_has_native_bf16

# Beyond this many positions the blocked path stops winning (bench/attention.py, bf16, 2 cores:
# 1.6-4.3x faster than SDPA at 128-512 positions, ~1.0-1.4x at 1024), and the probabilities it
# keeps for backward grow as T^2.
BLOCKED_MAX_SEQ = 512
QUERY_BLOCK = 64


def use_blocked_path(q: torch.Tensor) -> bool:
    # Only where bf16 is native: with emulated bf16 (an AVX2 CPU) SDPA was ~2.7x faster.
    return (q.device.type == "cpu" and q.dtype == torch.bfloat16 and q.shape[1] <= BLOCKED_MAX_SEQ
            and cpu_has_native_bf16())


def sdpa_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """q: (B, T, H, hd), k/v: (B, T, Hkv, hd), q pre-scaled -> (B, T, H * hd)."""
    B, T, H, hd = q.shape
    y = F.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
        is_causal=True, scale=1.0, enable_gqa=k.shape[2] != H,
    )  # (B, H, T, hd)
    return y.transpose(1, 2).reshape(B, T, H * hd)


def _blocks(T: int, block: int) -> list[tuple[int, int]]:
    return [(start, min(start + block, T)) for start in range(0, T, block)]


def _future_mask(start: int, end: int, G: int, dtype: torch.dtype, device) -> torch.Tensor:
    """Additive mask for one query block: rows (t, g) for t in [start, end), columns keys [0, end).

    A query at position t may not see keys after t: -inf there, 0 elsewhere."""
    t = torch.arange(start, end, device=device).repeat_interleave(G)
    future = torch.arange(end, device=device) > t[:, None]
    return torch.zeros(future.shape, dtype=dtype, device=device).masked_fill_(future, float("-inf"))


def _rows(x: torch.Tensor, Hkv: int, G: int) -> torch.Tensor:
    """(B, n, H * hd) or (B, n, H, hd) -> (B * Hkv, n * G, hd): each K/V head's G query heads as
    rows ordered (position, head), query head h using K/V head h // G (transformers' repeat_kv)."""
    B, n = x.shape[:2]
    return x.reshape(B, n, Hkv, G, -1).transpose(1, 2).reshape(B * Hkv, n * G, -1)


def _unrows(rows: torch.Tensor, out: torch.Tensor, Hkv: int, G: int) -> None:
    """Inverse of _rows, written into out: (B, n, H * hd) or (B, n, H, hd), a view of a bigger tensor."""
    B, n = out.shape[:2]
    out.view(B, n, Hkv, G, -1).copy_(rows.view(B, Hkv, n, G, -1).transpose(1, 2))


def _blocked_forward(q, k, v, block: int):
    """The forward loop, per block of queries: its output rows (B*Hkv, n*G, hd), and what the
    backward needs (keys, values, per block its query rows and probabilities)."""
    B, T, H, hd = q.shape
    Hkv = k.shape[2]
    G = H // Hkv
    keys = k.transpose(1, 2).reshape(B * Hkv, T, hd)
    values = v.transpose(1, 2).reshape(B * Hkv, T, hd)
    outputs, saved = [], []
    for start, end in _blocks(T, block):
        q_rows = _rows(q[:, start:end], Hkv, G)  # (B*Hkv, n*G, hd)
        scores = torch.bmm(q_rows, keys[:, :end].transpose(1, 2))
        scores.add_(_future_mask(start, end, G, scores.dtype, q.device))
        # softmax of a bf16 tensor accumulates in fp32 internally.
        probs = torch.softmax(scores, dim=-1)
        outputs.append(torch.bmm(probs, values[:, :end]))
        saved += [q_rows, probs]
    return outputs, keys, values, saved


class BlockedCausalAttention(torch.autograd.Function):
    """Queries in blocks of `block` positions, each against only the keys it may see.

    Skipping the masked upper triangle saves ~40% of the work at 4 blocks, and each block's
    score tensor stays small enough to live in cache. The backward is written out because
    autograd's version of the same loop zero-fills and adds a full-size K/V gradient per
    block (the slices' backward); here each block's K/V gradients are added into one buffer.
    """

    @staticmethod
    def forward(ctx, q, k, v, block: int):
        outputs, keys, values, saved = _blocked_forward(q, k, v, block)
        B, T, H, hd = q.shape
        y = torch.empty(B, T, H * hd, dtype=q.dtype, device=q.device)
        for rows, (start, end) in zip(outputs, _blocks(T, block)):
            _unrows(rows, y[:, start:end], k.shape[2], H // k.shape[2])
        ctx.save_for_backward(keys, values, *saved)
        ctx.block, ctx.heads = block, (q.shape[2], k.shape[2])
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y):
        keys, values, *saved = ctx.saved_tensors
        H, Hkv = ctx.heads
        G = H // Hkv
        B, T = grad_y.shape[:2]
        hd = keys.shape[-1]
        grad_q = torch.empty(B, T, H, hd, dtype=grad_y.dtype, device=grad_y.device)
        grad_k = grad_v = None
        # Last block first: it sees every key, so its K/V gradients start the sums.
        for i, (start, end) in reversed(list(enumerate(_blocks(T, ctx.block)))):
            q_rows, probs = saved[2 * i], saved[2 * i + 1]
            g_rows = _rows(grad_y[:, start:end], Hkv, G)
            dv = torch.bmm(probs.transpose(1, 2), g_rows)
            grad_probs = torch.bmm(g_rows, values[:, :end].transpose(1, 2))
            # The fused kernel autograd itself uses for softmax: p * (g - sum(g * p)).
            grad_scores = torch._softmax_backward_data(grad_probs, probs, -1, probs.dtype)
            _unrows(torch.bmm(grad_scores, keys[:, :end]), grad_q[:, start:end], Hkv, G)
            dk = torch.bmm(grad_scores.transpose(1, 2), q_rows)
            if grad_k is None:
                grad_k, grad_v = dk, dv
            else:
                grad_k[:, :end] += dk
                grad_v[:, :end] += dv
        as_input = lambda g: g.view(B, Hkv, T, hd).transpose(1, 2)  # noqa: E731
        return grad_q, as_input(grad_k), as_input(grad_v), None


def blocked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block: int = QUERY_BLOCK) -> torch.Tensor:
    """Same contract as sdpa_attention, as batched matmuls and a softmax per block of queries."""
    if torch.compiler.is_compiling():  # the compiler differentiates and fuses the plain loop itself
        B, T, H, hd = q.shape
        Hkv = k.shape[2]
        outputs = _blocked_forward(q, k, v, block)[0]
        return torch.cat([rows.view(B, Hkv, -1, H // Hkv, hd).transpose(1, 2).reshape(B, -1, H * hd)
                          for rows in outputs], dim=1)
    return BlockedCausalAttention.apply(q, k, v, block)


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    if use_blocked_path(q):
        return blocked_attention(q, k, v)
    return sdpa_attention(q, k, v)
