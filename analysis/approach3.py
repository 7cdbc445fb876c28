"""Approach 3 on a table of runs: the parametric loss surface with its bootstrap, and every reported
quantity (E, A, B, alpha, beta, a, b, G, N_opt, D_opt, tokens per parameter) for each replicate.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from analysis.approach3_core import (
    DEFAULT_POLISHED_STARTS,
    EffectiveTokens,
    HuberLogLossObjective,
    SurfaceFit,
    allocation_exponents,
    allocation_scale,
    bootstrap_surfaces,
    fit_surface,
    optimal_allocation,
)
from analysis.intervals import Estimate, percentile_estimate, resample_counts
from analysis.references import MUENNIGHOFF
from analysis.table import InsufficientData, RunTable

QUALITY_FORMS = ("exponential", "per_level")
# With one or two values on an axis its exponent is not identified (E absorbs the rest), and the
# fit would return a starting-grid value with a confident-looking interval.
MIN_DISTINCT_PER_AXIS = 3


@dataclass(frozen=True)
class SurfaceOptions:
    # Replace D by Muennighoff's D' when some run repeated data (epochs > 1).
    repeat_correction: bool = True
    # Fit R_D* instead of fixing it at Muennighoff et al.'s 15.4.
    fit_repeat_decay: bool = False
    # None: no quality term. "exponential": log m(q) = gamma (q_top - q), q_top the highest level (1 on the synthetic dial). "per_level": one free
    # log-multiplier per quality level, the highest level being the reference (m = 1).
    quality_form: str | None = None
    polished_starts: int = DEFAULT_POLISHED_STARTS


@dataclass(frozen=True)
class SurfaceResult:
    fit: SurfaceFit
    # Bootstrap replicates of theta, (n_boot, n_params); NaN rows are failed refits.
    replicates: np.ndarray
    estimates: dict[str, Estimate]
    budget: float
    run_ids: tuple[str, ...]
    log_loss: np.ndarray
    predicted_log_loss: np.ndarray
    params: np.ndarray
    effective_tokens: np.ndarray
    notes: tuple[str, ...] = field(default_factory=tuple)
    # Quality levels with a free multiplier, in parameter order (per_level form only).
    multiplier_levels: tuple[float, ...] = ()
    reference_quality: float | None = None

    @property
    def failed_replicates(self) -> int:
        return int(np.isnan(self.replicates).any(axis=1).sum())

    @property
    def residuals(self) -> np.ndarray:
        """log observed - log predicted loss per run."""
        return self.log_loss - self.predicted_log_loss


def quality_design(quality: np.ndarray, form: str) -> tuple[np.ndarray, tuple[str, ...], tuple[float, ...], float]:
    """(design, parameter names, levels with a free multiplier, reference level) for log m(q)."""
    if np.any(np.isnan(quality)):
        raise InsufficientData("a quality term needs a quality value on every run")
    levels = sorted(float(q) for q in np.unique(quality))
    if len(levels) < 2:
        raise InsufficientData(f"a quality term needs at least 2 quality levels, got {len(levels)}")
    if form == "exponential":
        # Measured from the highest level, so m = 1 there on any axis (a threshold of 4, a share of 0.3).
        return (levels[-1] - quality)[:, None], ("gamma",), (), levels[-1]
    if form == "per_level":
        reference, free_levels = levels[-1], levels[:-1]
        design = np.column_stack([(quality == level).astype(float) for level in free_levels])
        return design, tuple(f"log_multiplier_q{level:g}" for level in free_levels), tuple(free_levels), reference
    raise ValueError(f"unknown quality form {form!r}; choose one of {QUALITY_FORMS}")


def build_tokens(runs: RunTable, options: SurfaceOptions) -> tuple[EffectiveTokens, list[str], tuple, float | None]:
    """The effective-token model of the table: Muennighoff's D' where runs repeated data, and a
    quality multiplier for a joint quality fit; with notes, free quality levels and the reference."""
    notes = []
    repetitions, repeat_decay, base_tokens = None, None, runs.tokens
    if options.repeat_correction and runs.has_repeats:
        # U_D is the unique tokens seen: the whole corpus after one or more epochs, but only the
        # tokens trained on when a run saw less than one epoch (its D' is then D).
        repetitions = np.maximum(runs.epochs - 1.0, 0.0)
        base_tokens = runs.tokens / np.maximum(runs.epochs, 1.0)
        repeat_decay = None if options.fit_repeat_decay else MUENNIGHOFF.R_D_star
        notes.append("repeated data: D replaced by Muennighoff's D' = U_D + U_D R_D* (1 - exp(-R_D/R_D*)) "
                     + ("with R_D* fitted" if options.fit_repeat_decay else
                        f"with R_D* = {MUENNIGHOFF.R_D_star} ({MUENNIGHOFF.citation})"))
    design, names, free_levels, reference = None, (), (), None
    if options.quality_form is not None:
        design, names, free_levels, reference = quality_design(runs.quality, options.quality_form)
    tokens = EffectiveTokens(log_base_tokens=np.log(base_tokens), repetitions=repetitions,
                             repeat_decay=repeat_decay, quality_design=design, quality_names=names)
    return tokens, notes, free_levels, reference


def surface_quantities(thetas: np.ndarray, names: tuple[str, ...], budget: float) -> dict[str, np.ndarray]:
    """Reported quantities for each row of thetas, vectorised over bootstrap replicates."""
    thetas = np.atleast_2d(thetas)
    log_A, log_B, log_E, alpha, beta = thetas[:, :5].T
    with np.errstate(all="ignore"):  # a wild replicate may give a non-positive exponent, or overflow A or B
        A, B = np.exp(log_A), np.exp(log_B)
        a, b = allocation_exponents(alpha, beta)
        allocation = optimal_allocation(budget, A, B, alpha, beta)
        quantities = {"E": np.exp(log_E), "A": A, "B": B, "alpha": alpha, "beta": beta,
                      "params_exponent": a, "tokens_exponent": b,
                      "G": allocation_scale(A, B, alpha, beta),
                      "params_at_budget": allocation.params, "tokens_at_budget": allocation.tokens,
                      "tokens_per_param_at_budget": allocation.tokens_per_param}
    for column, name in enumerate(names[5:], start=5):
        quantities[name] = thetas[:, column]
        if name == "log_repeat_decay":
            quantities["repeat_decay"] = np.exp(thetas[:, column])
    return quantities



def run_surface(runs: RunTable, *, budget: float, n_boot: int, seed: int,
                options: SurfaceOptions = SurfaceOptions(), stream: tuple[int, ...] = ()) -> SurfaceResult:
    """stream: extra entropy for the bootstrap draws, so fits of different subsets (one per
    quality level, same run count) resample independently instead of with the same indices.

    Seed replicates enter as their cell's mean (RunTable.cell_means): one point per cell, as the
    Huber fit assumes, and the bootstrap weights cells, never a seed apart from its cell."""
    replicated = runs.has_replicates
    runs = runs.cell_means()
    tokens, notes, free_levels, reference = build_tokens(runs, options)
    objective = HuberLogLossObjective(np.log(runs.params), tokens, np.log(runs.loss))
    needed = len(objective.names) + 1
    if len(runs) < needed:
        counted = " in distinct cells (a cell's seeds count once)" if replicated else ""
        raise InsufficientData(f"approach 3 fits {len(objective.names)} parameters and needs at least "
                               f"{needed} runs{counted}, got {len(runs)}")
    for axis, values in (("model sizes", runs.params), ("token counts", runs.tokens)):
        distinct = len(np.unique(values))
        if distinct < MIN_DISTINCT_PER_AXIS:
            raise InsufficientData(f"approach 3 needs at least {MIN_DISTINCT_PER_AXIS} distinct {axis} "
                                   f"to identify its exponent, got {distinct}")
    fit = fit_surface(objective, polished_starts=options.polished_starts)
    counts = resample_counts(np.random.default_rng([seed, 3, *stream]), len(runs), n_boot)
    replicates = bootstrap_surfaces(objective, fit, counts)
    point = surface_quantities(fit.theta, fit.names, budget)
    samples = surface_quantities(replicates, fit.names, budget)
    estimates = {name: percentile_estimate(float(point[name][0]), samples[name]) for name in point}
    if not fit.converged:
        notes.append("L-BFGS reported no convergence at the best start; treat the fit with care")
    log_tokens, _ = tokens.evaluate(fit.theta[5:])
    return SurfaceResult(fit=fit, replicates=replicates, estimates=estimates, budget=budget,
                         run_ids=runs.run_ids, log_loss=np.log(runs.loss),
                         predicted_log_loss=objective.predict_log_loss(fit.theta),
                         params=runs.params, effective_tokens=np.exp(log_tokens), notes=tuple(notes),
                         multiplier_levels=free_levels, reference_quality=reference)
