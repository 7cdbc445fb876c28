"""Data quality: a loss surface per quality level, and joint fits with an effective-data multiplier.

Quality q is the fraction of textbook-grade data (corpora.config.CorpusConfig: 1 = textbook,
0 = web). The joint fits replace D by D_eff = m(q) D with m(1) = 1, either
    exponential: log m(q) = gamma (1 - q)         (one parameter), or
    per_level:   one free log m per level, the highest level being the reference.
Under D_eff = m D, B becomes B m^-beta, so the compute-optimal split at a budget moves with q:
N_opt ∝ m^(beta/(alpha+beta)), D_opt ∝ m^(-beta/(alpha+beta)).

"How many web tokens is one textbook token worth" is reported two ways: the joint model's
budget-independent ratio m(q_high)/m(q_low), and, from the per-level fits at the reference budget,
the tokens the low-quality surface needs (at the high-quality compute-optimal model size) to reach
the loss the high-quality optimum reaches, divided by the high-quality optimal tokens.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from analysis.approach3 import SurfaceOptions, SurfaceResult, run_surface
from analysis.approach3_core import optimal_allocation
from analysis.intervals import Estimate, percentile_estimate
from analysis.table import InsufficientData, RunTable


@dataclass(frozen=True)
class QualityResult:
    levels: tuple[float, ...]
    budget: float
    per_level: dict[float, SurfaceResult]
    joint: dict[str, SurfaceResult]
    # m(q) at every level under each joint form (reference level = 1 by construction).
    multipliers: dict[str, dict[float, Estimate]]
    # Web (lowest level) tokens one textbook (highest level) token is worth.
    token_worth: dict[str, Estimate]
    # Compute-optimal N, D and tokens per parameter at the budget, per level, per model.
    allocation: dict[str, dict[float, dict[str, Estimate]]]
    notes: tuple[str, ...] = field(default_factory=tuple)


def _log_multipliers(result: SurfaceResult, form: str, levels: tuple[float, ...],
                     thetas: np.ndarray) -> dict[float, np.ndarray]:
    """log m(q) per level for each row of thetas."""
    thetas = np.atleast_2d(thetas)
    if form == "exponential":
        gamma = thetas[:, result.fit.names.index("gamma")]
        return {q: gamma * (1.0 - q) for q in levels}
    logs = {q: np.zeros(len(thetas)) for q in levels}
    for level in result.multiplier_levels:  # by name: a fitted repeat decay comes first
        logs[level] = thetas[:, result.fit.names.index(f"log_multiplier_q{level:g}")]
    return logs


def _joint_quantities(result: SurfaceResult, form: str, levels: tuple[float, ...],
                      thetas: np.ndarray, budget: float) -> dict[str, np.ndarray]:
    thetas = np.atleast_2d(thetas)
    logs = _log_multipliers(result, form, levels, thetas)
    low, high = levels[0], levels[-1]
    quantities = {"token_worth": np.exp(logs[high] - logs[low])}
    A, B, alpha, beta = np.exp(thetas[:, 0]), np.exp(thetas[:, 1]), thetas[:, 3], thetas[:, 4]
    for q in levels:
        quantities[f"multiplier@{q:g}"] = np.exp(logs[q])
        with np.errstate(all="ignore"):
            allocation = optimal_allocation(budget, A, B * np.exp(-beta * logs[q]), alpha, beta)
        quantities[f"params_at_budget@{q:g}"] = allocation.params
        quantities[f"tokens_at_budget@{q:g}"] = allocation.tokens
        quantities[f"tokens_per_param_at_budget@{q:g}"] = allocation.tokens_per_param
    return quantities


def equal_loss_token_worth(high: np.ndarray, low: np.ndarray, budget: float) -> np.ndarray:
    """Low-quality tokens per high-quality token at equal loss, for rows of (a, b, e, alpha, beta).

    The high-quality compute-optimal model (N*, D*) at the budget reaches L*; the low-quality
    surface needs D with E + A/N*^alpha + B/D^beta = L*; inf when it cannot reach L* at that size.
    """
    high, low = np.atleast_2d(high), np.atleast_2d(low)
    with np.errstate(all="ignore"):
        A_h, B_h, E_h = np.exp(high[:, 0]), np.exp(high[:, 1]), np.exp(high[:, 2])
        optimum = optimal_allocation(budget, A_h, B_h, high[:, 3], high[:, 4])
        target = E_h + A_h / optimum.params ** high[:, 3] + B_h / optimum.tokens ** high[:, 4]
        A_l, B_l, E_l = np.exp(low[:, 0]), np.exp(low[:, 1]), np.exp(low[:, 2])
        room = target - E_l - A_l / optimum.params ** low[:, 3]
        needed = np.where(room > 0, (B_l / room) ** (1.0 / low[:, 4]), np.inf)
        return needed / optimum.tokens


def _estimates(point: dict[str, np.ndarray], samples: dict[str, np.ndarray]) -> dict[str, Estimate]:
    return {name: percentile_estimate(float(point[name][0]), samples[name]) for name in point}


def level_stream(index: int) -> tuple[int, ...]:
    """The bootstrap stream of the index-th quality level's own fit: independent draws per level
    (with one stream, equal-sized levels resampled the same rows and the ratio's interval of two
    fits came out too narrow)."""
    return (index + 1,)


def fit_levels(runs: RunTable, *, budget: float, n_boot: int, seed: int,
               options: SurfaceOptions = SurfaceOptions()) -> tuple[dict[float, SurfaceResult], list[str]]:
    """A separate loss surface per quality level, and a note for each level too small to fit."""
    per_level, notes = {}, []
    for index, q in enumerate(runs.quality_levels()):
        try:
            per_level[q] = run_surface(runs.subset(runs.quality == q), budget=budget, n_boot=n_boot,
                                       seed=seed, options=replace(options, quality_form=None),
                                       stream=level_stream(index))
        except InsufficientData as reason:
            notes.append(f"quality {q:g}: no separate fit ({reason})")
    return per_level, notes


def run_quality(runs: RunTable, *, budget: float, n_boot: int, seed: int,
                options: SurfaceOptions = SurfaceOptions(),
                per_level: dict[float, SurfaceResult] | None = None) -> QualityResult:
    """Joint quality fits, plus the per-level fits (pass them in when already computed)."""
    levels = tuple(runs.quality_levels())
    if len(levels) < 2:
        raise InsufficientData(f"quality analysis needs at least 2 quality levels, got {len(levels)}")
    if np.any(np.isnan(runs.quality)):
        raise InsufficientData("quality analysis needs a quality value on every run")
    notes: list[str] = []
    if per_level is None:
        per_level, notes = fit_levels(runs, budget=budget, n_boot=n_boot, seed=seed, options=options)
    else:
        notes = [f"quality {q:g}: no separate fit" for q in levels if q not in per_level]

    joint, multipliers, token_worth, allocation = {}, {}, {}, {}
    for form in ("exponential", "per_level"):
        result = run_surface(runs, budget=budget, n_boot=n_boot, seed=seed,
                             options=replace(options, quality_form=form))
        joint[form] = result
        estimates = _estimates(_joint_quantities(result, form, levels, result.fit.theta, budget),
                               _joint_quantities(result, form, levels, result.replicates, budget))
        multipliers[form] = {q: estimates[f"multiplier@{q:g}"] for q in levels}
        token_worth[f"joint {form}"] = estimates["token_worth"]
        allocation[f"joint {form}"] = {q: {name: estimates[f"{name}@{q:g}"] for name in
                                           ("params_at_budget", "tokens_at_budget",
                                            "tokens_per_param_at_budget")} for q in levels}

    low, high = levels[0], levels[-1]
    if low in per_level and high in per_level:
        n_pairs = min(len(per_level[low].replicates), len(per_level[high].replicates))
        token_worth["per-level fits, equal loss"] = percentile_estimate(
            float(equal_loss_token_worth(per_level[high].fit.theta, per_level[low].fit.theta, budget)[0]),
            equal_loss_token_worth(per_level[high].replicates[:n_pairs],
                                   per_level[low].replicates[:n_pairs], budget))
    else:
        notes.append("no per-level exchange rate: the lowest and highest levels both need their own fit")
    allocation["per-level fits"] = {
        q: {name: result.estimates[name] for name in
            ("params_at_budget", "tokens_at_budget", "tokens_per_param_at_budget")}
        for q, result in per_level.items()}
    return QualityResult(levels=levels, budget=budget, per_level=per_level, joint=joint,
                         multipliers=multipliers, token_worth=token_worth, allocation=allocation,
                         notes=tuple(notes))
