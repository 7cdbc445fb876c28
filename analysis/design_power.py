"""How narrow a grid's parametric-fit intervals can be, at a given scatter of its runs about the law.

A fit's 95% intervals are as wide as the scatter of the runs about the surface allows on that
grid's cells. This module measures the relation directly instead of guessing at it: it takes the
cells (N, D) of a table of runs and a surface taken as the truth (by default the table's own
Approach 3 point fit), draws synthetic tables at each scatter level (loss + noise * standard normal
per cell), refits each with its bootstrap exactly as the report does, and counts how often the
report's criteria would hold. It answers "is this grid, at this noise, able to give a result at
all?", which more of the same runs cannot.

    python -m analysis.design_power runs/token_budget/results.csv [--noise 0.01 0.02 0.04]

The scatter a table actually has is in its report's header (rms about the fitted surface, and the
seed-to-seed spread where a grid ran several seeds).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from analysis.approach3 import run_surface
from analysis.cli import OneLineParser, bad_input
from analysis.criteria import MAX_EXPONENT_WIDTH, MIN_E_LOW, e_identified, exponent_pinned
from analysis.synthetic import TrueSurface, as_table, training_flops
from analysis.table import InsufficientData, RunTable, read_table
from common.errors import ConfigError

DEFAULT_REPLICATES = 30
# Fewer refits than a report's 200 keep a noise level under a minute; at 80 the recovery test
# found the percentile intervals' coverage settled (analysis tests, test_analysis_recovery).
DEFAULT_BOOTSTRAP = 80


@dataclass(frozen=True)
class PowerAtNoise:
    """Over synthetic replicates of one grid at one scatter: the fit's interval widths, and the
    share of replicates in which each of the report's criteria on approach 3 holds."""

    noise_nats: float
    replicates: int
    median_alpha_width: float
    median_beta_width: float
    alpha_narrow: float  # share with alpha's interval no wider than MAX_EXPONENT_WIDTH
    beta_narrow: float
    e_clear: float  # share with E's interval above MIN_E_LOW
    all_three: float  # share meeting all three at once
    # Approach 3's compute-optimal exponent a against the truth's.
    mean_abs_a_error: float
    a_coverage: float

    def describe(self) -> str:
        return (f"noise {self.noise_nats:.3g} nats: alpha's interval {self.median_alpha_width:.2f} wide "
                f"(median; < {MAX_EXPONENT_WIDTH:g} in {self.alpha_narrow:.0%}), beta's "
                f"{self.median_beta_width:.2f} ({self.beta_narrow:.0%}), E's clear of {MIN_E_LOW:g} in "
                f"{self.e_clear:.0%}; all three in {self.all_three:.0%} of {self.replicates} replicates; "
                f"a off by {self.mean_abs_a_error:.3f} on average, its interval covering the truth in "
                f"{self.a_coverage:.0%}")


def synthetic_cells(surface: TrueSurface, params: np.ndarray, tokens: np.ndarray, noise_nats: float,
                    rng: np.random.Generator) -> RunTable:
    """One synthetic table: each cell's loss on the surface plus noise_nats * standard normal."""
    clean = surface.loss(params, tokens)
    loss = clean + noise_nats * rng.standard_normal(clean.shape)
    if np.any(loss <= 0):
        # The table would drop those cells and the refit would be of another design.
        raise InsufficientData(f"noise {noise_nats:g} nats drew a loss <= 0 on these cells: too much noise "
                               "for a loss of this size")
    rows = [{"run_id": f"cell{i}", "status": "done", "params": float(n), "tokens": float(d),
             "flops": float(training_flops(n, d)), "final_val_loss": float(value)}
            for i, (n, d, value) in enumerate(zip(params, tokens, loss))]
    return as_table(rows).runs


def power_at_noise(surface: TrueSurface, params: np.ndarray, tokens: np.ndarray, noise_nats: float, *,
                   replicates: int = DEFAULT_REPLICATES, n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0,
                   progress=None) -> PowerAtNoise:
    """Refit `replicates` synthetic tables of these cells at this noise, as the report fits a grid."""
    if noise_nats < 0:
        raise ValueError(f"noise must be >= 0 nats, got {noise_nats}")
    a_true = surface.beta / (surface.alpha + surface.beta)
    rng = np.random.default_rng([seed, 17])
    widths, clear, errors, covered = [], [], [], []
    for replicate in range(replicates):
        runs = synthetic_cells(surface, params, tokens, noise_nats, rng)
        estimates = run_surface(runs, budget=1e12, n_boot=n_boot, seed=replicate, stream=(seed,)).estimates
        widths.append([estimates[name].high - estimates[name].low for name in ("alpha", "beta")])
        clear.append(e_identified(estimates["E"].low))
        errors.append(abs(estimates["params_exponent"].value - a_true))
        covered.append(estimates["params_exponent"].contains(a_true))
        if progress is not None:
            progress(replicate + 1, replicates)
    widths, clear = np.array(widths), np.array(clear)
    narrow = exponent_pinned(widths)
    return PowerAtNoise(noise_nats=noise_nats, replicates=replicates,
                        median_alpha_width=float(np.median(widths[:, 0])),
                        median_beta_width=float(np.median(widths[:, 1])),
                        alpha_narrow=float(narrow[:, 0].mean()), beta_narrow=float(narrow[:, 1].mean()),
                        e_clear=float(clear.mean()), all_three=float((narrow.all(axis=1) & clear).mean()),
                        mean_abs_a_error=float(np.mean(errors)), a_coverage=float(np.mean(covered)))


