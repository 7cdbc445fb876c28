"""Approach 1: the minimum-loss envelope over training compute, and power laws through it.

Chinchilla took the envelope over intermediate checkpoints; here every point is a run's final
loss, because only the end of a run has a fully decayed learning-rate schedule (a mid-run cosine
loss is pessimistic for that compute). Runs are binned by compute (analysis.compute_groups); the
best run of each bin is on the envelope when it beats every bin of less compute.
"""
from __future__ import annotations

import numpy as np

from analysis.allocation_laws import AllocationLawResult, AllocationLaws, summarise
from analysis.compute_groups import group_by_compute
from analysis.insufficient import InsufficientData
from analysis.power_law import fit_power_law
from analysis.table import RunTable

MIN_ENVELOPE_POINTS = 3


def envelope_indices(flops: np.ndarray, loss: np.ndarray, group_of_run: np.ndarray) -> np.ndarray:
    """Indices of the runs on the envelope, in order of increasing compute."""
    groups = np.unique(group_of_run)
    best_of_group = np.array([np.flatnonzero(group_of_run == g)[np.argmin(loss[group_of_run == g])]
                              for g in groups])
    by_compute = best_of_group[np.argsort(flops[best_of_group], kind="stable")]
    envelope, lowest = [], np.inf
    for run in by_compute:
        if loss[run] < lowest:
            envelope.append(run)
            lowest = loss[run]
    return np.array(envelope, dtype=int)


def fit_envelope_laws(runs: RunTable, group_of_run: np.ndarray) -> tuple[AllocationLaws, np.ndarray]:
    on_envelope = envelope_indices(runs.flops, runs.loss, group_of_run)
    if on_envelope.size < MIN_ENVELOPE_POINTS:
        raise InsufficientData(f"approach 1 needs at least {MIN_ENVELOPE_POINTS} compute bins whose best "
                               f"run improves on all smaller budgets, got {on_envelope.size}")
    flops = runs.flops[on_envelope]
    laws = AllocationLaws(params=fit_power_law(flops, runs.params[on_envelope]),
                          tokens=fit_power_law(flops, runs.tokens[on_envelope]))
    return laws, on_envelope


def run_envelope(runs: RunTable, *, budget: float, n_boot: int, seed: int) -> AllocationLawResult:
    """Fit on all runs, then refit on runs resampled with replacement (compute bins kept)."""
    groups = group_by_compute(runs)
    laws, on_envelope = fit_envelope_laws(runs, groups.group_of_run)
    rng = np.random.default_rng([seed, 1])
    replicate_laws = np.full((n_boot, 4), np.nan)
    for replicate in range(n_boot):
        rows = rng.integers(0, len(runs), size=len(runs))
        try:
            resampled, _ = fit_envelope_laws(runs.subset(rows), groups.group_of_run[rows])
        except InsufficientData:
            continue
        replicate_laws[replicate] = resampled.as_row()
    optima = {"compute": runs.flops[on_envelope].tolist(), "params": runs.params[on_envelope].tolist(),
              "tokens": runs.tokens[on_envelope].tolist(), "loss": runs.loss[on_envelope].tolist(),
              "run_ids": [runs.run_ids[i] for i in on_envelope]}
    return summarise("approach 1 (loss envelope)", laws, replicate_laws, budget, optima)
