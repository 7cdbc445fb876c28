"""Figure and table kinds a paper.yaml can name. Each draws from the grids' run tables and fits.

A figure kind returns the files it wrote (PNG, PDF and a JSON of the plotted numbers, through
analysis.figures, so the same numbers give byte-identical files) and the run ids behind it
(None: every run of its grids). Where a fit the figure needs is missing (too few runs, e.g. at the
smoke scale) the figure still exists and says why on its axes, so a paper always builds.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from matplotlib import colormaps
from matplotlib.ticker import NullFormatter, ScalarFormatter

from analysis import figures as analysis_figures
from analysis.figures import figure_style, new_figure, save_figure
from analysis.intervals import format_number
from analysis.permutation import format_p
from analysis.references import CHINCHILLA_PUBLISHED, EPOCH_REFIT, TOKENS_PER_PARAM_RULE
from common.errors import ConfigError

QUALITY_CMAP = "cividis"


@dataclass
class Context:
    tables: dict  # grid key -> analysis.table.LoadedTable
    fits: dict  # grid key -> analysis.pipeline.TableFits | None
    fit_json: dict  # grid key -> fits_to_json dict
    grid_dirs: dict  # grid key -> Path
    budget: float
    scale: str


def _placeholder(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, transform=ax.transAxes, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def _one(keys: list[str], kind: str) -> str:
    if len(keys) != 1:
        raise ConfigError("paper.yaml", f"figure kind {kind} draws from exactly one grid, got {keys}")
    return keys[0]


def _quality_colours(levels: list[float]) -> dict[float, tuple]:
    colours = colormaps[QUALITY_CMAP](np.linspace(0.0, 0.9, max(len(levels), 1)))
    return {q: tuple(colours[i]) for i, q in enumerate(levels)}


def loss_by_quality(name: str, keys: list[str], ctx: Context, directory: Path):
    """Final validation loss against tokens, one colour per quality level, one line per size; the
    per-level parametric fit L(N, D) drawn through each size where it exists."""
    key = _one(keys, "loss_by_quality")
    runs, fits = ctx.tables[key].runs, ctx.fits[key]
    levels = runs.quality_levels() or [float("nan")]
    colours = _quality_colours(levels)
    markers = "osD^v<>p"
    sizes = sorted(set(runs.params.tolist()))
    surfaces = {lvl.quality: lvl.surface for lvl in (fits.levels if fits else []) if lvl.surface is not None}
    data: dict = {"figure": name, "series": []}
    with figure_style():
        figure, (ax,) = new_figure()
        if len(runs) == 0:
            _placeholder(ax, "no finished runs")
        for q in levels:
            for s_index, size in enumerate(sizes):
                rows = np.flatnonzero((runs.params == size) & ((runs.quality == q) | np.isnan(q)))
                if rows.size == 0:
                    continue
                rows = rows[np.argsort(runs.tokens[rows])]
                ax.plot(runs.tokens[rows], runs.loss[rows], marker=markers[s_index] if len(sizes) <= len(markers) else "o", ls="-",
                        color=colours[q], ms=4, lw=0.9, mec="black", mew=0.3)
                series = {"quality": q, "params": size, "tokens": runs.tokens[rows], "loss": runs.loss[rows],
                          "run_ids": [runs.run_ids[i] for i in rows]}
                surface = surfaces.get(q)
                if surface is not None:
                    theta = surface.fit.theta
                    grid = np.logspace(np.log10(runs.tokens.min()) - 0.1, np.log10(runs.tokens.max()) + 0.1, 60)
                    fitted = np.exp(theta[2]) + np.exp(theta[0]) / size ** theta[3] + np.exp(theta[1]) / grid ** theta[4]
                    ax.plot(grid, fitted, ls=":", color=colours[q], lw=0.9)
                    series.update(fit_tokens=grid, fit_loss=fitted)
                data["series"].append(series)
        for q in levels:
            ax.plot([], [], color=colours[q], lw=2, label=f"quality {q:g}")
        if len(sizes) <= len(markers):  # a grid's few sizes; a table of many distinct sizes gets no key
            for s_index, size in enumerate(sizes):
                ax.plot([], [], marker=markers[s_index], color="0.5", ls="none", mec="black", mew=0.3,
                        label=f"N = {format_number(size)}")
        if surfaces:
            ax.plot([], [], ls=":", color="0.3", label="per-level fit E + A/N^α + B/D^β")
        ax.set_xscale("log")
        ax.set_xlabel(analysis_figures.TOKENS_LABEL)
        ax.set_ylabel(analysis_figures.LOSS_LABEL)
        ax.set_title("Loss against data, by data quality and model size")
        if len(runs):
            ax.legend(loc="upper right")
        return save_figure(figure, directory, name, data), list(runs.run_ids)


def quality_multiplier(name: str, keys: list[str], ctx: Context, directory: Path):
    """The effective-data multiplier m(q) and the exchange rate (analysis.figures.plot_quality)."""
    return _quality_figure(name, _one(keys, "quality_multiplier"), ctx, directory, analysis_figures.plot_quality)


def quality_metrics(name: str, keys: list[str], ctx: Context, directory: Path):
    """What a textbook token is worth on the loss and on each accuracy, and the accuracy fits
    (analysis.figures.plot_metric_effects)."""
    return _quality_figure(name, _one(keys, "quality_metrics"), ctx, directory, analysis_figures.plot_metric_effects)


def _quality_figure(name: str, key: str, ctx: Context, directory: Path, plot):
    """plot(quality fit, runs with a quality level, directory, name), or a placeholder saying why not."""
    fits = ctx.fits[key]
    if fits is not None and fits.quality is not None:
        runs = ctx.tables[key].runs
        graded = runs.subset(~np.isnan(runs.quality))
        return plot(fits.quality, graded, directory, name), list(graded.run_ids)
    reason = ctx.fit_json[key].get("skipped") or (ctx.fit_json[key].get("quality") or {}).get("skipped", "")
    return _missing(name, directory, f"no quality fit: {reason}", ctx.tables[key].runs.run_ids)


def _missing(name: str, directory: Path, message: str, run_ids) -> tuple[list[Path], list[str]]:
    with figure_style():
        figure, (ax,) = new_figure(width=6.4, height=2.4)
        _placeholder(ax, message)
        return save_figure(figure, directory, name, {"figure": name, "missing": message,
                                                     "run_ids": list(run_ids)}), list(run_ids)


def _level_of(fits, quality: float | None):
    for level in fits.levels if fits else []:
        if quality is None or level.quality == quality:
            return level
    return None


def tokens_per_param(name: str, keys: list[str], ctx: Context, directory: Path):
    """Compute-optimal tokens per parameter at the paper's budget: each quality level's own fit and
    each other grid's fit (approach 3, 95% bootstrap interval) against Chinchilla, Epoch and 20."""
    from analysis.approach3_core import optimal_allocation

    rows = []  # (label, Estimate-like dict or None, reason)
    run_ids: list[str] = []
    for key in keys:
        fits = ctx.fits[key]
        run_ids += list(ctx.tables[key].runs.run_ids)
        for level in fits.levels if fits else []:
            label = f"{key}: {level.label}"
            if level.surface is not None:
                estimate = level.surface.estimates["tokens_per_param_at_budget"]
                rows.append((label, estimate))
            else:
                rows.append((label, None))
        if fits is None:
            rows.append((f"{key}: no fits", None))
    references = {}
    for label, law in (("Chinchilla (Hoffmann 2022)", CHINCHILLA_PUBLISHED), ("Epoch refit (Besiroglu 2024)", EPOCH_REFIT)):
        references[label] = float(optimal_allocation(ctx.budget, law.A, law.B, law.alpha, law.beta).tokens_per_param)
    references["20 tokens/param"] = TOKENS_PER_PARAM_RULE
    data = {"figure": name, "budget": ctx.budget, "references": references, "run_ids": sorted(run_ids),
            "ours": [{"label": label, "value": None if e is None else e.value,
                      "ci": None if e is None else [e.low, e.high]} for label, e in rows]}
    with figure_style():
        figure, (ax,) = new_figure(width=6.4, height=1.9 + 0.35 * (len(rows) + 1))
        y = np.arange(len(rows))[::-1]
        for yi, (label, estimate) in zip(y, rows):
            if estimate is None or not np.isfinite(estimate.value) or estimate.value <= 0:
                ax.text(1.0, yi, "  not fitted (too few runs)", va="center", fontsize=7, color="0.4")
                continue
            low, high = estimate.low, estimate.high
            err = None
            if np.isfinite(low) and np.isfinite(high) and low > 0:
                err = [[max(estimate.value - low, 0.0)], [max(high - estimate.value, 0.0)]]
            ax.errorbar([estimate.value], [yi], xerr=err, fmt="o", color="tab:green", capsize=3, ms=5,
                        mec="black", mew=0.4)
        for label, value in references.items():
            colour, style = analysis_figures.REFERENCE_STYLES[label]
            ax.axvline(value, color=colour, ls=style, lw=1.1, label=f"{label}: {value:.3g}")
        ax.set_yticks(y)
        ax.set_yticklabels([label for label, _ in rows])
        ax.set_ylim(-0.8, len(rows) - 0.2)
        ax.set_xscale("log")
        # The axis spans less than a decade: plain numbers, no overlapping minor labels.
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xticks([t for t in (1, 2, 5, 10, 20, 50, 100, 200) if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]])
        ax.set_xlabel(f"compute-optimal tokens per parameter at C = {ctx.budget:.3g} FLOPs")
        # Legend under the axes, so the plot keeps the figure's full width.
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, fontsize=7)
        return save_figure(figure, directory, name, data), sorted(run_ids)


