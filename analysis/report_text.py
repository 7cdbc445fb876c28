"""Fitted results as text, with no file I/O: the JSON of every estimate and skip (fit --json,
fits.json), the console summary, and the markdown sections of report.md.
"""
from __future__ import annotations

import math

import numpy as np

from analysis.approach1 import ALLOCATION_NAMES, AllocationLawResult
from analysis.approach3 import SurfaceResult
from analysis.intervals import (
    DEFAULT_CONFIDENCE,
    Estimate,
    format_number,
    json_number,
    plain_json,
)
from analysis.permutation import format_p
from analysis.pipeline import LevelFits, TableFits
from analysis.quality import SIGNIFICANCE_LEVEL, PermutationTest, QualityResult
from analysis.quality_metrics import ACCURACY_METRICS, LOGISTIC_LINK, MetricEffect
from analysis.references import (
    CHINCHILLA_FULL_PRECISION,
    CHINCHILLA_PUBLISHED,
    EPOCH_REFIT,
    KAPLAN,
    MUENNIGHOFF,
    TOKENS_PER_PARAM_RULE_CITATION,
    comparison_line,
    quantity_label,
    reference_values,
)
from analysis.criteria import (
    MAX_EXPONENT_WIDTH,
    MIN_E_LOW,
    MIN_ENVELOPE_SIZES,
    e_identified,
    exponent_pinned,
)
from analysis.seeds import LackOfFit, lack_of_fit, seed_spread
from analysis.table import LoadedTable

SURFACE_NAMES = ("E", "A", "B", "alpha", "beta") + ALLOCATION_NAMES + ("G",)
SURFACE_EXTRA_NAMES = ("repeat_decay",)


def _estimates_json(estimates: dict[str, Estimate]) -> dict:
    return {name: estimate.to_json() for name, estimate in estimates.items()}


def _allocation_json(result: AllocationLawResult) -> dict:
    return {
        "estimates": _estimates_json(result.estimates),
        "laws": {"params": {"exponent": result.laws.params.exponent,
                            "coefficient": result.laws.params.coefficient},
                 "tokens": {"exponent": result.laws.tokens.exponent,
                            "coefficient": result.laws.tokens.coefficient}},
        "optima": result.optima,
        "failed_replicates": result.failed_replicates,
        "notes": list(result.notes),
    }


def _surface_json(result: SurfaceResult) -> dict:
    return {
        "estimates": _estimates_json(result.estimates),
        "theta": dict(zip(result.fit.names, (float(v) for v in result.fit.theta))),
        "objective": result.fit.objective,
        "converged": result.fit.converged,
        "points": len(result.run_ids),
        "failed_replicates": result.failed_replicates,
        "notes": list(result.notes),
    }


def _level_json(level: LevelFits) -> dict:
    out: dict = {"quality": level.quality, "runs": len(level.runs)}
    if level.runs.has_replicates:  # the fits' points: one per cell, at its seeds' mean loss
        out["cells"] = len(level.runs.cell_means())
    for approach, key in ((1, "approach1"), (2, "approach2"), (3, "approach3")):
        if approach in level.skipped:
            out[key] = {"skipped": level.skipped[approach]}
    if level.envelope is not None:
        out["approach1"] = _allocation_json(level.envelope)
    if level.isoflop is not None:
        out["approach2"] = _allocation_json(level.isoflop.allocation)
    if level.surface is not None:
        out["approach3"] = _surface_json(level.surface)
        out["approach3"]["lack_of_fit"] = plain_json(level_lack_of_fit(level).to_json())
    return out


