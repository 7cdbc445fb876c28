"""The report's figures, one function each, saved as byte-identical PNG and PDF files beside a JSON
of exactly the numbers plotted and the run ids behind them.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter, NullFormatter, ScalarFormatter

from analysis.approach1 import AllocationLawResult
from analysis.approach2 import IsoflopResult
from analysis.approach3 import SurfaceResult
from analysis.approach3_core import HUBER_DELTA, optimal_allocation, optimal_loss
from analysis.intervals import plain_json
from analysis.permutation import format_p
from analysis.pipeline import LevelFits
from analysis.quality import QualityResult
from analysis.quality_metrics import ACCURACY_METRICS
from analysis.references import CHINCHILLA_PUBLISHED, EPOCH_REFIT, TOKENS_PER_PARAM_RULE
from analysis.table import RunCurve, RunTable

# Determinism: no pyplot and no global backend; figures are plain Figure objects rendered by Agg
# (PNG) and the PDF backend under a temporary rc context that fixes the font, the SVG hash salt and
# the sizes, and the file metadata carry no timestamps or software strings.
STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 7.5,
    "legend.framealpha": 0.9,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "svg.hashsalt": "lab-analysis",
    "svg.fonttype": "path",
    "pdf.fonttype": 42,
    "savefig.dpi": 150,
    "figure.dpi": 100,
}
PNG_METADATA = {"Software": None}
PDF_METADATA = {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None}


@contextmanager
def figure_style():
    with matplotlib.rc_context(STYLE):
        yield


def new_figure(width: float = 6.4, height: float = 4.4, columns: int = 1) -> tuple[Figure, list]:
    figure = Figure(figsize=(width, height), layout="constrained")
    axes = [figure.add_subplot(1, columns, i + 1) for i in range(columns)]
    return figure, axes


def save_figure(figure: Figure, directory: Path, name: str, data: dict) -> list[Path]:
    """Write name.png, name.pdf and name.json (the exact numbers plotted and the runs behind them)."""
    directory.mkdir(parents=True, exist_ok=True)
    png, pdf, numbers = (directory / f"{name}.{suffix}" for suffix in ("png", "pdf", "json"))
    figure.savefig(png, metadata=PNG_METADATA)
    figure.savefig(pdf, metadata=PDF_METADATA)
    numbers.write_text(json.dumps(plain_json(data), indent=1, allow_nan=False) + "\n")
    return [png, pdf, numbers]


LOSS_LABEL = "final validation loss (nats/token)"
COMPUTE_LABEL = "compute C = 6ND (FLOPs)"
PARAMS_LABEL = "parameters N"
TOKENS_LABEL = "training tokens D"
APPROACH_COLOURS = {1: "tab:blue", 2: "tab:orange", 3: "tab:green"}
REFERENCE_STYLES = {"Chinchilla (Hoffmann 2022)": ("black", "--"), "Epoch refit (Besiroglu 2024)": ("tab:red", "-."),
                    "20 tokens/param": ("0.45", ":")}


def _band(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise 95% band (2.5-97.5 percentiles) over replicate rows; NaN rows (failed refits) ignored."""
    samples = samples[~np.isnan(samples).any(axis=1)]
    if len(samples) == 0:
        return np.full(samples.shape[1], np.nan), np.full(samples.shape[1], np.nan)
    return np.percentile(samples, 2.5, axis=0), np.percentile(samples, 97.5, axis=0)


def _size_norm(params: np.ndarray) -> LogNorm:
    low, high = float(np.min(params)), float(np.max(params))
    return LogNorm(vmin=low / 1.5, vmax=high * 1.5) if low == high else LogNorm(vmin=low, vmax=high)


def _compute_grid(compute: np.ndarray, points: int = 120) -> np.ndarray:
    return np.logspace(np.log10(compute.min()) - 0.25, np.log10(compute.max()) + 0.25, points)