def allocation(name: str, keys: list[str], ctx: Context, directory: Path):
    """Compute-optimal N and D of one grid against Chinchilla, Epoch and 20 tokens/param."""
    key = _one(keys, "allocation")
    level = _level_of(ctx.fits[key], None)
    if level is None:
        return _missing(name, directory, f"no fits: {ctx.fit_json[key].get('skipped', '')}",
                        ctx.tables[key].runs.run_ids)
    return analysis_figures.plot_allocation(level, directory, name), list(level.runs.run_ids)


def loss_vs_compute(name: str, keys: list[str], ctx: Context, directory: Path):
    """Final loss against compute with the training curves and the compute-optimal frontier."""
    from analysis.table import read_curves

    key = _one(keys, "loss_vs_compute")
    level = _level_of(ctx.fits[key], None)
    if level is None:
        return _missing(name, directory, f"no fits: {ctx.fit_json[key].get('skipped', '')}",
                        ctx.tables[key].runs.run_ids)
    curves, _notes = read_curves(ctx.grid_dirs[key], level.runs)
    return analysis_figures.plot_loss_vs_compute(level, curves, directory, name), list(level.runs.run_ids)


FIGURES: dict[str, Callable] = {"loss_by_quality": loss_by_quality, "quality_multiplier": quality_multiplier,
                                "quality_metrics": quality_metrics,
                                "tokens_per_param": tokens_per_param, "allocation": allocation,
                                "loss_vs_compute": loss_vs_compute}


