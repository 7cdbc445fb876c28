"""Approach 2: IsoFLOP profiles. A parabola of loss in log N (and in log D) per compute budget,
its minimum, then power laws N_opt(C), D_opt(C) through the minima (as Approach 1's).

A profile is usable only when it has three distinct sizes, curves upward, and has its minimum
inside the sizes it sampled (an extrapolated minimum says the grid missed the optimum).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.approach1 import (
    AllocationLawResult,
    AllocationLaws,
    ComputeGroups,
    fit_power_law,
    group_by_compute,
    summarise,
)
from analysis.intervals import stratified_resample
from analysis.table import InsufficientData, RunTable

MIN_SIZES_PER_PROFILE = 3
# An IsoFLOP profile must hold compute (near) fixed; wider groups are chains of a scatter design.
MAX_PROFILE_SPREAD_DEX = 0.1
MIN_PROFILES = 2


@dataclass(frozen=True)
class IsoflopProfile:
    budget: float
    run_indices: np.ndarray
    # Coefficients (highest power first) of loss as a parabola in log10 N and in log10 D.
    params_parabola: np.ndarray
    tokens_parabola: np.ndarray
    optimal_params: float
    optimal_tokens: float
    optimal_loss: float


def _parabola_minimum(log_x: np.ndarray, loss: np.ndarray) -> tuple[np.ndarray, float] | str:
    """(coefficients, argmin in log10 x), or the reason the profile has no usable minimum."""
    coefficients = np.polyfit(log_x, loss, 2)
    curvature, slope = coefficients[0], coefficients[1]
    if curvature <= 0:
        return "the parabola opens downward"
    argmin = -slope / (2.0 * curvature)
    if not log_x.min() <= argmin <= log_x.max():
        return f"its minimum (10^{argmin:.2f}) lies outside the sampled range"
    return coefficients, float(argmin)


def fit_profile(runs: RunTable, members: np.ndarray, budget: float) -> IsoflopProfile | str:
    log_params = np.log10(runs.params[members])
    if np.unique(log_params).size < MIN_SIZES_PER_PROFILE:
        return f"{np.unique(log_params).size} distinct sizes (needs {MIN_SIZES_PER_PROFILE})"
    loss = runs.loss[members]
    params_fit = _parabola_minimum(log_params, loss)
    if isinstance(params_fit, str):
        return "in log N " + params_fit
    tokens_fit = _parabola_minimum(np.log10(runs.tokens[members]), loss)
    if isinstance(tokens_fit, str):
        return "in log D " + tokens_fit
    params_parabola, log_optimal_params = params_fit
    tokens_parabola, log_optimal_tokens = tokens_fit
    return IsoflopProfile(budget=budget, run_indices=members, params_parabola=params_parabola,
                          tokens_parabola=tokens_parabola, optimal_params=10.0 ** log_optimal_params,
                          optimal_tokens=10.0 ** log_optimal_tokens,
                          optimal_loss=float(np.polyval(params_parabola, log_optimal_params)))


def fit_profiles(runs: RunTable, groups: ComputeGroups) -> tuple[list[IsoflopProfile], list[str]]:
    """Usable profiles, and one note per budget left out with its reason."""
    profiles, notes = [], []
    for group in range(groups.count):
        budget = groups.budgets[group]
        if groups.spread_dex[group] > MAX_PROFILE_SPREAD_DEX:
            notes.append(f"budget {budget:.3g}: runs span {groups.spread_dex[group]:.2f} dex of "
                         "compute, not an IsoFLOP profile")
            continue
        profile = fit_profile(runs, groups.members(group), budget)
        if isinstance(profile, str):
            notes.append(f"budget {budget:.3g} skipped: {profile}")
        else:
            profiles.append(profile)
    return profiles, notes


def laws_through_minima(profiles: list[IsoflopProfile]) -> AllocationLaws:
    if len(profiles) < MIN_PROFILES:
        raise InsufficientData(f"approach 2 needs at least {MIN_PROFILES} IsoFLOP profiles with "
                               f">= {MIN_SIZES_PER_PROFILE} sizes and an interior minimum, "
                               f"got {len(profiles)}")
    budgets = np.array([p.budget for p in profiles])
    return AllocationLaws(params=fit_power_law(budgets, [p.optimal_params for p in profiles]),
                          tokens=fit_power_law(budgets, [p.optimal_tokens for p in profiles]))


@dataclass(frozen=True)
class IsoflopResult:
    allocation: AllocationLawResult
    profiles: list[IsoflopProfile]
    # The points the profiles were fitted to (their run_indices index it): one per cell.
    points: RunTable


def run_isoflop(runs: RunTable, *, budget: float, n_boot: int, seed: int) -> IsoflopResult:
    """Fit on all runs, then refit on runs resampled within each budget (the grid's design kept).
    Seed replicates enter as their cell's mean (RunTable.cell_means), so the bootstrap draws cells."""
    runs = runs.cell_means()
    groups = group_by_compute(runs)
    profiles, notes = fit_profiles(runs, groups)
    laws = laws_through_minima(profiles)
    rng = np.random.default_rng([seed, 2])
    replicate_laws = np.full((n_boot, 4), np.nan)
    for replicate in range(n_boot):
        rows = stratified_resample(rng, groups.group_of_run)
        resampled_groups = ComputeGroups(group_of_run=groups.group_of_run[rows], budgets=groups.budgets,
                                         spread_dex=groups.spread_dex,
                                         from_budget_column=groups.from_budget_column)
        try:
            replicate_profiles, _ = fit_profiles(runs.subset(rows), resampled_groups)
            replicate_laws[replicate] = laws_through_minima(replicate_profiles).as_row()
        except InsufficientData:
            continue
    optima = {"compute": [p.budget for p in profiles], "params": [p.optimal_params for p in profiles],
              "tokens": [p.optimal_tokens for p in profiles], "loss": [p.optimal_loss for p in profiles],
              "run_ids": [[runs.run_ids[i] for i in p.run_indices] for p in profiles]}
    allocation = summarise("approach 2 (IsoFLOP profiles)", laws, replicate_laws, budget, optima,
                           tuple(notes))
    return IsoflopResult(allocation=allocation, profiles=profiles, points=runs)
