"""Grouping runs by compute budget: the IsoFLOP profiles of Approach 2 and the bins of Approach 1.

A grid's nominal budget (results.csv's ``compute_budget`` column) is used when every run has one.
Otherwise runs are chained along sorted log10 C and a new group starts at every gap wider than
``gap_dex``: a grid's runs of one budget differ by rounding of the step count (a few percent), its
budgets by 2x or more.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.table import RunTable

DEFAULT_GAP_DEX = 0.05
# An IsoFLOP profile must hold compute (near) fixed; wider groups are chains of a scatter design.
MAX_PROFILE_SPREAD_DEX = 0.1


@dataclass(frozen=True)
class ComputeGroups:
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
    log_flops = np.log10(runs.flops)
    if len(runs) and np.all(np.isfinite(runs.flops_budget)) and np.all(runs.flops_budget > 0):
        budgets, group_of_run = np.unique(runs.flops_budget, return_inverse=True)
        from_column = True
    else:
        order = np.argsort(log_flops, kind="stable")
        starts_new_group = np.diff(log_flops[order], prepend=-np.inf) > gap_dex
        group_of_run = np.empty(len(runs), dtype=int)
        group_of_run[order] = np.cumsum(starts_new_group) - 1
        budgets = np.array([10.0 ** log_flops[group_of_run == g].mean()
                            for g in range(int(starts_new_group.sum()))])
        from_column = False
    spread = np.array([np.ptp(log_flops[group_of_run == g]) for g in range(budgets.size)])
    return ComputeGroups(group_of_run=group_of_run, budgets=budgets, spread_dex=spread,
                         from_budget_column=from_column)