def _quality_json(result: QualityResult) -> dict:
    def by_level(values: dict) -> dict:
        return {f"{q:g}": value for q, value in values.items()}

    return {
        "levels": list(result.levels),
        "multipliers": {form: by_level({q: e.to_json() for q, e in values.items()})
                        for form, values in result.multipliers.items()},
        "web_tokens_per_textbook_token": {how: e.to_json() for how, e in result.token_worth.items()},
        "allocation": {model: by_level({q: _estimates_json(values) for q, values in per_level.items()})
                       for model, per_level in result.allocation.items()},
        "joint_fits": {form: _surface_json(fit) for form, fit in result.joint.items()},
        "exponent_differences": {name: test.to_json() for name, test in result.exponent_tests.items()},
        "metric_effects": {effect.key: effect.to_json() for effect in result.metric_effects},
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
    """TableFits as one JSON-ready dict: every estimate with its interval, every skip with its reason."""
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
        "levels": [_level_json(level) for level in fits.levels],
        "references": references_json(),
    }
    spread = seed_spread(table.runs)
    if spread is not None:  # (absent with one run per cell, as the report says nothing then)
        out["seeds"] = spread.to_json()
    if fits.quality is not None:
        out["quality"] = _quality_json(fits.quality)
    elif fits.quality_skipped is not None:
        out["quality"] = {"skipped": fits.quality_skipped}
    return plain_json(out)


def _allocation_lines(result: AllocationLawResult, approach: int, budget: float, points: str) -> list[str]:
    n_boot = len(result.replicate_laws)
    lines = [f"{result.approach}: {points}; {result.failed_replicates}/{n_boot} bootstrap refits failed"]
    lines += [f"  note: {note}" for note in result.notes]
    lines += ["  " + comparison_line(name, result.estimates[name], approach=approach, budget=budget)
              for name in ALLOCATION_NAMES]
    return lines


def level_lines(level: LevelFits, budget: float) -> list[str]:
    lines = [f"[{level.label}] {runs_label(level.runs)}"]
    for approach, reason in sorted(level.skipped.items()):
        lines.append(f"approach {approach} skipped: {reason}")
    if level.envelope is not None:
        lines += _allocation_lines(level.envelope, 1, budget,
                                   f"{len(level.envelope.optima['compute'])} envelope points")
    if level.isoflop is not None:
        lines += _allocation_lines(level.isoflop.allocation, 2, budget,
                                   f"{len(level.isoflop.profiles)} IsoFLOP profiles")
    if level.surface is not None:
        surface = level.surface
        points = "cells" if level.runs.has_replicates else "runs"
        lines.append(f"approach 3 (parametric L(N, D)): {len(surface.run_ids)} {points}, summed Huber "
                     f"objective {surface.fit.objective:.4g}; {surface.failed_replicates}/"
                     f"{len(surface.replicates)} bootstrap refits failed")
        lines += [f"  note: {note}" for note in surface.notes]
        names = SURFACE_NAMES + tuple(n for n in SURFACE_EXTRA_NAMES if n in surface.estimates)
        lines += ["  " + comparison_line(name, surface.estimates[name], approach=3, budget=budget)
                  for name in names]
    return lines


EXPONENT_LABELS = {"alpha": "alpha (size exponent)", "beta": "beta (data exponent)"}


def _verdict(test: PermutationTest) -> str:
    return "significant" if test.significant else "not significant"


def exponent_test_lines(result: QualityResult) -> list[str]:
    """Each exponent's quality difference against its permutation null, one line each."""
    low, high = result.levels[0], result.levels[-1]
    return [f"{EXPONENT_LABELS.get(name, name)}, q={high:g} minus q={low:g}: {format_number(test.observed)}; "
            f"permutation null 95% [{format_number(test.null_low)}, {format_number(test.null_high)}], "
            f"p = {format_p(test.p_value)} ({test.permutations} relabelings): {_verdict(test)}"
            for name, test in result.exponent_tests.items()]


