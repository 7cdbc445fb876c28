"""Output projection and cross-entropy in one pass over chunks of tokens.

Materialising (tokens x vocab) logits, their softmax and its gradient costs several passes over
a tensor far larger than the CPU caches; at small d_model that dominates a training step.
Here each chunk's logits are computed, turned into loss and gradients while still in cache, and
dropped. Because the loss is the graph's last node, the gradients are computed during the
forward pass (for an upstream gradient of 1) and only scaled in backward: nothing is recomputed.

Under autocast the three matmuls run in the autocast dtype (bf16) and the softmax reads and
writes bf16 while accumulating in fp32: the (tokens x vocab) tensor is touched by one fused
softmax and the two matmuls, nothing else. The loss is -log of the target's probability, so
in bf16 each token's loss carries ~0.4% rounding, unbiased and averaged over the batch.
"""
from __future__ import annotations

import torch

from lab.precision import active_compute_dtype


def _compute_dtype(t: torch.Tensor) -> torch.dtype:
    return active_compute_dtype(t.device.type, t.dtype)


class LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk: int):
        # hidden: (N, d), weight: (V, d), targets: (N,) -> mean loss in nats
        n = hidden.shape[0]
        dtype = _compute_dtype(hidden)
        with torch.autocast(hidden.device.type, enabled=False):
            h_all, w = hidden.to(dtype), weight.to(dtype)
            grad_hidden = torch.empty(h_all.shape, dtype=dtype, device=hidden.device)
            grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
            total = torch.zeros((), dtype=torch.float64, device=hidden.device)
            for start in range(0, n, chunk):
                h, t = h_all[start:start + chunk], targets[start:start + chunk]
                rows = torch.arange(len(t), device=t.device)
                # One fused pass: softmax of a bf16 tensor accumulates in fp32 and writes bf16.
                probs = torch.softmax(h @ w.t(), dim=-1)  # (c, V)
                total -= probs[rows, t].double().log().sum()
                # d(sum of losses)/d(logits) = softmax - onehot(target); the 1/n comes at the end,
                # on the two small results rather than on this (c, V) tensor.
                probs[rows, t] -= 1.0
                torch.mm(probs, w, out=grad_hidden[start:start + len(t)])
                grad_weight += probs.t() @ h
        ctx.save_for_backward(grad_hidden.to(hidden.dtype).div_(n), grad_weight.div_(n).to(weight.dtype))
        return (total / n).float()

    @staticmethod
    def backward(ctx, grad_output):
        grad_hidden, grad_weight = ctx.saved_tensors
        return grad_hidden * grad_output, grad_weight * grad_output, None, None


# Rows per chunk on a CPU, by compute dtype (measured in whole training steps at d_model 128,
# vocab 4096, 2 cores): bf16 (oneDNN matmuls, fused softmax) does best on small cache-resident
# chunks; fp32 (MKL) matmuls want larger ones: 512-768 rows beat 256 by ~4-6% of a step, 1024
# loses again.
FP32_CHUNK_ROWS, LOW_PRECISION_CHUNK_ROWS = 512, 256
# On a GPU no cache holds a chunk: what matters is that each matmul is large enough to fill the
# device, while the (rows x vocab) block stays a bounded slice of memory. 2^27 elements is 256 MiB
# in bf16 (4096 rows at vocab 32768); at least 1024 rows so that small vocabularies get big matmuls.
GPU_CHUNK_ELEMENTS, GPU_MIN_CHUNK_ROWS = 2 ** 27, 1024


def chunk_rows(device: torch.device, dtype: torch.dtype, vocab_size: int) -> int:
    """Rows of logits per chunk on this device in this compute dtype."""
    if device.type == "cpu":
        return FP32_CHUNK_ROWS if dtype == torch.float32 else LOW_PRECISION_CHUNK_ROWS
    return max(GPU_MIN_CHUNK_ROWS, GPU_CHUNK_ELEMENTS // vocab_size)


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                         chunk: int | None = None) -> torch.Tensor:
    """mean_i CE(hidden_i @ weight.T, targets_i), as F.cross_entropy(F.linear(hidden, weight), targets).

    chunk: rows per block of logits (default: by device and compute dtype, see chunk_rows).
    Under torch.compile (train.compile=true) the plain formula instead, as lab.fused's ops do:
    the compiler fuses the softmax and its gradient itself, and the function above is opaque to it."""
    if torch.compiler.is_compiling():
        logits = torch.nn.functional.linear(hidden, weight)
        return torch.nn.functional.cross_entropy(logits.float(), targets)
    if chunk is None:
        chunk = chunk_rows(hidden.device, _compute_dtype(hidden), weight.shape[0])
    return LinearCrossEntropy.apply(hidden, weight, targets, chunk)