def plot_loss_curves(curves: list[RunCurve], directory: Path, name: str = "loss_curves") -> list[Path]:
    curves = sorted(curves, key=lambda c: (c.params, c.run_id))
    norm, cmap = _size_norm(np.array([c.params for c in curves])), colormaps["viridis"]
    with figure_style():
        figure, (ax,) = new_figure()
        for curve in curves:
            colour = cmap(norm(curve.params))
            ax.plot(curve.tokens, curve.loss, color=colour, lw=0.9, alpha=0.85)
            if curve.val_loss.size:
                ax.plot(curve.val_tokens, curve.val_loss, "o", color=colour, ms=3, mec="black", mew=0.4)
        ax.plot([], [], color="0.3", lw=0.9, label="training loss")
        ax.plot([], [], "o", color="0.6", ms=3, mec="black", mew=0.4, label="validation loss")
        ax.set_xscale("log")
        ax.set_xlabel("tokens seen")
        ax.set_ylabel("loss (nats/token)")
        ax.set_title(f"Loss curves of {len(curves)} runs, coloured by size")
        ax.legend(loc="upper right")
        figure.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=PARAMS_LABEL)
        data = {"figure": name, "runs": [
            {"run_id": c.run_id, "params": c.params, "tokens": c.tokens, "loss": c.loss,
             "val_tokens": c.val_tokens, "val_loss": c.val_loss} for c in curves]}
        return save_figure(figure, directory, name, data)


def plot_isoflop(result: IsoflopResult, runs: RunTable, directory: Path, name: str) -> list[Path]:
    colours = colormaps["plasma"](np.linspace(0.0, 0.85, len(result.profiles)))
    profiles = []
    with figure_style():
        figure, (ax,) = new_figure()
        for profile, colour in zip(result.profiles, colours):
            members = profile.run_indices
            params, loss = runs.params[members], runs.loss[members]
            log_grid = np.linspace(np.log10(params.min()) - 0.1, np.log10(params.max()) + 0.1, 80)
            fitted = np.polyval(profile.params_parabola, log_grid)
            ax.plot(params, loss, "o", color=colour, ms=4, label=f"C = {profile.budget:.2g} FLOPs")
            ax.plot(10.0 ** log_grid, fitted, "-", color=colour, lw=1.2)
            ax.plot(profile.optimal_params, profile.optimal_loss, "*", color=colour, ms=11, mec="black",
                    mew=0.6)
            profiles.append({"budget": profile.budget, "params": params, "loss": loss,
                             "run_ids": [runs.run_ids[i] for i in members],
                             "parabola_log10_params": profile.params_parabola,
                             "curve_params": 10.0 ** log_grid, "curve_loss": fitted,
                             "optimal_params": profile.optimal_params, "optimal_loss": profile.optimal_loss})
        ax.plot([], [], "*", color="0.6", ms=10, mec="black", mew=0.6, label="parabola minimum")
        ax.set_xscale("log")
        ax.set_xlabel(PARAMS_LABEL)
        ax.set_ylabel(LOSS_LABEL)
        ax.set_title("IsoFLOP profiles: loss against size at fixed compute")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
        return save_figure(figure, directory, name, {"figure": name, "profiles": profiles,
                                                     "notes": list(result.allocation.notes)})