def quality_lines(result: QualityResult) -> list[str]:
    levels = ", ".join(f"{q:g}" for q in result.levels)
    lines = [f"[quality] levels {levels} (1 = textbook, 0 = web); m(q) multiplies tokens, m(1) = 1"]
    lines += [f"  note: {note}" for note in result.notes]
    for form, multipliers in result.multipliers.items():
        lines.append(f"  m(q), joint {form} fit: " + "; ".join(
            f"q={q:g}: {estimate.format()}" for q, estimate in multipliers.items()))
    if "gamma" in result.joint["exponential"].estimates:
        lines.append(f"  gamma (log m(q) = gamma ({result.levels[-1]:g} - q)): "
                     f"{result.joint['exponential'].estimates['gamma'].format()}")
    low, high = result.levels[0], result.levels[-1]
    for how, estimate in result.token_worth.items():
        lines.append(f"  tokens at q={low:g} worth one token at q={high:g} ({how}, C={result.budget:.3g}): "
                     f"{estimate.format()}")
    lines += ["  " + line for line in exponent_test_lines(result)]
    lines += ["  " + line for line in metric_effect_lines(result)]
    lines.append(f"  compute-optimal split at C={result.budget:.3g}:")
    for model, per_level in result.allocation.items():
        for q, values in per_level.items():
            lines.append(f"    {model}, q={q:g}: N_opt {values['params_at_budget'].format()}, "
                         f"D_opt {values['tokens_at_budget'].format()}, tokens/param "
                         f"{values['tokens_per_param_at_budget'].format()}")
    return lines


def summary_lines(fits: TableFits) -> list[str]:
    """TableFits as plain text lines: ours beside the published values, every interval, every skip."""
    table, request = fits.table, fits.request
    lines = [f"table: {table.source} ({table.total_rows} rows, {len(table.runs)} used; loss column "
             f"{table.loss_column}, N column {table.params_column})",
             f"allocations at C = 6ND = {fits.budget:.3g} FLOPs; intervals: 95% percentile bootstrap over "
             f"{resampled_units(table)}, {request.n_boot} refits, seed {request.seed}"]
    spread = seed_spread(table.runs)
    if spread is not None:
        lines.append(spread.describe(table.loss_column).replace("`", ""))
    lines += [f"note: {note}" for note in fits.notes]
    for level in fits.levels:
        lines.append("")
        lines += level_lines(level, fits.budget)
    if fits.quality is not None:
        lines.append("")
        lines += quality_lines(fits.quality)
    elif fits.quality_skipped is not None:
        lines += ["", f"quality analysis skipped: {fits.quality_skipped}"]
    return lines


def resampled_units(table: LoadedTable) -> str:
    """What the bootstrap draws: runs, or grid cells at their seeds' mean where seeds replicate cells."""
    return "grid cells, each at its seeds' mean loss" if table.runs.has_replicates else "runs"


def runs_label(runs) -> str:
    """"16 runs", or "48 runs in 16 cells" when seeds replicate cells (the fits take the cells)."""
    cells = len(runs.cell_means())
    return f"{len(runs)} runs" + (f" in {cells} cells" if cells < len(runs) else "")


def law_lines(fits: TableFits) -> list[str]:
    """The fitted law in a few lines per quality level, for a console (the report has the rest)."""
    lines = []
    for level in fits.levels:
        allocations = [(1, level.envelope), (2, level.isoflop.allocation if level.isoflop else None)]
        for approach, result in allocations:
            if result is not None:
                e = result.estimates
                lines.append(f"[{level.label}] approach {approach}: N_opt ~ C^a, a = {e['params_exponent'].format()}; "
                             f"D_opt ~ C^b, b = {e['tokens_exponent'].format()}")
        if level.surface is not None:
            e = level.surface.estimates
            lines.append(f"[{level.label}] approach 3: L(N, D) = E + A/N^alpha + B/D^beta, "
                         + ", ".join(f"{name} = {e[name].format()}" for name in ("E", "A", "B", "alpha", "beta")))
            lines.append(f"[{level.label}] approach 3: a = {e['params_exponent'].format()}, tokens per parameter "
                         f"at C = {fits.budget:.3g}: {e['tokens_per_param_at_budget'].format()}")
    if fits.quality is not None:  # (skipped approaches are printed as notes when they happen)
        q = fits.quality
        low, high = q.levels[0], q.levels[-1]
        for how, estimate in q.token_worth.items():
            lines.append(f"[quality] tokens at q={low:g} worth one token at q={high:g} ({how}): {estimate.format()}")
    return lines


def estimate_table(estimates: dict[str, Estimate], names: tuple[str, ...], *, approach: int,
                   budget: float) -> list[str]:
    lines = ["| quantity | ours [95% CI] | published |", "| --- | --- | --- |"]
    for name in names:
        if name not in estimates:
            continue
        published = "; ".join(f"{ref.label} {ref.text}"
                              for ref in reference_values(name, approach=approach, budget=budget))
        lines.append(f"| {quantity_label(name, budget)} | {estimates[name].format()} | {published or '–'} |")
    return lines


