"""Causal grouped-query attention, choosing the faster of two exact implementations.

``scaled_dot_product_attention`` is the default everywhere. On a CPU in bf16 at short
sequences its flash kernel (whose bf16 backward is slower than its fp32 one at small head
dims) loses to three plain ops per block of queries: grouped matmul, masked softmax, matmul.
bench/attention.py measures the two side by side. The plain path folds the G query heads that
share a K/V head into the rows of one matmul, so K and V are never repeated.

Both take q already multiplied by 1/sqrt(head_dim) (the model folds it into the rotary
tables, which costs nothing) and return the heads concatenated: (B, T, H * hd).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

# Beyond this many positions the blocked plain path stops winning (bench/attention.py, bf16,
# 2 cores: plain ~1.7x faster at 256 and 512 positions, on par or slower at 1024).
PLAIN_MAX_SEQ = 512


def use_plain_path(q: torch.Tensor) -> bool:
    return q.device.type == "cpu" and q.dtype == torch.bfloat16 and q.shape[1] <= PLAIN_MAX_SEQ


def sdpa_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """q: (B, T, H, hd), k/v: (B, T, Hkv, hd), q pre-scaled -> (B, T, H * hd)."""
    B, T, H, hd = q.shape
    y = F.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
        is_causal=True, scale=1.0, enable_gqa=k.shape[2] != H,
    )  # (B, H, T, hd)
    return y.transpose(1, 2).reshape(B, T, H * hd)


def plain_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block: int = 64) -> torch.Tensor:
    """Same contract as sdpa_attention, as grouped matmuls and a softmax per block of queries.

    Queries go in blocks of `block` positions, each against only the keys it may see, which
    skips the masked upper triangle (~40% of the work at 4 blocks) and keeps each block's
    score tensor small enough to stay in cache.
    """
    B, T, H, hd = q.shape
    Hkv = k.shape[2]
    G = H // Hkv
    keys_t = k.permute(0, 2, 3, 1)  # (B, Hkv, hd, T)
    values = v.transpose(1, 2)  # (B, Hkv, T, hd)
    outputs = []
    for start in range(0, T, block):
        end = min(start + block, T)
        n = end - start
        # Query head h uses K/V head h // G (transformers' repeat_kv order): rows are (group, t).
        q_rows = q[:, start:end].reshape(B, n, Hkv, G, hd).permute(0, 2, 3, 1, 4).reshape(B, Hkv, G * n, hd)
        scores = torch.matmul(q_rows, keys_t[..., :end])  # (B, Hkv, G*n, end)
        # Row (g, t) may not see keys after t. Added in place to `scores` itself, not to a view
        # of it: an in-place op on a view makes autograd clone the whole gradient in backward.
        # Query t = start + row sees key c iff c <= t: -inf where c - row >= start + 1.
        future = torch.full((n, end), float("-inf"), dtype=scores.dtype, device=q.device).triu_(start + 1)
        scores.add_(future.repeat(G, 1))
        # softmax of a bf16 tensor accumulates in fp32 internally.
        y = torch.matmul(torch.softmax(scores, dim=-1), values[:, :, :end])  # (B, Hkv, G*n, hd)
        outputs.append(y.view(B, Hkv, G, n, hd).permute(0, 3, 1, 2, 4).reshape(B, n, H * hd))
    return torch.cat(outputs, dim=1)


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    if use_plain_path(q):
        return plain_attention(q, k, v)
    return sdpa_attention(q, k, v)
