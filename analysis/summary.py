"""TableFits as plain text lines: ours beside the published values, every interval, every skip."""
from __future__ import annotations

from analysis.allocation_laws import AllocationLawResult
from analysis.comparisons import comparison_line
from analysis.pipeline import LevelFits, TableFits
from analysis.quality import QualityResult

ALLOCATION_NAMES = ("params_exponent", "tokens_exponent", "params_at_budget", "tokens_at_budget",
                    "tokens_per_param_at_budget")
SURFACE_NAMES = ("E", "A", "B", "alpha", "beta") + ALLOCATION_NAMES + ("G",)
SURFACE_EXTRA_NAMES = ("repeat_decay",)


def _allocation_lines(result: AllocationLawResult, approach: int, budget: float, points: str) -> list[str]:
    n_boot = len(result.replicate_laws)
    lines = [f"{result.approach}: {points}; {result.failed_replicates}/{n_boot} bootstrap refits failed"]
    lines += [f"  note: {note}" for note in result.notes]
    lines += ["  " + comparison_line(name, result.estimates[name], approach=approach, budget=budget)
              for name in ALLOCATION_NAMES]
    return lines


def level_lines(level: LevelFits, budget: float) -> list[str]:
    lines = [f"[{level.label}] {len(level.runs)} runs"]
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
        lines.append(f"approach 3 (parametric L(N, D)): {len(surface.run_ids)} runs, summed Huber "
                     f"objective {surface.fit.objective:.4g}; {surface.failed_replicates}/"
                     f"{len(surface.replicates)} bootstrap refits failed")
        lines += [f"  note: {note}" for note in surface.notes]
        names = SURFACE_NAMES + tuple(n for n in SURFACE_EXTRA_NAMES if n in surface.estimates)
        lines += ["  " + comparison_line(name, surface.estimates[name], approach=3, budget=budget)
                  for name in names]
    return lines


def quality_lines(result: QualityResult) -> list[str]:
    levels = ", ".join(f"{q:g}" for q in result.levels)
    lines = [f"[quality] levels {levels} (1 = textbook, 0 = web); m(q) multiplies tokens, m(1) = 1"]
    lines += [f"  note: {note}" for note in result.notes]
    for form, multipliers in result.multipliers.items():
        lines.append(f"  m(q), joint {form} fit: " + "; ".join(
            f"q={q:g}: {estimate.format()}" for q, estimate in multipliers.items()))
    if "gamma" in result.joint["exponential"].estimates:
        lines.append(f"  gamma (log m(q) = gamma (1 - q)): "
                     f"{result.joint['exponential'].estimates['gamma'].format()}")
    low, high = result.levels[0], result.levels[-1]
    for how, estimate in result.token_worth.items():
        lines.append(f"  tokens at q={low:g} worth one token at q={high:g} ({how}, C={result.budget:.3g}): "
                     f"{estimate.format()}")
    lines.append(f"  compute-optimal split at C={result.budget:.3g}:")
    for model, per_level in result.allocation.items():
        for q, values in per_level.items():
            lines.append(f"    {model}, q={q:g}: N_opt {values['params_at_budget'].format()}, "
                         f"D_opt {values['tokens_at_budget'].format()}, tokens/param "
                         f"{values['tokens_per_param_at_budget'].format()}")
    return lines


def summary_lines(fits: TableFits) -> list[str]:
    table, request = fits.table, fits.request
    lines = [f"table: {table.source} ({table.total_rows} rows, {len(table.runs)} used; loss column "
             f"{table.loss_column}, N column {table.params_column})",
             f"allocations at C = {fits.budget:.3g} FLOPs; intervals: 95% percentile bootstrap over runs, "
             f"{request.n_boot} refits, seed {request.seed}"]
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
