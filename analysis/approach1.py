"""Approach 1: the minimum-loss envelope over compute C = 6 N D, and power laws N_opt(C), D_opt(C)
through it; the laws, their bootstrap summary and the grouping of runs by compute are shared with
Approach 2 (analysis.approach2).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from analysis.intervals import Estimate, percentile_estimate
from analysis.table import InsufficientData, RunTable

MIN_ENVELOPE_POINTS = 3
ALLOCATION_NAMES = ("params_exponent", "tokens_exponent", "params_at_budget", "tokens_at_budget",
                    "tokens_per_param_at_budget")
# Grouping: a grid's runs of one budget differ by rounding of the step count (a few percent), its
# budgets by 2x or more, so a gap wider than this in log10 C starts a new group.
DEFAULT_GAP_DEX = 0.05


@dataclass(frozen=True)
class PowerLaw:
    """y = coefficient * x^exponent: a straight line in log-log space."""

    exponent: float
    coefficient: float

    def __call__(self, x: np.ndarray | float) -> np.ndarray:
        return self.coefficient * np.power(x, self.exponent)


def fit_power_law(x: np.ndarray, y: np.ndarray) -> PowerLaw:
    """Least squares of log10 y on log10 x; needs two distinct x."""
    log_x = np.log10(np.asarray(x, dtype=float))
    log_y = np.log10(np.asarray(y, dtype=float))
    if np.unique(log_x).size < 2:
        raise InsufficientData(f"a power law needs at least 2 distinct compute values, got "
                               f"{np.unique(log_x).size}")
    slope, intercept = np.polyfit(log_x, log_y, 1)
    return PowerLaw(exponent=float(slope), coefficient=float(10.0 ** intercept))


@dataclass(frozen=True)
class AllocationLaws:
    params: PowerLaw
    tokens: PowerLaw

    def as_row(self) -> np.ndarray:
        """(params exponent, log10 params coefficient, tokens exponent, log10 tokens coefficient)."""
        return np.array([self.params.exponent, np.log10(self.params.coefficient),
                         self.tokens.exponent, np.log10(self.tokens.coefficient)])


@dataclass(frozen=True)
class AllocationLawResult:
    """One approach's compute-optimal allocation: laws on all runs, replicates and intervals."""

    approach: str
    laws: AllocationLaws
    # Bootstrap replicates as rows of AllocationLaws.as_row(); NaN rows are refits that failed.
    replicate_laws: np.ndarray
    budget: float
    estimates: dict[str, Estimate]
    # The optima the laws pass through: compute, params, tokens, loss, run_ids (for figures).
    optima: dict[str, list]
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def failed_replicates(self) -> int:
        return int(np.isnan(self.replicate_laws[:, 0]).sum())


def laws_at_budget(rows: np.ndarray, budget: float) -> dict[str, np.ndarray]:
    """Every reported quantity from law rows (n, 4), vectorised over replicates."""
    rows = np.atleast_2d(rows)
    params = 10.0 ** (rows[:, 1] + rows[:, 0] * np.log10(budget))
    tokens = 10.0 ** (rows[:, 3] + rows[:, 2] * np.log10(budget))
    return {"params_exponent": rows[:, 0], "tokens_exponent": rows[:, 2],
            "params_at_budget": params, "tokens_at_budget": tokens,
            "tokens_per_param_at_budget": tokens / params}


def summarise(approach: str, laws: AllocationLaws, replicate_laws: np.ndarray, budget: float,
              optima: dict[str, list], notes: tuple[str, ...] = ()) -> AllocationLawResult:
    point = laws_at_budget(laws.as_row(), budget)
    samples = laws_at_budget(replicate_laws, budget) if len(replicate_laws) else {
        name: np.array([]) for name in ALLOCATION_NAMES}
    estimates = {name: percentile_estimate(float(point[name][0]), samples[name])
                 for name in ALLOCATION_NAMES}
    return AllocationLawResult(approach=approach, laws=laws, replicate_laws=replicate_laws,
                               budget=budget, estimates=estimates, optima=optima, notes=notes)