def surface_of(runs: RunTable, seed: int = 0) -> TrueSurface:
    """The table's own Approach 3 point fit, as a surface to draw from (no bootstrap)."""
    fit = run_surface(runs, budget=1e12, n_boot=0, seed=seed).fit
    return TrueSurface(E=fit.E, A=fit.A, B=fit.B, alpha=fit.alpha, beta=fit.beta)


def scatter_about(runs: RunTable, surface: TrueSurface) -> float:
    """Root-mean-square distance, in nats, of the cells' mean losses from the surface."""
    cells = runs.cell_means()
    return float(np.sqrt(np.mean((cells.loss - surface.loss(cells.params, cells.tokens)) ** 2)))


def implied_noise(rms: float, cells: int, fitted_parameters: int = 5) -> float:
    """The per-cell noise that residuals of this rms about a fit of `fitted_parameters` imply: a fit
    absorbs part of the noise, so residuals understate it by about sqrt((n - p) / n)."""
    return rms * float(np.sqrt(cells / max(cells - fitted_parameters, 1)))


def _table_level(path: str, quality: float | None) -> RunTable:
    runs = read_table(path).runs
    levels = runs.quality_levels()
    if quality is not None:
        if quality not in levels:
            raise ConfigError("quality", f"{quality:g} is not in the table (levels: "
                              f"{', '.join(f'{q:g}' for q in levels) or 'none recorded'})")
        return runs.subset(runs.quality == quality)
    if len(levels) > 1:
        raise ConfigError("quality", f"the table has {len(levels)} levels ({', '.join(f'{q:g}' for q in levels)}), "
                          "each fitted apart: name one")
    if runs.has_repeats:
        # The fit would be on Muennighoff's effective tokens, the synthetic cells on raw ones.
        raise ConfigError("table", f"{int(runs.past_one_epoch.sum())} runs trained past one epoch; design_power "
                          "draws fresh-data cells only")
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m analysis.design_power", description=__doc__.split("\n\n")[0])
    parser.add_argument("table", help="results.csv of a grid: its cells, and its Approach 3 fit as the truth")
    parser.add_argument("--noise", type=float, nargs="+", default=None,
                        help="scatter levels in nats (default: 0.01, 0.02, 0.04 and the table's own)")
    parser.add_argument("--replicates", type=int, default=DEFAULT_REPLICATES)
    parser.add_argument("--bootstrap", type=int, default=DEFAULT_BOOTSTRAP)
    parser.add_argument("--quality", type=float, default=None,
                        help="the quality level to take, for a table with several (each is fitted apart)")
    parser.add_argument("--seed", type=int, default=0)
    try:
        args = parser.parse_args(argv)
        for name in ("replicates", "bootstrap"):
            if getattr(args, name) < 1:
                raise ConfigError(name, f"must be >= 1, got {getattr(args, name)}")
        if args.noise is not None and min(args.noise) < 0:
            raise ConfigError("noise", f"must be >= 0 nats, got {min(args.noise)}")
        runs = _table_level(args.table, args.quality)
        surface = surface_of(runs, args.seed)
    except (ConfigError, InsufficientData) as error:
        return bad_input(error)
    cells = runs.cell_means()
    own = scatter_about(runs, surface)
    implied = implied_noise(own, len(cells))
    noises = args.noise if args.noise is not None else sorted({0.01, 0.02, 0.04, round(implied, 4)})
    print(f"{len(cells)} cells of {args.table}; truth = its Approach 3 fit: E {surface.E:.3g}, A {surface.A:.3g}, "
          f"B {surface.B:.3g}, alpha {surface.alpha:.3g}, beta {surface.beta:.3g}; its cells sit {own:.3g} nats "
          f"(rms) from it, residuals of a 5-parameter fit that imply ~{implied:.3g} nats of noise per cell")
    for noise in noises:
        def progress(done: int, total: int, noise=noise) -> None:
            print(f"\r  noise {noise:.3g}: replicate {done}/{total}", end="", file=sys.stderr, flush=True)
        try:
            result = power_at_noise(surface, cells.params, cells.tokens, noise, replicates=args.replicates,
                                    n_boot=args.bootstrap, seed=args.seed, progress=progress)
        except InsufficientData as error:
            print(file=sys.stderr)  # end the progress line
            return bad_input(error)
        print("\r" + " " * 40 + "\r", end="", file=sys.stderr)
        print(result.describe(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