def _frontier(surface: SurfaceResult, compute: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Compute-optimal loss of the fitted surface and its bootstrap band on a compute grid."""
    def loss_at(theta: np.ndarray) -> np.ndarray:
        theta = np.atleast_2d(theta)
        with np.errstate(all="ignore"):
            return np.array([optimal_loss(c, np.exp(theta[:, 2]), np.exp(theta[:, 0]), np.exp(theta[:, 1]),
                                          theta[:, 3], theta[:, 4]) for c in compute]).T
    low, high = _band(loss_at(surface.replicates)) if len(surface.replicates) else (None, None)
    return loss_at(surface.fit.theta)[0], low, high


def plot_loss_vs_compute(level: LevelFits, curves: list[RunCurve], directory: Path, name: str) -> list[Path]:
    runs = level.runs
    norm, cmap = _size_norm(runs.params), colormaps["viridis"]
    data: dict = {"figure": name, "runs": {"run_ids": runs.run_ids, "compute": runs.compute,
                                           "loss": runs.loss, "params": runs.params}}
    with figure_style():
        figure, (ax,) = new_figure()
        for curve in sorted(curves, key=lambda c: c.run_id):
            ax.plot(curve.compute_per_token * curve.tokens, curve.loss, color="0.75", lw=0.6, zorder=1)
        if curves:
            ax.plot([], [], color="0.75", lw=0.6, label="training curves")
            data["curves_run_ids"] = sorted(c.run_id for c in curves)
        ax.scatter(runs.compute, runs.loss, c=runs.params, cmap=cmap, norm=norm, s=16, zorder=3,
                   edgecolors="black", linewidths=0.3, label="final loss of a run")
        if level.envelope is not None:
            optima = level.envelope.optima
            ax.plot(optima["compute"], optima["loss"], "s-", color=APPROACH_COLOURS[1], mfc="none", ms=8,
                    lw=1.0, zorder=4, label="approach 1: minimum-loss envelope")
            data["envelope"] = optima
        if level.surface is not None:
            compute = _compute_grid(runs.compute)
            frontier, low, high = _frontier(level.surface, compute)
            ax.plot(compute, frontier, color=APPROACH_COLOURS[3], lw=1.5, zorder=2,
                    label="approach 3: compute-optimal frontier")
            if low is not None:
                ax.fill_between(compute, low, high, color=APPROACH_COLOURS[3], alpha=0.2, lw=0, zorder=2)
            data["frontier"] = {"compute": compute, "loss": frontier, "band_low": low, "band_high": high}
        ax.set_xscale("log")
        ax.set_xlabel(COMPUTE_LABEL)
        ax.set_ylabel(LOSS_LABEL)
        ax.set_title(f"Loss against compute ({level.label})")
        ax.legend(loc="upper right")
        figure.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=PARAMS_LABEL)
        return save_figure(figure, directory, name, data)


def _law_series(result: AllocationLawResult, compute: np.ndarray) -> dict:
    log_c = np.log10(compute)
    rows = result.replicate_laws
    series = {"params": result.laws.params(compute), "tokens": result.laws.tokens(compute)}
    if len(rows):
        series["params_band"] = _band(10.0 ** (rows[:, 1:2] + rows[:, 0:1] * log_c))
        series["tokens_band"] = _band(10.0 ** (rows[:, 3:4] + rows[:, 2:3] * log_c))
    return series


def _surface_series(surface: SurfaceResult, compute: np.ndarray) -> dict:
    def allocate(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        theta = np.atleast_2d(theta)
        with np.errstate(all="ignore"):
            split = [optimal_allocation(c, np.exp(theta[:, 0]), np.exp(theta[:, 1]), theta[:, 3], theta[:, 4])
                     for c in compute]
        return np.array([s.params for s in split]).T, np.array([s.tokens for s in split]).T
    params, tokens = allocate(surface.fit.theta)
    series = {"params": params[0], "tokens": tokens[0]}
    if len(surface.replicates):
        replicate_params, replicate_tokens = allocate(surface.replicates)
        series["params_band"], series["tokens_band"] = _band(replicate_params), _band(replicate_tokens)
    return series


def _reference_series(compute: np.ndarray) -> dict[str, dict]:
    references = {}
    for label, law in (("Chinchilla (Hoffmann 2022)", CHINCHILLA_PUBLISHED),
                       ("Epoch refit (Besiroglu 2024)", EPOCH_REFIT)):
        split = optimal_allocation(compute, law.A, law.B, law.alpha, law.beta)
        references[label] = {"params": split.params, "tokens": split.tokens}
    rule_params = np.sqrt(compute / (6.0 * TOKENS_PER_PARAM_RULE))
    references["20 tokens/param"] = {"params": rule_params, "tokens": TOKENS_PER_PARAM_RULE * rule_params}
    return references


def plot_allocation(level: LevelFits, directory: Path, name: str) -> list[Path]:
    compute = _compute_grid(level.runs.compute)
    ours: dict[str, dict] = {}
    if level.envelope is not None:
        ours["approach 1 (envelope)"] = {**_law_series(level.envelope, compute), "approach": 1,
                                         "points": level.envelope.optima}
    if level.isoflop is not None:
        ours["approach 2 (IsoFLOP)"] = {**_law_series(level.isoflop.allocation, compute), "approach": 2,
                                        "points": level.isoflop.allocation.optima}
    if level.surface is not None:
        ours["approach 3 (parametric)"] = {**_surface_series(level.surface, compute), "approach": 3}
    references = _reference_series(compute)
    with figure_style():
        figure, axes = new_figure(width=9.6, height=4.2, columns=2)
        for ax, quantity, label in zip(axes, ("params", "tokens"), ("compute-optimal size N_opt (parameters)",
                                                                    "compute-optimal data D_opt (tokens)")):
            for series_label, series in ours.items():
                colour = APPROACH_COLOURS[series["approach"]]
                # Approach 2 drawn wider underneath so that 3 on top of it stays visible where they agree.
                width = 2.6 if series["approach"] == 2 else 1.4
                ax.plot(compute, series[quantity], color=colour, lw=width, label=f"ours: {series_label}")
                if f"{quantity}_band" in series:
                    low, high = series[f"{quantity}_band"]
                    ax.fill_between(compute, low, high, color=colour, alpha=0.15, lw=0)
                if "points" in series:
                    ax.plot(series["points"]["compute"], series["points"][quantity], "o", color=colour, ms=4,
                            mec="black", mew=0.4)
            for ref_label, ref in references.items():
                colour, style = REFERENCE_STYLES[ref_label]
                ax.plot(compute, ref[quantity], linestyle=style, color=colour, lw=1.1, label=ref_label)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel(COMPUTE_LABEL)
            ax.set_ylabel(label)
        # Below both panels: inside one, it covered the envelope's points at the smallest compute.
        handles, labels = axes[0].get_legend_handles_labels()
        figure.legend(handles, labels, loc="outside lower center", ncol=3)
        figure.suptitle(f"Compute-optimal allocation ({level.label}); bands: 95% bootstrap")
        data = {"figure": name, "compute": compute, "ours": ours, "references": references,
                "run_ids": level.runs.run_ids}
        return save_figure(figure, directory, name, data)


def plot_quality(result: QualityResult, runs: RunTable, directory: Path, name: str = "quality") -> list[Path]:
    colours = colormaps["cividis"](np.linspace(0.0, 0.9, len(result.levels)))
    compute = _compute_grid(runs.compute)
    data: dict = {"figure": name, "levels": list(result.levels), "per_level": {}, "multipliers": {}}
    with figure_style():
        figure, (left, right) = new_figure(width=9.6, height=4.2, columns=2)
        for q, colour in zip(result.levels, colours):
            members = runs.quality == q
            left.scatter(runs.compute[members], runs.loss[members], color=colour, s=12, edgecolors="black",
                         linewidths=0.3, label=f"q = {q:g} runs")
            entry = {"run_ids": [r for r, m in zip(runs.run_ids, members) if m],
                     "compute": runs.compute[members], "loss": runs.loss[members]}
            if q in result.per_level:
                frontier, low, high = _frontier(result.per_level[q], compute)
                left.plot(compute, frontier, color=colour, lw=1.5)
                if low is not None:
                    left.fill_between(compute, low, high, color=colour, alpha=0.15, lw=0)
                entry["frontier"] = {"compute": compute, "loss": frontier, "band_low": low, "band_high": high}
            data["per_level"][f"{q:g}"] = entry
        left.plot([], [], color="0.4", lw=1.5, label="per-level compute-optimal frontier")
        left.set_xscale("log")
        left.set_xlabel(COMPUTE_LABEL)
        left.set_ylabel(LOSS_LABEL)
        left.set_title("Loss against compute by data quality")
        left.legend(loc="upper right")

        per_level = result.multipliers["per_level"]
        levels = np.array(result.levels)
        values = np.array([per_level[q].value for q in result.levels])
        errors = np.array([[per_level[q].value - per_level[q].low, per_level[q].high - per_level[q].value]
                           for q in result.levels]).T
        right.errorbar(levels, values, yerr=np.nan_to_num(errors), fmt="o", color="tab:purple", capsize=3,
                       label="free multiplier per level (joint fit)")
        exponential = result.joint["exponential"]
        top = float(levels[-1])
        q_grid = np.linspace(min(0.0, float(levels[0])), max(1.0, top), 101)
        gamma_column = exponential.fit.names.index("gamma")
        curve = np.exp(exponential.fit.theta[gamma_column] * (top - q_grid))
        right.plot(q_grid, curve, color="tab:green", lw=1.5, label=f"exp(gamma ({top:g} - q)) (joint fit)")
        gammas = exponential.replicates[:, gamma_column]
        gammas = gammas[~np.isnan(gammas)]
        band = (None, None)
        if gammas.size:
            band = _band(np.exp(gammas[:, None] * (top - q_grid[None, :])))
            right.fill_between(q_grid, band[0], band[1], color="tab:green", alpha=0.2, lw=0)
        right.axhline(1.0, color="0.5", lw=0.8)
        right.set_xlabel("data quality q (fraction of textbook-grade data)")
        right.set_ylabel("effective-data multiplier m(q) = D_eff / D")
        worth = result.token_worth["joint exponential"]
        right.set_title(f"one q={levels[-1]:g} token is worth {worth.format()} q={levels[0]:g} tokens")
        right.legend(loc="lower right")
        data["multipliers"] = {"levels": levels, "per_level_value": values, "per_level_error": errors,
                               "q_grid": q_grid, "exponential": curve, "exponential_band": band}
        return save_figure(figure, directory, name, data)


WORTH_AXIS = (1e-3, 1e3)  # the exchange-rate panel's widest x range


def _worth_panel(ax, result: QualityResult) -> list[dict]:
    """Web tokens one textbook token is worth, per metric, with its interval and permutation p."""
    effects = result.metric_effects
    rows = []
    finite = [e.worth for e in effects if e.worth is not None]
    # An accuracy barely above chance can carry bounds like 1e-6 .. 1e111: beyond a thousandfold
    # either way a bar runs off the axis instead of squashing every other row into one decade.
    top = min(max([w.high for w in finite if np.isfinite(w.high)] + [w.value for w in finite] + [1.0]) * 2.0,
              WORTH_AXIS[1])
    bottom = max(min([w.low for w in finite if w.low > 0] + [w.value for w in finite] + [1.0]) / 2.0, WORTH_AXIS[0])
    for y, effect in zip(range(len(effects) - 1, -1, -1), effects):
        row = {"metric": effect.metric, "column": effect.column, "verdict": effect.verdict()}
        if effect.worth is None:
            ax.text(bottom, y, "  not estimated", va="center", fontsize=7, color="0.4")
            rows.append(row)
            continue
        worth = effect.worth
        # 0 and inf (refits at a ratio's limit) and anything off the axis are drawn at its ends.
        value, low, high = (float(np.clip(x, bottom, top)) for x in (worth.value, worth.low, worth.high))
        significant = effect.test is not None and effect.test.significant
        ax.errorbar([value], [y], xerr=[[max(value - low, 0.0)], [max(high - value, 0.0)]],
                    fmt="o", color="tab:red" if significant else "0.3", capsize=3, ms=5, mec="black", mew=0.4)
        p_text = "" if effect.test is None else f"p = {format_p(effect.test.p_value)}"
        ax.annotate(p_text, (value, y), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=7)
        rows.append({**row, "value": worth.value, "ci": [worth.low, worth.high],
                     "p_value": None if effect.test is None else effect.test.p_value})
    ax.axvline(1.0, color="0.5", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlim(bottom, top)
    # A decade or two: plain numbers, no crowded minor labels.
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks([t for t in (0.001, 0.01, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 1000) if bottom <= t <= top])
    ax.set_yticks(range(len(effects)))
    ax.set_yticklabels([e.metric for e in reversed(effects)])
    ax.set_ylim(-0.7, len(effects) - 0.3)
    low_q, high_q = result.levels[0], result.levels[-1]
    ax.set_xlabel(f"q={low_q:g} tokens one q={high_q:g} token is worth (95% interval)")
    ax.set_title("Exchange rate by metric (red: p < 0.05)")
    return rows


def plot_metric_effects(result: QualityResult, runs: RunTable, directory: Path,
                        name: str = "quality_metrics") -> list[Path]:
    """Left: what one textbook token is worth on the loss and on each accuracy, with the
    permutation verdict. Then one panel per fitted accuracy: the runs against tokens, one colour per
    quality level, and the shared-shape logistic fit through each model size."""
    drawn = [e for e in result.metric_effects if e.fit is not None and e.worth is not None]
    colours = dict(zip(result.levels, colormaps["cividis"](np.linspace(0.0, 0.9, len(result.levels)))))
    data: dict = {"figure": name, "levels": list(result.levels), "accuracies": {}}
    with figure_style():
        figure, axes = new_figure(width=4.8 * (1 + len(drawn)), height=4.0, columns=1 + len(drawn))
        data["worth"] = _worth_panel(axes[0], result)
        for ax, effect in zip(axes[1:], drawn):
            field = next(m.field for m in ACCURACY_METRICS if m.key == effect.key)
            values = getattr(runs, field)
            entry: dict = {"column": effect.column, "link": effect.link, "levels": {}}
            tokens_grid = np.logspace(np.log10(runs.tokens.min()), np.log10(runs.tokens.max()), 40)
            for q in result.levels:
                members = (runs.quality == q) & ~np.isnan(values)
                ax.scatter(runs.tokens[members], values[members], color=colours[q], s=14, edgecolors="black",
                           linewidths=0.3, label=f"q = {q:g}")
                curves = {f"{size:g}": effect.fit.predict(size, tokens_grid, q)
                          for size in sorted(set(runs.params[members].tolist()))}
                for curve in curves.values():
                    ax.plot(tokens_grid, curve, color=colours[q], lw=0.9)
                entry["levels"][f"{q:g}"] = {"run_ids": [r for r, m in zip(runs.run_ids, members) if m],
                                             "tokens": runs.tokens[members], "params": runs.params[members],
                                             "accuracy": values[members], "fit_tokens": tokens_grid,
                                             "fit_by_params": curves}
            ax.axhline(effect.fit.chance, color="0.5", lw=0.8, ls=":")
            ax.set_xscale("log")
            ax.set_xlabel(TOKENS_LABEL)
            ax.set_ylabel(f"{effect.metric} accuracy ({effect.column})")
            ax.set_title(f"{effect.metric}: one line per model size; dotted: chance")
            ax.legend(loc="upper left")
            data["accuracies"][effect.key] = entry
        return save_figure(figure, directory, name, data)


def _label_grid_values(ax, x: np.ndarray, most: int = 6) -> None:
    """On a log axis over a designed grid's few values, tick and label those values (78k, 230k, ...):
    a grid spanning under a decade otherwise gets one major label, and matplotlib's minor labels
    (2x, 3x, 4x) run into each other at this width."""
    values = np.unique(x[np.isfinite(x) & (x > 0)])
    ax.xaxis.set_minor_formatter(NullFormatter())
    if 0 < values.size <= most:
        ax.set_xticks(values)
        ax.xaxis.set_major_formatter(EngFormatter(places=0, sep=""))


def plot_residuals(surface: SurfaceResult, directory: Path, name: str) -> list[Path]:
    residuals = surface.residuals
    rms = float(np.sqrt(np.mean(residuals ** 2)))
    with figure_style():
        figure, axes = new_figure(width=9.6, height=3.8, columns=2)
        for ax, x, colour_by, x_label, colour_label in (
                (axes[0], surface.params, surface.effective_tokens, PARAMS_LABEL, "effective tokens D_eff"),
                (axes[1], surface.effective_tokens, surface.params, "effective training tokens D_eff",
                 PARAMS_LABEL)):
            norm = _size_norm(colour_by)
            ax.scatter(x, residuals, c=colour_by, cmap="viridis", norm=norm, s=14, edgecolors="black",
                       linewidths=0.3)
            ax.axhline(0.0, color="black", lw=0.8)
            for sign in (-1, 1):
                ax.axhline(sign * HUBER_DELTA, color="0.5", lw=0.6, ls=":")
            ax.set_xscale("log")
            _label_grid_values(ax, x)
            ax.set_xlabel(x_label)
            ax.set_ylabel("log L observed − log L fitted")
            figure.colorbar(ScalarMappable(norm=norm, cmap="viridis"), ax=ax, label=colour_label)
        figure.suptitle(f"Residuals of the parametric fit (RMS {rms:.4f}; dotted: Huber delta)")
        data = {"figure": name, "run_ids": surface.run_ids, "params": surface.params,
                "effective_tokens": surface.effective_tokens, "residual_log_loss": residuals, "rms": rms}
        return save_figure(figure, directory, name, data)


PAIRS_LABEL = "minimal-pair accuracy (synthetic pairs)"


def plot_pairs(runs: RunTable, directory: Path, name: str = "pairs") -> list[Path]:
    """Accuracy on each run's own corpus-generated minimal pairs (BLiMP's format, not BLiMP)."""
    known = ~np.isnan(runs.pairs_acc)
    norm = _size_norm(runs.params[known])
    with figure_style():
        figure, (ax,) = new_figure()
        ax.scatter(runs.compute[known], runs.pairs_acc[known], c=runs.params[known], cmap="viridis", norm=norm,
                   s=16, edgecolors="black", linewidths=0.3)
        ax.set_xscale("log")
        ax.set_xlabel(COMPUTE_LABEL)
        ax.set_ylabel(PAIRS_LABEL)
        ax.set_title("Minimal-pair accuracy (synthetic pairs) against compute")
        figure.colorbar(ScalarMappable(norm=norm, cmap="viridis"), ax=ax, label=PARAMS_LABEL)
        data = {"figure": name, "run_ids": [r for r, k in zip(runs.run_ids, known) if k],
                "compute": runs.compute[known], "pairs_acc": runs.pairs_acc[known], "params": runs.params[known]}
        return save_figure(figure, directory, name, data)
