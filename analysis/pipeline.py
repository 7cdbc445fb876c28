"""Every fit a table supports, with the reason for each one it does not.

Runs of different data quality are never pooled into one envelope, profile or surface: Approaches
1-3 are fitted per quality level, and the levels are tied together only by the joint quality fits.

Runs past one epoch are left out of Approaches 1 and 2 (and said so in a note); only Approach 3
corrects them, with Muennighoff's effective data. The envelope and the IsoFLOP profiles are there
to check Approach 3 without its model: correcting their runs would import Muennighoff's decay
constant (fitted at another scale) into both, make their agreement with Approach 3 partly
circular, and move a repeated run off the compute of the profile it was planned in.

Runs that differ only in their seed (grid.seeds) are replicates of one grid cell: every approach
fits each cell once, at its seeds' mean loss (RunTable.cell_means), so the bootstrap draws cells
(analysis.intervals), and the report states the seed-to-seed spread (analysis.seeds).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from analysis.approach1 import AllocationLawResult, run_envelope
from analysis.approach2 import IsoflopResult, run_isoflop
from analysis.approach3 import SurfaceOptions, SurfaceResult, run_surface
from analysis.quality import (
    DEFAULT_PERMUTATIONS,
    QualityResult,
    level_stream,
    run_quality,
)
from analysis.table import InsufficientData, LoadedTable, RunTable

APPROACHES = (1, 2, 3)


@dataclass(frozen=True)
class FitRequest:
    approaches: tuple[int, ...] = APPROACHES
    n_boot: int = 200
    seed: int = 0
    # Reference compute for allocations; None picks a round number inside the table's range.
    budget: float | None = None
    surface: SurfaceOptions = field(default_factory=SurfaceOptions)
    # Relabelings behind each permutation test of a quality difference in an exponent.
    n_perm: int = DEFAULT_PERMUTATIONS


@dataclass(frozen=True)
class LevelFits:
    """Fits on the runs of one quality level (quality None: the table records no quality)."""

    quality: float | None
    runs: RunTable
    envelope: AllocationLawResult | None = None
    isoflop: IsoflopResult | None = None
    surface: SurfaceResult | None = None
    # Approach number -> why it was not fitted.
    skipped: dict[int, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return "all runs" if self.quality is None else f"quality {self.quality:g}"


@dataclass(frozen=True)
class TableFits:
    table: LoadedTable
    request: FitRequest
    budget: float
    levels: list[LevelFits]
    quality: QualityResult | None
    # Why there is no quality analysis (None when there is one, or approach 3 was not asked for).
    quality_skipped: str | None
    notes: list[str]


def default_budget(runs: RunTable) -> float:
    """A power of ten near the median compute C = 6 N D of the runs (reported allocations sit in range)."""
    return float(10.0 ** np.round(np.median(np.log10(runs.compute))))


def repeated_data_note(runs: RunTable) -> str | None:
    """What Approaches 1 and 2 leave out, or None when every run stays under one epoch."""
    repeated = int(runs.past_one_epoch.sum())
    if not repeated:
        return None
    return (f"approaches 1 and 2 leave out {repeated} of {len(runs)} runs that trained past one epoch "
            "(repeated data; only approach 3 corrects for it, with Muennighoff's effective data)")


def _fit_level(runs: RunTable, quality: float | None, request: FitRequest, budget: float,
               stream: tuple[int, ...] = ()) -> LevelFits:
    results: dict[str, object] = {}
    skipped: dict[int, str] = {}
    fitters = {1: ("envelope", run_envelope), 2: ("isoflop", run_isoflop)}
    fresh = runs.subset(~runs.past_one_epoch)
    for approach in request.approaches:
        try:
            if approach == 3:
                results["surface"] = run_surface(runs, budget=budget, n_boot=request.n_boot,
                                                 seed=request.seed, options=request.surface, stream=stream)
            else:
                if len(fresh) == 0:
                    raise InsufficientData("every run trained past one epoch, and approaches 1 and 2 use "
                                           "only runs under one (repeated data)")
                name, fitter = fitters[approach]
                results[name] = fitter(fresh, budget=budget, n_boot=request.n_boot, seed=request.seed)
        except InsufficientData as reason:
            skipped[approach] = str(reason)
    return LevelFits(quality=quality, runs=runs, skipped=skipped, **results)


def fit_table(table: LoadedTable, request: FitRequest = FitRequest()) -> TableFits:
    runs = table.runs
    if len(runs) == 0:
        raise InsufficientData(f"{table.source}: no usable runs (every run was excluded)")
    notes = [note for note in [table.exclusion_note()] if note]
    if {1, 2} & set(request.approaches) and (note := repeated_data_note(runs)):
        notes.append(note)
    budget = request.budget if request.budget is not None else default_budget(runs)
    levels_present = runs.quality_levels()
    if len(levels_present) >= 2 and np.any(np.isnan(runs.quality)):
        notes.append(f"{int(np.isnan(runs.quality).sum())} runs without a quality value are left out "
                     "of the per-quality fits")
    if len(levels_present) >= 2:
        levels = [_fit_level(runs.subset(runs.quality == q), q, request, budget, level_stream(i))
                  for i, q in enumerate(levels_present)]
    else:
        label = levels_present[0] if levels_present else None
        unlabelled = int(np.isnan(runs.quality).sum())
        if label is not None and unlabelled:  # one fit over both: it is not that level's fit
            notes.append(f"{unlabelled} runs without a quality value are fitted together with the "
                         f"quality {label:g} runs, so the fit carries no quality label")
            label = None
        levels = [_fit_level(runs, label, request, budget)]

    quality, quality_skipped = None, None
    if 3 in request.approaches:
        try:
            graded = runs.subset(~np.isnan(runs.quality))
            per_level = {level.quality: level.surface for level in levels if level.surface is not None}
            quality = run_quality(graded, budget=budget, n_boot=request.n_boot, seed=request.seed,
                                  options=request.surface, per_level=per_level, n_perm=request.n_perm)
        except InsufficientData as reason:
            quality_skipped = str(reason)
    return TableFits(table=table, request=request, budget=budget, levels=levels, quality=quality,
                     quality_skipped=quality_skipped, notes=notes)
