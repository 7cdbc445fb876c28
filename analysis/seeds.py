"""Seed replicates: how far the final loss of one grid cell moves from seed to seed.

A grid with grid.seeds trains every cell (size, budget, quality) once per seed; analysis.table
recognises those runs as replicates of one cell (RunTable.cell_ids). The spread stated here is
the noise floor every fitted difference has to clear; the fits take each cell at its seeds' mean
loss (RunTable.cell_means), and their bootstrap intervals carry the spread through those means.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import f as f_distribution

from analysis.intervals import format_number
from analysis.permutation import SIGNIFICANCE_LEVEL, format_p
from analysis.table import RunTable


@dataclass(frozen=True)
class SeedSpread:
    """The seed-to-seed spread of final loss over the cells of a table."""

    cells: int
    runs: int
    # Fewest and most runs (seeds) in one cell.
    fewest_seeds: int
    most_seeds: int
    # Pooled within-cell standard deviation: sqrt(sum of squared deviations of every run from its
    # cell's mean / degrees_of_freedom), degrees_of_freedom = sum over cells of (seeds - 1).
    pooled_sd: float
    degrees_of_freedom: int
    # The widest max - min of the losses of one cell, and the first run of that cell.
    largest_range: float
    largest_range_run: str

    def describe(self, loss_column: str) -> str:
        seeds = (f"{self.most_seeds}" if self.fewest_seeds == self.most_seeds
                 else f"{self.fewest_seeds}-{self.most_seeds}")
        return (f"Seeds: {seeds} per cell ({self.runs} runs in {self.cells} cells); seed-to-seed standard "
                f"deviation of `{loss_column}` {format_number(self.pooled_sd)} nats (pooled within cells, "
                f"{self.degrees_of_freedom} degrees of freedom); largest spread within one cell "
                f"{format_number(self.largest_range)} nats (max - min, the cell of `{self.largest_range_run}`).")

    def to_json(self) -> dict:
        return {"cells": self.cells, "runs": self.runs, "seeds_per_cell": [self.fewest_seeds, self.most_seeds],
                "pooled_sd": self.pooled_sd, "degrees_of_freedom": self.degrees_of_freedom,
                "largest_range": self.largest_range, "largest_range_run": self.largest_range_run}


def seed_spread(runs: RunTable) -> SeedSpread | None:
    """The spread of the final loss within cells, or None when no cell has more than one run."""
    if not runs.has_replicates:
        return None
    cells = runs.cell_ids()
    seeds = np.bincount(cells)
    degrees_of_freedom = int(len(runs) - seeds.size)  # each cell's mean uses up one
    deviations = runs.loss - (np.bincount(cells, runs.loss) / seeds)[cells]
    pooled_sd = math.sqrt(float(np.sum(deviations ** 2)) / degrees_of_freedom)
    ranges = np.array([np.ptp(runs.loss[cells == cell]) for cell in range(seeds.size)])
    widest = int(np.argmax(ranges))
    return SeedSpread(cells=int(seeds.size), runs=len(runs), fewest_seeds=int(seeds.min()),
                      most_seeds=int(seeds.max()), pooled_sd=pooled_sd, degrees_of_freedom=degrees_of_freedom,
                      largest_range=float(ranges[widest]),
                      largest_range_run=runs.run_ids[int(np.flatnonzero(cells == widest)[0])])


@dataclass(frozen=True)
class LackOfFit:
    """How far a level's cells sit from its fitted surface, against how far its seeds sit from each
    other: the classical lack-of-fit test. A surface that misses the cells by no more than seed
    noise is as good as these runs can tell; one that misses them by more has the wrong form for
    them (or a setting that varies along the grid): more seeds would narrow its intervals around a
    biased fit. The pooled pure error assumes every cell's seeds spread alike."""

    cells: int
    fitted_parameters: int
    # Root-mean-square distance of the cells' mean losses from the surface, in nats.
    rms_nats: float
    # With seed replicates (None otherwise): F = (lack-of-fit SS / df_lack) / (pure-error SS /
    # df_pure) on log loss, the scale of the fit; p from the F distribution.
    f_statistic: float | None = None
    df_lack: int | None = None
    df_pure: int | None = None
    p_value: float | None = None
    # Why there is no test, when there is none.
    untested: str = ""

    def describe(self) -> str:
        text = f"the cells sit {format_number(self.rms_nats)} nats (rms) from the fitted surface"
        if self.f_statistic is None:
            return text + f" ({self.untested}: no test of seed noise against misfit)"
        verdict = ("more than seed noise explains: the surface's form misses these cells"
                   if self.p_value < SIGNIFICANCE_LEVEL else "no evidence of misfit beyond seed noise")
        return (text + f"; lack of fit against the seeds' spread F = {self.f_statistic:.2f} ({self.df_lack} and "
                f"{self.df_pure} degrees of freedom), p = {format_p(self.p_value)}: {verdict} (least "
                "squares on log loss; the fit itself minimises a Huber loss)")

    def to_json(self) -> dict:
        return {"cells": self.cells, "fitted_parameters": self.fitted_parameters, "rms_nats": self.rms_nats,
                "f_statistic": self.f_statistic, "df_lack": self.df_lack, "df_pure": self.df_pure,
                "p_value": self.p_value, "untested": self.untested or None}


def lack_of_fit(runs: RunTable, predicted_log_loss: np.ndarray, fitted_parameters: int) -> LackOfFit:
    """predicted_log_loss: the surface's log loss at each cell, in RunTable.cell_means order (the
    order approach 3 fits and predicts in)."""
    cells = runs.cell_ids()
    seeds = np.bincount(cells)
    predicted = np.asarray(predicted_log_loss, dtype=float)
    if predicted.shape != seeds.shape:
        raise ValueError(f"{predicted.size} predictions for {seeds.size} cells")
    mean_loss = np.bincount(cells, runs.loss) / seeds
    rms = math.sqrt(float(np.mean((mean_loss - np.exp(predicted)) ** 2)))
    df_lack = int(seeds.size - fitted_parameters)
    df_pure = int(len(runs) - seeds.size)
    log_loss = np.log(runs.loss)
    mean_log = np.bincount(cells, log_loss) / seeds
    pure = float(np.sum((log_loss - mean_log[cells]) ** 2))
    untested = ("one seed per cell" if df_pure < 1 else
                f"{seeds.size} cells for {fitted_parameters} fitted parameters" if df_lack < 1 else
                "every cell's seeds give the same loss" if pure == 0.0 else "")
    if untested:
        return LackOfFit(cells=int(seeds.size), fitted_parameters=fitted_parameters, rms_nats=rms,
                         untested=untested)
    lack = float(np.sum(seeds * (mean_log - predicted) ** 2))
    statistic = (lack / df_lack) / (pure / df_pure)
    return LackOfFit(cells=int(seeds.size), fitted_parameters=fitted_parameters, rms_nats=rms,
                     f_statistic=statistic, df_lack=df_lack, df_pure=df_pure,
                     p_value=float(f_distribution.sf(statistic, df_lack, df_pure)))
