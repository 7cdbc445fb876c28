"""The batches a JAX run reads: lab.data's window order (a pure function of seed and sequence
index), as numpy arrays shaped for the jitted step.

A JAX program sees one global batch whatever the number of devices or hosts: every process
builds the whole step's batch (token ids are cheap) and lab.jax.sharding hands each device
its rows. So the run's data never depends on the mesh, and the sequences of step s are those
the torch backend reads at step s on one process.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from lab.data import WindowSampler, eval_windows
from lab.plan import Plan


def step_batch(sampler: WindowSampler, plan: Plan, step: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Sequences step*batch_size .. +batch_size as (inputs, targets), each (accumulation,
    micro_batch, T) int32: micro-batch i holds the i-th micro_batch sequences, as torch reads them."""
    block = sampler.windows(step * batch_size, batch_size).astype(np.int32)  # (B, T+1)
    block = block.reshape(plan.accumulation, plan.micro_batch, -1)
    return block[..., :-1], block[..., 1:]


def eval_blocks(tokens: np.ndarray, seq_len: int, max_tokens: int, rows: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Held-out (inputs, targets) of up to `rows` windows each, int32 (lab.data.eval_windows)."""
    for block in eval_windows(tokens, seq_len, max_tokens, rows):
        block = block.astype(np.int32)
        yield block[:, :-1], block[:, 1:]