def _number(x: float) -> str:
    return "" if math.isnan(x) else format_number(x)


def runs_table(table: LoadedTable) -> list[str]:
    runs = table.runs
    has_pairs = bool((runs.pairs_acc == runs.pairs_acc).any())
    header = ("| run | N | D | training FLOPs | quality | epochs | loss |"
              + (" minimal-pair accuracy (synthetic pairs) |" if has_pairs else ""))
    lines = [header, "|" + " --- |" * (header.count("|") - 1)]
    for i, run_id in enumerate(runs.run_ids):
        cells = [f"`{run_id}`", _number(runs.params[i]), _number(runs.tokens[i]), _number(runs.flops[i]),
                 _number(runs.quality[i]), _number(runs.epochs[i]), f"{runs.loss[i]:.4f}"]
        if has_pairs:
            cells.append(_number(runs.pairs_acc[i]))
        lines.append("| " + " | ".join(cells) + " |")
    if table.excluded:
        lines += ["", "Excluded from every fit:", ""]
        lines += [f"- `{run.run_id}`: {run.reason}" for run in table.excluded]
    return lines


def level_section(level: LevelFits, budget: float, figures: dict[str, str]) -> list[str]:
    lines = [f"## Fits: {level.label} ({runs_label(level.runs)})", ""]
    # With seeds, every fit's points are cells at their seeds' mean loss, named by their first run.
    points = "cells (each at its seeds' mean loss)" if level.runs.has_replicates else "runs"
    for approach, reason in sorted(level.skipped.items()):
        lines += [f"*Approach {approach} skipped:* {reason}", ""]
    if level.envelope is not None:
        result = level.envelope
        lines += ["### Approach 1: minimum-loss envelope", "",
                  f"{len(result.optima['compute'])} {points} on the envelope "
                  f"({', '.join(f'`{r}`' for r in result.optima['run_ids'])}); "
                  f"{result.failed_replicates} of {len(result.replicate_laws)} bootstrap refits failed.", ""]
        lines += estimate_table(result.estimates, ALLOCATION_NAMES, approach=1, budget=budget) + [""]
    if level.isoflop is not None:
        result = level.isoflop.allocation
        lines += ["### Approach 2: IsoFLOP profiles", "",
                  f"{len(level.isoflop.profiles)} profiles with an interior minimum; "
                  f"{result.failed_replicates} of {len(result.replicate_laws)} bootstrap refits failed.", ""]
        lines += [f"- {note}" for note in result.notes] + ([""] if result.notes else [])
        lines += estimate_table(result.estimates, ALLOCATION_NAMES, approach=2, budget=budget) + [""]
    if level.surface is not None:
        surface = level.surface
        lines += ["### Approach 3: parametric fit L(N, D) = E + A/N^alpha + B/D^beta", "",
                  f"Huber (delta 1e-3) on log loss, summed over {len(surface.run_ids)} {points}; objective "
                  f"{surface.fit.objective:.4g}; {surface.failed_replicates} of {len(surface.replicates)} "
                  "bootstrap refits failed.", ""]
        lines += [f"- {note}" for note in surface.notes] + ([""] if surface.notes else [])
        names = SURFACE_NAMES + SURFACE_EXTRA_NAMES
        lines += estimate_table(surface.estimates, names, approach=3, budget=budget) + [""]
    lines += [f"![{title}]({path})" for title, path in figures.items()]
    return lines + [""]


