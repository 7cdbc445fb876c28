"""Power laws N_opt(C), D_opt(C) (Approaches 1 and 2) with their bootstrap intervals."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from analysis.intervals import Estimate, percentile_estimate
from analysis.power_law import PowerLaw

ESTIMATE_NAMES = ("params_exponent", "tokens_exponent", "params_at_budget", "tokens_at_budget",
                  "tokens_per_param_at_budget")


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
        name: np.array([]) for name in ESTIMATE_NAMES}
    estimates = {name: percentile_estimate(float(point[name][0]), samples[name])
                 for name in ESTIMATE_NAMES}
    return AllocationLawResult(approach=approach, laws=laws, replicate_laws=replicate_laws,
                               budget=budget, estimates=estimates, optima=optima, notes=notes)