def draw(kind: str, name: str, keys: list[str], ctx: Context, directory: Path):
    if kind not in FIGURES:
        raise ConfigError("paper.yaml", f"unknown figure kind {kind!r}; choose one of {', '.join(FIGURES)}")
    return FIGURES[kind](name, keys, ctx, directory)


# --- tables: Markdown text --------------------------------------------------------------------------

def _estimate_cell(estimate: dict | None) -> str:
    if not estimate:
        return "–"
    value, ci = estimate.get("value"), estimate.get("ci") or [None, None]
    if value is None:
        return "–"

    def num(x):
        return "nan" if x is None else (x if isinstance(x, str) else format_number(float(x)))

    if not estimate.get("replicates"):
        return f"{num(value)} [no interval]"
    return f"{num(value)} [{num(ci[0])}, {num(ci[1])}]"


def _quality_entry(key: str, ctx: Context, field: str):
    """(the quality fit's `field` in the grid's fits.json, why it is missing or None)."""
    quality = ctx.fit_json[key].get("quality") or {}
    value = quality.get(field)
    return value, None if value else (quality.get("skipped") or ctx.fit_json[key].get("skipped") or "no quality fit")


def token_worth_table(keys: list[str], ctx: Context) -> str:
    lines = ["| grid | estimate | web tokens per textbook token [95% CI] |", "| --- | --- | --- |"]
    for key in keys:
        worth, reason = _quality_entry(key, ctx, "web_tokens_per_textbook_token")
        if not worth:
            lines.append(f"| {key} | – | not estimated: {reason} |")
            continue
        for how, estimate in worth.items():
            lines.append(f"| {key} | {how} | {_estimate_cell(estimate)} |")
    return "\n".join(lines)