@dataclass(frozen=True)
class ComputeGroups:
    """Runs grouped by compute budget: the bins of Approach 1 and the profiles of Approach 2."""

    # Group index of every run, and each group's budget (nominal, or geometric mean of its runs).
    group_of_run: np.ndarray
    budgets: np.ndarray
    # Spread of log10 C inside each group.
    spread_dex: np.ndarray
    from_budget_column: bool

    @property
    def count(self) -> int:
        return self.budgets.size

    def members(self, group: int) -> np.ndarray:
        return np.flatnonzero(self.group_of_run == group)


def group_by_compute(runs: RunTable, gap_dex: float = DEFAULT_GAP_DEX) -> ComputeGroups:
    """By the grid's nominal compute budget when every run has one, else by gaps in log10 C (6 N D)."""
    log_compute = np.log10(runs.compute)
    if len(runs) and np.all(np.isfinite(runs.compute_budget)) and np.all(runs.compute_budget > 0):
        budgets, group_of_run = np.unique(runs.compute_budget, return_inverse=True)
        from_column = True
    else:
        order = np.argsort(log_compute, kind="stable")
        starts_new_group = np.diff(log_compute[order], prepend=-np.inf) > gap_dex
        group_of_run = np.empty(len(runs), dtype=int)
        group_of_run[order] = np.cumsum(starts_new_group) - 1
        budgets = np.array([10.0 ** log_compute[group_of_run == g].mean()
                            for g in range(int(starts_new_group.sum()))])
        from_column = False
    spread = np.array([np.ptp(log_compute[group_of_run == g]) for g in range(budgets.size)])
    return ComputeGroups(group_of_run=group_of_run, budgets=budgets, spread_dex=spread,
                         from_budget_column=from_column)


def envelope_indices(compute: np.ndarray, loss: np.ndarray, group_of_run: np.ndarray) -> np.ndarray:
    """Indices of the runs on the envelope, in order of increasing compute: the best run of each
    compute bin, when it beats every bin of less compute.

    Chinchilla took the envelope over intermediate checkpoints; here every point is a run's final
    loss, because only the end of a run has a fully decayed learning-rate schedule (a mid-run
    cosine loss is pessimistic for that compute).
    """
    groups = np.unique(group_of_run)
    best_of_group = np.array([np.flatnonzero(group_of_run == g)[np.argmin(loss[group_of_run == g])]
                              for g in groups])
    by_compute = best_of_group[np.argsort(compute[best_of_group], kind="stable")]
    envelope, lowest = [], np.inf
    for run in by_compute:
        if loss[run] < lowest:
            envelope.append(run)
            lowest = loss[run]
    return np.array(envelope, dtype=int)


def fit_envelope_laws(runs: RunTable, group_of_run: np.ndarray) -> tuple[AllocationLaws, np.ndarray]:
    on_envelope = envelope_indices(runs.compute, runs.loss, group_of_run)
    if on_envelope.size < MIN_ENVELOPE_POINTS:
        raise InsufficientData(f"approach 1 needs at least {MIN_ENVELOPE_POINTS} compute bins whose best "
                               f"run improves on all smaller budgets, got {on_envelope.size}")
    compute = runs.compute[on_envelope]
    laws = AllocationLaws(params=fit_power_law(compute, runs.params[on_envelope]),
                          tokens=fit_power_law(compute, runs.tokens[on_envelope]))
    return laws, on_envelope


def run_envelope(runs: RunTable, *, budget: float, n_boot: int, seed: int) -> AllocationLawResult:
    """Fit on all runs, then refit on runs resampled with replacement (compute bins kept).

    Seed replicates enter as their cell's mean (RunTable.cell_means): the best of a cell's seeds
    is its luckiest draw, and the bootstrap then draws cells, never one seed apart from the others.
    """
    runs = runs.cell_means()
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
    optima = {"compute": runs.compute[on_envelope].tolist(), "params": runs.params[on_envelope].tolist(),
              "tokens": runs.tokens[on_envelope].tolist(), "loss": runs.loss[on_envelope].tolist(),
              "run_ids": [runs.run_ids[i] for i in on_envelope]}
    return summarise("approach 1 (loss envelope)", laws, replicate_laws, budget, optima)
