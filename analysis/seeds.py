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

from analysis.intervals import format_number
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