def quality_effects_table(keys: list[str], ctx: Context) -> str:
    """What one textbook token is worth in loss and in each accuracy, side by side, with the
    permutation verdict (analysis.quality_metrics)."""
    lines = ["| grid | metric | web tokens per textbook token | 95% interval | permutation p | verdict | link |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for key in keys:
        effects, reason = _quality_entry(key, ctx, "metric_effects")
        if not effects:
            lines.append(f"| {key} | – | – | – | – | not estimated: {reason} | – |")
            continue
        for effect in effects.values():
            worth = effect.get("web_tokens_per_textbook_token")
            if worth is None:
                lines.append(f"| {key} | {effect['metric']} | – | – | – | {effect['verdict']} | "
                             f"{effect['link']} |")
                continue
            value = _estimate_cell({**worth, "replicates": 0}).removesuffix(" [no interval]")
            interval = _estimate_cell(worth).removeprefix(value + " ")
            test = effect.get("permutation") or {}
            p_value = "–" if test.get("p_value") is None else format_p(float(test["p_value"]))
            lines.append(f"| {key} | {effect['metric']} | {value} | {interval} | {p_value} | {effect['verdict']} | "
                         f"{effect['link']} |")
    return "\n".join(lines)


SURFACE_ROWS = ("alpha", "beta", "E", "params_exponent", "tokens_exponent", "tokens_per_param_at_budget")


def surface_table(keys: list[str], ctx: Context) -> str:
    """Approach 3 per grid and quality level beside Chinchilla and Epoch (their published values)."""
    from analysis.references import quantity_label, reference_values

    columns = []
    for key in keys:
        for level in ctx.fit_json[key].get("levels", []):
            label = key if level.get("quality") is None else f"{key} q={level['quality']:g}"
            columns.append((label, level.get("approach3", {})))
        if not ctx.fit_json[key].get("levels"):
            columns.append((key, {"skipped": ctx.fit_json[key].get("skipped", "no fits")}))
    header = "| quantity | " + " | ".join(label for label, _ in columns) + " | published |"
    lines = [header, "| --- |" + " --- |" * (len(columns) + 1)]
    for name in SURFACE_ROWS:
        cells = []
        for _, fit in columns:
            cells.append(_estimate_cell((fit.get("estimates") or {}).get(name)) if "estimates" in fit else "–")
        published = "; ".join(f"{r.label} {r.text}" for r in reference_values(name, approach=3, budget=ctx.budget))
        lines.append(f"| {quantity_label(name, ctx.budget)} | " + " | ".join(cells) + f" | {published or '–'} |")
    skipped = [(label, fit["skipped"]) for label, fit in columns if "skipped" in fit]
    if skipped:
        lines += [""] + [f"- {label}: not fitted ({reason})" for label, reason in skipped]
    return "\n".join(lines)


def runs_table(keys: list[str], ctx: Context) -> str:
    lines = ["| grid | run | N | D | quality | final val loss |", "| --- | --- | --- | --- | --- | --- |"]
    for key in keys:
        runs = ctx.tables[key].runs
        for i in np.lexsort((runs.tokens, runs.params, -np.nan_to_num(runs.quality))):
            lines.append(f"| {key} | `{runs.run_ids[i]}` | {format_number(runs.params[i])} | "
                         f"{format_number(runs.tokens[i])} | {runs.quality[i]:g} | {runs.loss[i]:.4f} |")
        for run in ctx.tables[key].excluded:
            lines.append(f"| {key} | `{run.run_id}` | | | | excluded: {run.reason} |")
    return "\n".join(lines)


TABLES: dict[str, Callable] = {"token_worth": token_worth_table, "quality_effects": quality_effects_table,
                               "surface": surface_table, "runs": runs_table}


def tabulate(kind: str, keys: list[str], ctx: Context) -> str:
    if kind not in TABLES:
        raise ConfigError("paper.yaml", f"unknown table kind {kind!r}; choose one of {', '.join(TABLES)}")
    return TABLES[kind](keys, ctx)
