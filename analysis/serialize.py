"""TableFits as one JSON-ready dict: every estimate with its interval, every skip with its reason."""
from __future__ import annotations

from analysis.allocation_laws import AllocationLawResult
from analysis.intervals import DEFAULT_CONFIDENCE, Estimate, json_number, plain_json
from analysis.pipeline import LevelFits, TableFits
from analysis.quality import QualityResult
from analysis.references import (
    CHINCHILLA_FULL_PRECISION,
    CHINCHILLA_PUBLISHED,
    EPOCH_REFIT,
    KAPLAN,
    MUENNIGHOFF,
    TOKENS_PER_PARAM_RULE_CITATION,
)
from analysis.surface import SurfaceResult


def _estimates(estimates: dict[str, Estimate]) -> dict:
    return {name: estimate.to_json() for name, estimate in estimates.items()}


def _allocation(result: AllocationLawResult) -> dict:
    return {
        "estimates": _estimates(result.estimates),
        "laws": {"params": {"exponent": result.laws.params.exponent,
                            "coefficient": result.laws.params.coefficient},
                 "tokens": {"exponent": result.laws.tokens.exponent,
                            "coefficient": result.laws.tokens.coefficient}},
        "optima": result.optima,
        "failed_replicates": result.failed_replicates,
        "notes": list(result.notes),
    }


def _surface(result: SurfaceResult) -> dict:
    return {
        "estimates": _estimates(result.estimates),
        "theta": dict(zip(result.fit.names, (float(v) for v in result.fit.theta))),
        "objective": result.fit.objective,
        "converged": result.fit.converged,
        "points": len(result.run_ids),
        "failed_replicates": result.failed_replicates,
        "notes": list(result.notes),
    }


def _level(level: LevelFits) -> dict:
    out: dict = {"quality": level.quality, "runs": len(level.runs)}
    for approach, key in ((1, "approach1"), (2, "approach2"), (3, "approach3")):
        if approach in level.skipped:
            out[key] = {"skipped": level.skipped[approach]}
    if level.envelope is not None:
        out["approach1"] = _allocation(level.envelope)
    if level.isoflop is not None:
        out["approach2"] = _allocation(level.isoflop.allocation)
    if level.surface is not None:
        out["approach3"] = _surface(level.surface)
    return out


def _quality(result: QualityResult) -> dict:
    def by_level(values: dict) -> dict:
        return {f"{q:g}": value for q, value in values.items()}

    return {
        "levels": list(result.levels),
        "multipliers": {form: by_level({q: e.to_json() for q, e in values.items()})
                        for form, values in result.multipliers.items()},
        "web_tokens_per_textbook_token": {how: e.to_json() for how, e in result.token_worth.items()},
        "allocation": {model: by_level({q: _estimates(values) for q, values in per_level.items()})
                       for model, per_level in result.allocation.items()},
        "joint_fits": {form: _surface(fit) for form, fit in result.joint.items()},
        "notes": list(result.notes),
    }


def references_json() -> dict:
    surfaces = {law.name: {"E": law.E, "A": law.A, "B": law.B, "alpha": law.alpha, "beta": law.beta,
                           "standard_errors": law.standard_errors, "citation": law.citation}
                for law in (CHINCHILLA_PUBLISHED, CHINCHILLA_FULL_PRECISION, EPOCH_REFIT)}
    return {
        **surfaces,
        "Kaplan": {"alpha_N": KAPLAN.alpha_N, "alpha_D": KAPLAN.alpha_D, "N_c": KAPLAN.N_c,
                   "D_c": KAPLAN.D_c, "optimal_params_exponent": KAPLAN.optimal_params_exponent,
                   "citation": KAPLAN.citation},
        "Muennighoff": {"R_D_star": MUENNIGHOFF.R_D_star, "R_N_star": MUENNIGHOFF.R_N_star,
                        "citation": MUENNIGHOFF.citation},
        "tokens_per_param_rule": {"value": 20, "citation": TOKENS_PER_PARAM_RULE_CITATION},
    }


def fits_to_json(fits: TableFits) -> dict:
    table = fits.table
    out = {
        "table": table.source,
        "rows": table.total_rows,
        "used": len(table.runs),
        "excluded": [{"run_id": run.run_id, "reason": run.reason} for run in table.excluded],
        "loss_column": table.loss_column,
        "params_column": table.params_column,
        "settings": {"bootstrap": fits.request.n_boot, "seed": fits.request.seed, "confidence": DEFAULT_CONFIDENCE,
                     "budget": json_number(fits.budget),
                     "approaches": list(fits.request.approaches),
                     "repeat_correction": fits.request.surface.repeat_correction,
                     "fit_repeat_decay": fits.request.surface.fit_repeat_decay},
        "notes": list(fits.notes),
        "levels": [_level(level) for level in fits.levels],
        "references": references_json(),
    }
    if fits.quality is not None:
        out["quality"] = _quality(fits.quality)
    elif fits.quality_skipped is not None:
        out["quality"] = {"skipped": fits.quality_skipped}
    return plain_json(out)
