"""Compute-optimal allocation of a budget C = 6 N D under L = E + A/N^alpha + B/D^beta.

Minimising the loss on the constraint gives (Hoffmann et al. 2022, eq. 4)
    G = (alpha A / (beta B))^(1/(alpha+beta)),
    N_opt = G (C/6)^a,  D_opt = G^-1 (C/6)^b,  a = beta/(alpha+beta),  b = alpha/(alpha+beta).
E does not move the optimum. Everything here is vectorised over arrays of parameters so the same
code evaluates a point estimate and a thousand bootstrap replicates.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FLOPS_PER_PARAM_TOKEN = 6.0


@dataclass(frozen=True)
class Allocation:
    """The optimal split of one compute budget (arrays when evaluated on many parameter sets)."""

    compute: float
    params: np.ndarray
    tokens: np.ndarray

    @property
    def tokens_per_param(self) -> np.ndarray:
        return self.tokens / self.params


def allocation_exponents(alpha, beta) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) with N_opt ∝ C^a and D_opt ∝ C^b; a + b = 1."""
    alpha = np.asarray(alpha, dtype=float)
    beta = np.asarray(beta, dtype=float)
    return beta / (alpha + beta), alpha / (alpha + beta)


def allocation_scale(A, B, alpha, beta) -> np.ndarray:
    """G = (alpha A / (beta B))^(1/(alpha+beta))."""
    A, B, alpha, beta = (np.asarray(v, dtype=float) for v in (A, B, alpha, beta))
    return np.power(alpha * A / (beta * B), 1.0 / (alpha + beta))


def optimal_allocation(compute: float, A, B, alpha, beta) -> Allocation:
    a, b = allocation_exponents(alpha, beta)
    scale = allocation_scale(A, B, alpha, beta)
    half_budget = compute / FLOPS_PER_PARAM_TOKEN
    return Allocation(compute=compute,
                      params=scale * np.power(half_budget, a),
                      tokens=np.power(half_budget, b) / scale)


def optimal_loss(compute, E, A, B, alpha, beta) -> np.ndarray:
    """The loss reached when compute is split optimally: the parametric compute frontier."""
    allocation = optimal_allocation(compute, A, B, alpha, beta)
    return (np.asarray(E, dtype=float) + A / np.power(allocation.params, alpha)
            + B / np.power(allocation.tokens, beta))
