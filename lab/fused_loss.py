"""Output projection and cross-entropy in one pass over chunks of tokens.

Materialising (tokens x vocab) logits, their softmax and its gradient costs several passes over
a tensor far larger than the CPU caches; at small d_model that dominates a training step.
Here each chunk's logits are computed, turned into loss and gradients while still in cache, and
dropped. Because the loss is the graph's last node, the gradients are computed during the
forward pass (for an upstream gradient of 1) and only scaled in backward: nothing is recomputed.
"""
from __future__ import annotations

import torch


class LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk: int):
        # hidden: (N, d), weight: (V, d), targets: (N,) -> mean loss in nats
        n = hidden.shape[0]
        grad_hidden = torch.empty_like(hidden)
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
        total = torch.zeros((), dtype=torch.float64, device=hidden.device)
        for start in range(0, n, chunk):
            h, t = hidden[start:start + chunk], targets[start:start + chunk]
            logits = (h @ weight.t()).float()  # (c, V); bf16 matmul under autocast
            lse = torch.logsumexp(logits, dim=-1)
            rows = torch.arange(len(t), device=t.device)
            total += (lse - logits[rows, t]).double().sum()
            grad = logits.sub_(lse[:, None]).exp_()  # softmax, in place of the logits
            grad[rows, t] -= 1.0
            grad.mul_(1.0 / n)
            # Under autocast these two matmuls run in bf16 like the forward one.
            grad_hidden[start:start + chunk] = grad @ weight
            grad_weight += grad.t() @ h
        ctx.save_for_backward(grad_hidden, grad_weight)
        return (total / n).float()

    @staticmethod
    def backward(ctx, grad_output):
        grad_hidden, grad_weight = ctx.saved_tensors
        return grad_hidden * grad_output, grad_weight * grad_output, None, None


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                         chunk: int = 1024) -> torch.Tensor:
    """mean_i CE(hidden_i @ weight.T, targets_i), as F.cross_entropy(F.linear(hidden, weight), targets)."""
    return LinearCrossEntropy.apply(hidden, weight, targets, chunk)