def quality_section(result: QualityResult, figure: str | None) -> list[str]:
    low, high = result.levels[0], result.levels[-1]
    lines = ["## Data quality", "",
             f"Levels {', '.join(f'{q:g}' for q in result.levels)} (1 = textbook, 0 = web). Joint fits use "
             f"D_eff = m(q) D with m = 1 at the highest level: *exponential* log m(q) = gamma ({result.levels[-1]:g} - q), "
             "*per level* one free "
             "multiplier per level (reference: the highest level).", ""]
    lines += [f"- {note}" for note in result.notes] + ([""] if result.notes else [])
    lines += ["| q | " + " | ".join(f"m(q), joint {form}" for form in result.multipliers) + " |",
              "| --- |" + " --- |" * len(result.multipliers)]
    for q in result.levels:
        lines.append(f"| {q:g} | " + " | ".join(values[q].format() for values in result.multipliers.values())
                     + " |")
    lines += ["", f"Tokens at q={low:g} worth one token at q={high:g} (C = {result.budget:.3g} FLOPs):", ""]
    lines += [f"- {how}: {estimate.format()}" for how, estimate in result.token_worth.items()]
    lines += ["", f"Compute-optimal split at C = {result.budget:.3g} FLOPs:", "",
              "| model | q | N_opt | D_opt | tokens per parameter |", "| --- | --- | --- | --- | --- |"]
    for model, per_level in result.allocation.items():
        for q, values in per_level.items():
            lines.append(f"| {model} | {q:g} | {values['params_at_budget'].format()} | "
                         f"{values['tokens_at_budget'].format()} | "
                         f"{values['tokens_per_param_at_budget'].format()} |")
    lines += exponent_test_section(result)
    lines += metric_effect_section(result)
    if figure:
        lines += ["", f"![quality]({figure})"]
    return lines + [""]


def exponent_test_section(result: QualityResult) -> list[str]:
    if not result.exponent_tests:
        return []
    low, high = result.levels[0], result.levels[-1]
    some = next(iter(result.exponent_tests.values()))
    lines = ["", f"Exponent differences, q={high:g} minus q={low:g}, each refitted with only that exponent and "
             "its amplitude free per level (the other parameters shared at one fit of both levels), against "
             f"a label-permutation null: the two levels' labels shuffled among runs of the same size and token "
             f"count ({some.matched_groups} matched groups), refitted {some.permutations} times. A difference "
             f"is significant only when p < {SIGNIFICANCE_LEVEL:g}, outside the null.", "",
             "| exponent | difference | permutation null 95% | p | verdict |", "| --- | --- | --- | --- | --- |"]
    for name, test in result.exponent_tests.items():
        lines.append(f"| {EXPONENT_LABELS.get(name, name)} | {format_number(test.observed)} | "
                     f"[{format_number(test.null_low)}, {format_number(test.null_high)}] | "
                     f"{format_p(test.p_value)} | {_verdict(test)} |")
    return lines


def _p_text(effect: MetricEffect) -> str:
    if effect.test is None or math.isnan(effect.test.p_value):
        return "–"
    return format_p(effect.test.p_value)


def _interval_text(estimate: Estimate) -> str:
    if estimate.replicates == 0:
        return "no interval"
    return f"[{format_number(estimate.low)}, {format_number(estimate.high)}]"


def metric_effect_lines(result: QualityResult) -> list[str]:
    """One line per metric: what a textbook token is worth there, its interval, p and verdict."""
    low, high = result.levels[0], result.levels[-1]
    lines = []
    for effect in result.metric_effects:
        head = f"{effect.metric}: tokens at q={low:g} worth one token at q={high:g}: "
        if effect.worth is None:
            lines.append(head + effect.verdict())
            continue
        lines.append(head + f"{effect.worth.format()}; permutation p = {_p_text(effect)}: {effect.verdict()}")
    return lines


