"""Markdown sections of the report: pure functions from fitted results to lines of text."""
from __future__ import annotations

import math

import numpy as np

from analysis.comparisons import quantity_label, reference_values
from analysis.intervals import Estimate, format_number
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
from analysis.summary import ALLOCATION_NAMES, SURFACE_EXTRA_NAMES, SURFACE_NAMES
from analysis.table import LoadedTable


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
    has_blimp = bool((runs.blimp_acc == runs.blimp_acc).any())
    header = "| run | N | D | C (FLOPs) | quality | epochs | loss |" + (" BLiMP |" if has_blimp else "")
    lines = [header, "|" + " --- |" * (header.count("|") - 1)]
    for i, run_id in enumerate(runs.run_ids):
        cells = [f"`{run_id}`", _number(runs.params[i]), _number(runs.tokens[i]), _number(runs.flops[i]),
                 _number(runs.quality[i]), _number(runs.epochs[i]), f"{runs.loss[i]:.4f}"]
        if has_blimp:
            cells.append(_number(runs.blimp_acc[i]))
        lines.append("| " + " | ".join(cells) + " |")
    if table.excluded:
        lines += ["", "Excluded from every fit:", ""]
        lines += [f"- `{run.run_id}`: {run.reason}" for run in table.excluded]
    return lines


def level_section(level: LevelFits, budget: float, figures: dict[str, str]) -> list[str]:
    lines = [f"## Fits: {level.label} ({len(level.runs)} runs)", ""]
    for approach, reason in sorted(level.skipped.items()):
        lines += [f"*Approach {approach} skipped:* {reason}", ""]
    if level.envelope is not None:
        result = level.envelope
        lines += ["### Approach 1: minimum-loss envelope", "",
                  f"{len(result.optima['compute'])} runs on the envelope "
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
                  f"Huber (delta 1e-3) on log loss, summed over {len(surface.run_ids)} runs; objective "
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
             "D_eff = m(q) D with m(1) = 1: *exponential* log m(q) = gamma (1 - q), *per level* one free "
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
    if figure:
        lines += ["", f"![quality]({figure})"]
    return lines + [""]


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
    """Which C each approach uses, and how far apart the two are on these runs (Chinchilla
    mixed them the same way: its approaches 1 and 2 count FLOPs, its closed form takes 6ND)."""
    runs = table.runs
    with np.errstate(all="ignore"):
        ratio = runs.flops / (6.0 * runs.params * runs.tokens)
    ratio = ratio[np.isfinite(ratio)]
    spread = f"; {ratio.min():.2f}-{ratio.max():.2f}x 6ND on these runs" if len(ratio) else ""
    return ("Approaches 1 and 2 fit N_opt and D_opt against the runs' training FLOPs (the `flops` "
            f"column: 6N per token plus attention{spread}); approach 3's closed form and the published "
            "references take C = 6 N D, as Chinchilla's did.")


def header(fits: TableFits | None, table: LoadedTable, title: str, n_boot: int, seed: int) -> list[str]:
    lines = [f"# Scaling-law report: {title}", "",
             f"Runs: {table.total_rows} in `results.csv`, {len(table.runs)} used in the fits "
             f"(loss column `{table.loss_column}`, N = `{table.params_column}`).",
             f"Intervals: 95% percentile bootstrap over runs ({n_boot} refits, seed {seed})."]
    if fits is not None:
        lines.append(f"Allocations are reported at C = {fits.budget:.3g} FLOPs. " + compute_definitions(table))
    return lines + [""]
