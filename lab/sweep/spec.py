"""Grids of runs: typed config, scale presets, and expansion into resolved run configs.

A grid names its kind (which axes it sweeps) and its axis values per scale (smoke / cpu / gpu);
the run settings of each scale are Hydra presets (experiments/conf/scale). Command-line
overrides such as ``grid.sizes=[...]`` replace the chosen scale's axis values.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass, field

from lab.config import RunConfig
from lab.errors import ConfigError

KINDS = ("token_budget", "isoflop", "data_quality", "babylm")
SCALES = ("smoke", "cpu", "gpu")


@dataclass
class ScaleAxes:
    # Model sizes as target parameter counts (the size picker turns each into a shape).
    sizes: list[float] = field(default_factory=list)
    # Token budgets D (token_budget, data_quality).
    budgets: list[float] = field(default_factory=list)
    # Compute budgets C in FLOPs (isoflop): each size trains on D = C / flops_per_token.
    compute_budgets: list[float] = field(default_factory=list)
    # Corpus quality levels (data_quality); other grids use corpus.quality.
    qualities: list[float] = field(default_factory=list)


@dataclass
class GridConfig:
    name: str = "token_budget"
    kind: str = "token_budget"
    description: str = ""
    # Axis overrides from the command line; None = the scale preset's values.
    sizes: list[float] | None = None
    budgets: list[float] | None = None
    compute_budgets: list[float] | None = None
    qualities: list[float] | None = None
    scales: dict[str, ScaleAxes] = field(default_factory=dict)
    # Minimal-pair evaluation of every finished run (when the corpus provides pairs).
    eval_pairs: bool = True
    # Write the analysis report at the end.
    report: bool = True


@dataclass(frozen=True)
class PlannedRun:
    cfg: RunConfig  # resolved (shape picked), validated
    axes: dict  # the grid coordinates of this run, for tables and figures


def axes_for(grid: GridConfig, scale: str) -> ScaleAxes:
    if scale not in SCALES:
        raise ConfigError("scale", f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    if scale not in grid.scales:
        raise ConfigError("scale", f"grid {grid.name!r} defines no {scale!r} preset")
    preset = grid.scales[scale]
    return ScaleAxes(
        sizes=list(grid.sizes if grid.sizes is not None else preset.sizes),
        budgets=list(grid.budgets if grid.budgets is not None else preset.budgets),
        compute_budgets=list(grid.compute_budgets if grid.compute_budgets is not None else preset.compute_budgets),
        qualities=list(grid.qualities if grid.qualities is not None else preset.qualities),
    )


def validate_grid(grid: GridConfig, axes: ScaleAxes) -> None:
    if grid.kind not in KINDS:
        raise ConfigError("grid.kind", f"unknown grid kind {grid.kind!r}; choose one of {', '.join(KINDS)}")
    if not axes.sizes:
        raise ConfigError("grid.sizes", "at least one model size is needed")
    if any(s <= 0 for s in axes.sizes):
        raise ConfigError("grid.sizes", "sizes are parameter counts and must be > 0")
    if grid.kind == "isoflop":
        if not axes.compute_budgets or any(c <= 0 for c in axes.compute_budgets):
            raise ConfigError("grid.compute_budgets", "an isoflop grid needs positive compute budgets (FLOPs)")
    elif not axes.budgets or any(b <= 0 for b in axes.budgets):
        raise ConfigError("grid.budgets", "at least one positive token budget is needed")
    if grid.kind == "data_quality":
        if len(axes.qualities) < 2:
            raise ConfigError("grid.qualities", "a data_quality grid needs at least two quality levels")
        if any(not 0 <= q <= 1 for q in axes.qualities):
            raise ConfigError("grid.qualities", "quality levels must lie in [0, 1]")


def expand(base: RunConfig, grid: GridConfig, scale: str) -> list[PlannedRun]:
    """Every run of the grid as a resolved, validated RunConfig (fails before any compute)."""
    from lab.accounting import flops_per_token
    from lab.single_run import resolve

    axes = axes_for(grid, scale)
    validate_grid(grid, axes)
    qualities = axes.qualities if grid.kind == "data_quality" else [base.corpus.quality]
    tokens_per_step = base.train.batch_size * base.train.seq_len
    planned = []
    for quality, size in itertools.product(qualities, axes.sizes):
        sized = dataclasses.replace(base, model=dataclasses.replace(base.model, params=float(size)),
                                    corpus=dataclasses.replace(base.corpus, quality=float(quality)))
        shaped = resolve(dataclasses.replace(sized, train=dataclasses.replace(
            sized.train, tokens=float(max(axes.budgets or [tokens_per_step])))))
        if grid.kind == "isoflop":
            per_token = flops_per_token(shaped.model, base.train.seq_len)
            budgets = [(c, c / per_token) for c in axes.compute_budgets]
        else:
            budgets = [(None, b) for b in axes.budgets]
        for compute, tokens in budgets:
            # Round the budget to whole optimizer steps so D is exactly what is trained.
            steps = math.floor(tokens / tokens_per_step)
            if steps < 1:
                continue  # this size cannot fit one step in this compute budget: not a point
            run_cfg = dataclasses.replace(shaped, train=dataclasses.replace(shaped.train, tokens=float(steps * tokens_per_step)))
            axes_row = {"size": size, "quality": quality, "budget_tokens": tokens}
            if compute is not None:
                axes_row["compute_budget"] = compute
            planned.append(PlannedRun(resolve(run_cfg), axes_row))
    if not planned:
        raise ConfigError("grid", "the grid expands to no runs (every budget is below one optimizer step)")
    return planned