def metric_effect_section(result: QualityResult) -> list[str]:
    """The side-by-side table: what one textbook token is worth in loss and in each accuracy."""
    if not result.metric_effects:
        return []
    low, high = result.levels[0], result.levels[-1]
    tested = [e.test for e in result.metric_effects if e.test is not None]
    chances = ", ".join(f"{metric.name} {metric.chance:g}" for metric in ACCURACY_METRICS)
    lines = ["", "### What one textbook token is worth, by metric", "",
             f"m: the q={low:g} tokens one q={high:g} token is worth, m(q={high:g}) / m(q={low:g}) with "
             "D_eff = m(q) D and one shape shared by every level, on the loss and on each accuracy alike. "
             f"Loss: the joint per-level surface above. Accuracies: {LOGISTIC_LINK} ({chances}), "
             "acc = c + (1 - c) sigmoid(k0 + kN ln N + kD ln D + s(q)), m(q) = exp(s(q) / kD): accuracy against "
             "tokens with a shared size term, least squares over cells. Intervals: 95% percentile bootstrap, "
             "cells resampled (within each level for the accuracies); an accuracy gets an exchange rate only "
             "where it is seen to rise with tokens (a linear fit's slope on ln D, its interval above 0). "
             "p: label-permutation null, the quality labels shuffled among the runs of one size and token count"
             + (f" ({tested[0].matched_groups} groups, {tested[0].permutations} shuffles)" if tested else "")
             + ", each shuffle refitted from a fit with every level pooled; a difference is reported only "
             f"when p < {SIGNIFICANCE_LEVEL:g}.", "",
             f"| metric | m: q={low:g} tokens per q={high:g} token | 95% interval | permutation p | verdict |",
             "| --- | --- | --- | --- | --- |"]
    for effect in result.metric_effects:
        if effect.worth is None:
            lines.append(f"| {effect.metric} | – | – | – | {effect.verdict()} |")
            continue
        lines.append(f"| {effect.metric} | {format_number(effect.worth.value)} | {_interval_text(effect.worth)} | "
                     f"{_p_text(effect)} | {effect.verdict()} |")
    lines.append("")
    loss_cells = result.metric_effects[0].run_ids
    for effect in result.metric_effects:
        if effect.run_ids:
            cells = (f"the same {len(loss_cells)} cells as the loss" if effect is not result.metric_effects[0]
                     and effect.run_ids == loss_cells else
                     f"{len(effect.run_ids)} cells: " + ", ".join(f"`{r}`" for r in effect.run_ids))
            lines.append(f"- {effect.metric} (`{effect.column}`): {cells}")
        lines += [f"- {effect.metric}: {note}" for note in effect.notes]
    return lines


def references_section() -> list[str]:
    return ["## References", "",
            f"- {CHINCHILLA_PUBLISHED.citation}: E={CHINCHILLA_PUBLISHED.E}, A={CHINCHILLA_PUBLISHED.A}, "
            f"B={CHINCHILLA_PUBLISHED.B}, alpha={CHINCHILLA_PUBLISHED.alpha}, beta={CHINCHILLA_PUBLISHED.beta}.",
            f"- {CHINCHILLA_FULL_PRECISION.citation}: alpha={CHINCHILLA_FULL_PRECISION.alpha}, "
            f"beta={CHINCHILLA_FULL_PRECISION.beta}.",
            f"- {EPOCH_REFIT.citation}: E={EPOCH_REFIT.E}, A={EPOCH_REFIT.A}, B={EPOCH_REFIT.B}, "
            f"alpha={EPOCH_REFIT.alpha}, beta={EPOCH_REFIT.beta} (standard errors "
            + ", ".join(f"{k} {v}" for k, v in EPOCH_REFIT.standard_errors.items()) + ").",
            f"- {KAPLAN.citation}: alpha_N={KAPLAN.alpha_N}, alpha_D={KAPLAN.alpha_D}, N_c={KAPLAN.N_c:.1e}, "
            f"D_c={KAPLAN.D_c:.1e}, N_opt ∝ C^{KAPLAN.optimal_params_exponent} (non-embedding parameters).",
            f"- {MUENNIGHOFF.citation}: R_D*={MUENNIGHOFF.R_D_star}, R_N*={MUENNIGHOFF.R_N_star}.",
            f"- 20 tokens per parameter: {TOKENS_PER_PARAM_RULE_CITATION}.", ""]


def compute_definitions(table: LoadedTable) -> str:
    """The one compute axis, and how far the runs' recorded training FLOPs sit from it."""
    runs = table.runs
    with np.errstate(all="ignore"):
        ratio = runs.flops / runs.compute
    ratio = ratio[np.isfinite(ratio)]
    spread = f" ({ratio.min():.2f}-{ratio.max():.2f}x 6ND on these runs)" if len(ratio) else ""
    return (f"Compute is C = 6ND (N = `{table.params_column}`, D = `tokens`) in all three approaches and "
            f"the published references; the runs' training FLOPs{spread} are listed but not fitted.")


