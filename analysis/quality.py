"""Data quality: a loss surface per quality level, and joint fits with an effective-data multiplier.

Quality q is the fraction of textbook-grade data (corpora.config.CorpusConfig: 1 = textbook,
0 = web). The joint fits replace D by D_eff = m(q) D with m(1) = 1, either
    exponential: log m(q) = gamma (1 - q)         (one parameter), or
    per_level:   one free log m per level, the highest level being the reference.
Under D_eff = m D, B becomes B m^-beta, so the compute-optimal split at a budget moves with q:
N_opt ∝ m^(beta/(alpha+beta)), D_opt ∝ m^(-beta/(alpha+beta)).

A difference between the lowest and highest level in a fitted exponent (alpha or beta) counts as
significant only against a label-permutation null: the two levels' labels shuffled among matched
runs (same size, token count and epochs), the exponent refitted on both, the difference recorded.

"How many web tokens is one textbook token worth" is reported two ways: the joint model's
budget-independent ratio m(q_high)/m(q_low), and, from the per-level fits at the reference budget,
the tokens the low-quality surface needs (at the high-quality compute-optimal model size) to reach
the loss the high-quality optimum reaches, divided by the high-quality optimal tokens. The same
exchange rate on each accuracy, beside the loss's, with its own permutation null: analysis.quality_metrics.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from analysis.approach3 import SurfaceOptions, SurfaceResult, build_tokens, run_surface
from analysis.approach3_core import (
    HuberLogLossObjective,
    fit_surface,
    optimal_allocation,
    polish,
    single_threaded_blas,
)
from analysis.intervals import Estimate, percentile_estimate
from analysis.permutation import (
    SIGNIFICANCE_LEVEL,
    PermutationTest,
    matched_groups,
    relabelings,
    shuffle_within,
    two_sided_p,
)
from analysis.quality_metrics import LOSS_FORM, MetricEffect, metric_effects
from analysis.table import InsufficientData, RunTable

# Enough relabelings for a p-value near 0.05 to be read to about +-0.015; each costs four short
# L-BFGS polishes of two parameters (two exponents, two relabelled levels): about 3 s in all on
# the CPU data-quality grid.
DEFAULT_PERMUTATIONS = 200
TESTED_EXPONENTS = ("alpha", "beta")


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
    # Highest-minus-lowest level difference of each fitted exponent against its permutation null.
    exponent_tests: dict[str, PermutationTest] = field(default_factory=dict)
    # What a textbook token is worth on the loss and on each accuracy (analysis.quality_metrics).
    metric_effects: tuple[MetricEffect, ...] = ()


def _log_multipliers(result: SurfaceResult, form: str, levels: tuple[float, ...],
                     thetas: np.ndarray) -> dict[float, np.ndarray]:
    """log m(q) per level for each row of thetas."""
    thetas = np.atleast_2d(thetas)
    if form == "exponential":
        gamma = thetas[:, result.fit.names.index("gamma")]
        return {q: gamma * (max(levels) - q) for q in levels}  # as analysis.approach3.quality_design
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


def _level_objective(runs: RunTable, options: SurfaceOptions) -> HuberLogLossObjective:
    tokens, _, _, _ = build_tokens(runs, replace(options, quality_form=None))
    return HuberLogLossObjective(np.log(runs.params), tokens, np.log(runs.loss))


def _level_exponent(runs: RunTable, options: SurfaceOptions, pooled: np.ndarray, name: str) -> float:
    """One exponent of a level's runs, its amplitude beside it, every other parameter held at the
    pooled fit of both levels.

    Free fits of each level (all five parameters) were tried first: E and the other term trade
    against the exponent, and on relabelled levels, which mix two surfaces, the exponents swung
    about twice as far as the true difference, so the null swallowed any effect at any size
    (measured on the data-quality grid's shape). With the rest shared, a relabelled level's
    exponent stays near the range of the two levels' own, and a real difference stands out.
    """
    objective = _level_objective(runs, options)
    if pooled.size != len(objective.names):  # e.g. a fitted repeat decay, but no repeats at this level
        return math.nan
    amplitude = {"alpha": "a", "beta": "b"}[name]
    free = np.isin(objective.names, (amplitude, name))
    theta, value, _ = polish(objective, pooled, free=free)
    return float(theta[objective.names.index(name)]) if np.isfinite(value) else math.nan


def _exponent_differences(pair: RunTable, is_high: np.ndarray, options: SurfaceOptions,
                          pooled: np.ndarray) -> np.ndarray:
    """High-labelled minus low-labelled level, for each tested exponent."""
    high, low = pair.subset(is_high), pair.subset(~is_high)
    return np.array([_level_exponent(high, options, pooled, name) - _level_exponent(low, options, pooled, name)
                     for name in TESTED_EXPONENTS])


def _permutation_summary(observed: float, null: np.ndarray, matched: int, relabelings: float) -> PermutationTest:
    p_value, low, high, drawn = two_sided_p(observed, null)
    return PermutationTest(observed, low, high, p_value, drawn, matched, relabelings)


def exponent_permutation_tests(runs: RunTable, *, seed: int, n_perm: int = DEFAULT_PERMUTATIONS,
                               options: SurfaceOptions = SurfaceOptions()) -> dict[str, PermutationTest]:
    """Highest-minus-lowest level differences of alpha and beta (the rest shared), each against its
    permutation null: the two levels' labels shuffled within matched groups (same size, tokens,
    epochs), the exponents refitted, the difference recorded."""
    levels = runs.quality_levels()
    if len(levels) < 2:
        raise InsufficientData(f"a permutation test needs 2 quality levels, got {len(levels)}")
    low, high = levels[0], levels[-1]
    # Labels are shuffled among cells at their seeds' mean, the points every other fit takes.
    pair = runs.subset((runs.quality == low) | (runs.quality == high)).cell_means()
    groups, is_high = matched_groups(pair), pair.quality == high
    mixed = [g for g in np.unique(groups) if 0 < is_high[groups == g].sum() < (groups == g).sum()]
    if not mixed:
        raise InsufficientData("no size and token count was trained at both the lowest and highest level")
    # The shared parameters: one surface through both levels, whatever their labels.
    pooled = fit_surface(_level_objective(pair, options), polished_starts=options.polished_starts)
    rng = np.random.default_rng([seed, 4])
    null = np.full((n_perm, len(TESTED_EXPONENTS)), np.nan)
    with single_threaded_blas(), np.errstate(all="ignore"):
        observed = _exponent_differences(pair, is_high, options, pooled.theta)
        for permutation in range(n_perm):
            labels = shuffle_within(rng, is_high, groups)
            null[permutation] = _exponent_differences(pair, labels, options, pooled.theta)
    count = relabelings(is_high, groups)
    return {name: _permutation_summary(float(observed[i]), null[:, i], len(mixed), count)
            for i, name in enumerate(TESTED_EXPONENTS)}


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


def _tested_exponents(runs: RunTable, per_level: dict[float, SurfaceResult], *, seed: int, n_perm: int,
                      options: SurfaceOptions) -> tuple[dict[str, PermutationTest], list[str]]:
    """The permutation tests, or a note on why there are none or why they are weak."""
    if n_perm <= 0:
        return {}, ["no permutation test of the exponents (0 permutations asked for)"]
    levels = runs.quality_levels()
    if levels[0] not in per_level or levels[-1] not in per_level:
        return {}, ["no permutation test of the exponents: the lowest and highest levels both need their own fit"]
    try:
        tests = exponent_permutation_tests(runs, seed=seed, n_perm=n_perm, options=options)
    except InsufficientData as reason:
        return {}, [f"no permutation test of the exponents: {reason}"]
    relabelings = next(iter(tests.values())).relabelings
    # The observed labelling and its mirror image tie, so p can go no lower than 2 / relabelings.
    if relabelings * SIGNIFICANCE_LEVEL < 2.0:
        return tests, [f"the matched runs allow only {relabelings:.0f} distinct relabelings, so no "
                       f"exponent difference can reach p < {SIGNIFICANCE_LEVEL:g}"]
    return tests, []


def run_quality(runs: RunTable, *, budget: float, n_boot: int, seed: int,
                options: SurfaceOptions = SurfaceOptions(),
                per_level: dict[float, SurfaceResult] | None = None,
                n_perm: int = DEFAULT_PERMUTATIONS) -> QualityResult:
    """Joint quality fits, plus the per-level fits (pass them in when already computed) and the
    permutation tests of their exponents."""
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
    exponent_tests, test_notes = _tested_exponents(runs, per_level, seed=seed, n_perm=n_perm, options=options)
    effects = metric_effects(runs, token_worth[f"joint {LOSS_FORM}"], multipliers[LOSS_FORM], n_boot=n_boot,
                             seed=seed, n_perm=n_perm, options=options)
    return QualityResult(levels=levels, budget=budget, per_level=per_level, joint=joint,
                         multipliers=multipliers, token_worth=token_worth, allocation=allocation,
                         notes=tuple(notes + test_notes), exponent_tests=exponent_tests,
                         metric_effects=effects)
