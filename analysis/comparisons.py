"""Our estimates beside the published ones: one line per quantity, theirs with their uncertainty."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.allocation import allocation_exponents, optimal_allocation
from analysis.intervals import Estimate, format_number
from analysis.references import (
    CHINCHILLA_ALLOCATION_EXPONENTS,
    CHINCHILLA_FULL_PRECISION,
    CHINCHILLA_PUBLISHED,
    EPOCH_REFIT,
    KAPLAN,
    MUENNIGHOFF,
    TOKENS_PER_PARAM_RULE,
)


@dataclass(frozen=True)
class ReferenceValue:
    label: str
    text: str


def quantity_label(name: str, budget: float) -> str:
    at = f"at C={budget:.3g}"
    return {
        "params_exponent": "a (N_opt ∝ C^a)",
        "tokens_exponent": "b (D_opt ∝ C^b)",
        "params_at_budget": f"N_opt {at}",
        "tokens_at_budget": f"D_opt {at}",
        "tokens_per_param_at_budget": f"tokens per parameter {at}",
        "G": "G",
        "repeat_decay": "R_D*",
        "log_repeat_decay": "log R_D*",
    }.get(name, name)


def _surface_value(name: str) -> list[ReferenceValue]:
    published = getattr(CHINCHILLA_PUBLISHED, name)
    values = [ReferenceValue("Chinchilla", format_number(published))]
    tex = getattr(CHINCHILLA_FULL_PRECISION, name)
    if tex != published:
        values.append(ReferenceValue("Chinchilla TeX", format_number(tex, 4)))
    error = EPOCH_REFIT.standard_errors[name]
    values.append(ReferenceValue("Epoch", f"{format_number(getattr(EPOCH_REFIT, name), 4)} "
                                          f"± {format_number(error, 2)}"))
    return values


def _exponent_values(index: int, approach: int) -> list[ReferenceValue]:
    chinchilla = CHINCHILLA_ALLOCATION_EXPONENTS[f"approach {approach}"][index]
    epoch = allocation_exponents(EPOCH_REFIT.alpha, EPOCH_REFIT.beta)[index]
    kaplan = KAPLAN.optimal_params_exponent if index == 0 else 1.0 - KAPLAN.optimal_params_exponent
    return [ReferenceValue(f"Chinchilla approach {approach}", f"{chinchilla:.2f}"),
            ReferenceValue("Epoch", f"{epoch:.3f}"), ReferenceValue("Kaplan", f"{kaplan:.2f}")]


def _budget_values(name: str, budget: float) -> list[ReferenceValue]:
    rule_params = np.sqrt(budget / (6.0 * TOKENS_PER_PARAM_RULE))
    rule = {"params_at_budget": rule_params, "tokens_at_budget": TOKENS_PER_PARAM_RULE * rule_params,
            "tokens_per_param_at_budget": TOKENS_PER_PARAM_RULE}[name]
    values = []
    for label, law in (("Chinchilla", CHINCHILLA_PUBLISHED), ("Epoch", EPOCH_REFIT)):
        allocation = optimal_allocation(budget, law.A, law.B, law.alpha, law.beta)
        value = {"params_at_budget": allocation.params, "tokens_at_budget": allocation.tokens,
                 "tokens_per_param_at_budget": allocation.tokens_per_param}[name]
        values.append(ReferenceValue(label, format_number(float(value))))
    values.append(ReferenceValue("20 tokens/param rule", "~" + format_number(float(rule))))
    return values


def reference_values(name: str, *, approach: int, budget: float) -> list[ReferenceValue]:
    if name in ("E", "A", "B", "alpha", "beta"):
        return _surface_value(name)
    if name == "params_exponent":
        return _exponent_values(0, approach)
    if name == "tokens_exponent":
        return _exponent_values(1, approach)
    if name in ("params_at_budget", "tokens_at_budget", "tokens_per_param_at_budget"):
        return _budget_values(name, budget)
    if name == "repeat_decay":
        return [ReferenceValue("Muennighoff", format_number(MUENNIGHOFF.R_D_star))]
    return []


def comparison_line(name: str, estimate: Estimate, *, approach: int, budget: float) -> str:
    """e.g. "alpha 0.31 [0.27, 0.36] vs Chinchilla 0.34, Chinchilla TeX 0.3392, Epoch 0.3478 ± 0.02"."""
    references = reference_values(name, approach=approach, budget=budget)
    line = f"{quantity_label(name, budget)} {estimate.format()}"
    if references:
        line += " vs " + ", ".join(f"{ref.label} {ref.text}" for ref in references)
    return line