def fit_shortfalls(level) -> list[str]:
    """The criteria a level's fit misses (empty when it is usable), each with its numbers."""
    missed = []
    surface = level.surface.estimates if level.surface is not None else None
    if surface is None:
        missed.append("no parametric fit (approach 3)")
    else:
        if not e_identified(surface["E"].low):
            missed.append(f"E's interval reaches {surface['E'].low:.2g} (not clear of {MIN_E_LOW:g}: E is not identified)")
        for name in ("alpha", "beta"):
            width = surface[name].high - surface[name].low
            if not exponent_pinned(width):
                missed.append(f"{name}'s interval is {width:.2f} wide (> {MAX_EXPONENT_WIDTH:g})")
    if level.envelope is not None:
        sizes = len(set(level.envelope.optima["params"]))
        if sizes < MIN_ENVELOPE_SIZES:
            missed.append(f"the approach 1 envelope passes through {sizes} sizes (< {MIN_ENVELOPE_SIZES}): "
                          "the grid does not bracket the optimum")
        if surface is not None:
            a1, a3 = level.envelope.estimates["params_exponent"], surface["params_exponent"]
            if a1.high < a3.low or a3.high < a1.low:
                missed.append(f"approaches 1 and 3 disagree on a ({a1.format()} against {a3.format()})")
    return missed


def level_lack_of_fit(level) -> LackOfFit | None:
    """The level's cells against its parametric surface (None without one)."""
    if level.surface is None:
        return None
    return lack_of_fit(level.runs, level.surface.predicted_log_loss, len(level.surface.fit.theta))


def design_power_command(table: LoadedTable, level) -> str:
    quality = f" --quality {level.quality:g}" if level.quality is not None and len(table.runs.quality_levels()) > 1 else ""
    where = " in the grid's directory" if "/" not in table.source else ""
    return f"`python -m analysis.design_power {table.source}{quality}`{where}"


def referee_lines(fits: TableFits) -> list[str]:
    """Per level: how far its cells sit from the surface (and, with seeds, whether that is more than
    seed noise), and whether its fit meets the criteria; where it does not, the measured route to
    what would (design_power), not a guess at which runs to add."""
    lines = []
    for level in fits.levels:
        misfit = level_lack_of_fit(level)
        if misfit is not None:
            lines.append(f"Scatter ({level.label}): {misfit.describe()}.")
        missed = fit_shortfalls(level)
        if missed:
            lines.append(f"**Not a result yet ({level.label}):** " + "; ".join(missed) + ". Read these numbers as "
                         "a demonstration of the pipeline. How much scatter this grid's cells allow before "
                         f"intervals this narrow are in reach (synthetic refits of this fit): "
                         f"{design_power_command(fits.table, level)}.")
    return lines


def report_header(fits: TableFits | None, table: LoadedTable, title: str, n_boot: int, seed: int,
                  ledger: dict | None = None) -> list[str]:
    lines = [f"# Scaling-law report: {title}", "",
             f"Runs: {table.total_rows} in `results.csv`, {len(table.runs)} used in the fits "
             f"(loss column `{table.loss_column}`, N = `{table.params_column}`).",
             f"Intervals: 95% percentile bootstrap over {resampled_units(table)} ({n_boot} refits, seed {seed})."]
    spread = seed_spread(table.runs)
    if spread is not None:  # one seed per cell: nothing to say, and no line
        lines.append(spread.describe(table.loss_column))
    lines.append(compute_definitions(table))
    if fits is not None:
        lines.append(f"Allocations are reported at C = {fits.budget:.3g} FLOPs.")
        lines += referee_lines(fits)
    if ledger is not None:
        lines.append(f"Compute spent by the grid: {ledger['spent_flops']:.3g} training FLOPs, {ledger['ratio']:.2f}x "
                     f"the {ledger['independent_flops']:.3g} that its finished runs trained independently would cost"
                     + (" (grid.branching: one trunk per model, a cooldown per budget)." if ledger["ratio"] < 1 else "."))
    return lines + [""]
