"""The scaling report of a grid directory: fits, tables, figures, in <grid dir>/report/.

    python -m analysis.report <grid dir> [--bootstrap N] [--seed S] [--permutations N]

Reads <grid dir>/results.csv and the loss curves in <grid dir>/runs/<run_id>/metrics.jsonl,
writes report/report.md, report/fits.json and report/figures/*.{png,pdf,json}, and prints the
report's path. A part the runs cannot support (one quality level, too few points, no IsoFLOP
grouping, no run directories) is skipped with a printed reason; the rest is still written.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from analysis import figures, report_text
from analysis.pipeline import FitRequest, LevelFits, TableFits, fit_table
from analysis.quality import DEFAULT_PERMUTATIONS
from analysis.table import InsufficientData, LoadedTable, read_curves, read_table
from common.errors import EXIT_BAD_INPUT, ConfigError


def _say(note: str, notes: list[str]) -> None:
    """Skips are printed as they happen and collected for the report's Notes section."""
    print(f"note: {note}")
    notes.append(note)


def _fit(table: LoadedTable, request: FitRequest, notes: list[str]) -> TableFits | None:
    """Every fit the table supports (None when it supports none), each skip said as a note."""
    try:
        fits = fit_table(table, request)
    except InsufficientData as reason:
        if table.exclusion_note():
            _say(table.exclusion_note(), notes)
        _say(f"no fits: {reason}", notes)
        return None
    for note in fits.notes:
        _say(note, notes)
    for level in fits.levels:
        for approach, reason in sorted(level.skipped.items()):
            _say(f"[{level.label}] approach {approach} skipped: {reason}", notes)
    if fits.quality_skipped:
        _say(f"quality analysis skipped: {fits.quality_skipped}", notes)
    return fits


def _level_figures(level: LevelFits, suffix: str, curves, directory: Path, notes: list[str]) -> dict[str, str]:
    """Figures of one quality level; returns title -> relative path of the PNG."""
    made: dict[str, str] = {}

    def keep(title: str, paths: list[Path]) -> None:
        made[title] = f"figures/{paths[0].name}"

    level_curves = [c for c in curves if c.run_id in set(level.runs.run_ids)]
    keep(f"loss against compute ({level.label})",
         figures.plot_loss_vs_compute(level, level_curves, directory, f"loss_vs_compute{suffix}"))
    if level.isoflop is not None:
        keep(f"IsoFLOP profiles ({level.label})",
             figures.plot_isoflop(level.isoflop, level.isoflop.points, directory, f"isoflop{suffix}"))
    else:
        _say(f"figure isoflop{suffix} skipped: no approach 2 fit", notes)
    if level.envelope or level.isoflop or level.surface:
        keep(f"optimal allocation ({level.label})", figures.plot_allocation(level, directory, f"allocation{suffix}"))
    if level.surface is not None:
        keep(f"residuals of the parametric fit ({level.label})",
             figures.plot_residuals(level.surface, directory, f"residuals{suffix}"))
    else:
        _say(f"figure residuals{suffix} skipped: no approach 3 fit", notes)
    return made


def _figures(grid_dir: Path, table: LoadedTable, fits: TableFits | None, directory: Path,
             notes: list[str]) -> tuple[list[dict[str, str]], dict[str, str | None]]:
    """Every figure the runs support: per quality level, and the grid-wide ones (loss curves,
    quality, minimal pairs) by title; paths relative to the report directory."""
    curves, curve_notes = read_curves(grid_dir, table.runs)
    for note in curve_notes:
        _say(note, notes)
    extra_figures: dict[str, str | None] = {}
    if curves:
        extra_figures["loss curves"] = f"figures/{figures.plot_loss_curves(curves, directory)[0].name}"
    else:
        _say("figure loss_curves skipped: no run has a metrics.jsonl", notes)
    level_figures = []
    if fits is not None:
        many_levels = len(fits.levels) > 1
        for level in fits.levels:
            suffix = f"_q{level.quality:g}" if many_levels else ""
            level_figures.append(_level_figures(level, suffix, curves, directory, notes))
        if fits.quality is not None:
            graded = table.runs.subset(~np.isnan(table.runs.quality))
            extra_figures["quality"] = f"figures/{figures.plot_quality(fits.quality, graded, directory)[0].name}"
    if np.any(~np.isnan(table.runs.pairs_acc)):
        extra_figures["pairs"] = f"figures/{figures.plot_pairs(table.runs, directory)[0].name}"
    return level_figures, extra_figures


def _markdown(fits: TableFits | None, table: LoadedTable, grid_dir: Path, n_boot: int, seed: int,
              notes: list[str], level_figures: list[dict[str, str]], extra_figures: dict[str, str | None]
              ) -> str:
    ledger_path = grid_dir / "compute.json"  # written by a grid (lab.sweep.branching): what it spent
    ledger = json.loads(ledger_path.read_text()) if ledger_path.is_file() else None
    lines = report_text.report_header(fits, table, grid_dir.name, n_boot, seed, ledger)
    lines += ["## Notes", ""] + ([f"- {note}" for note in notes] or ["- none"]) + [""]
    if extra_figures.get("loss curves"):
        lines += ["## Loss curves", "", f"![loss curves]({extra_figures['loss curves']})", ""]
    if fits is not None:
        for level, made in zip(fits.levels, level_figures):
            lines += report_text.level_section(level, fits.budget, made)
        if fits.quality is not None:
            lines += report_text.quality_section(fits.quality, extra_figures.get("quality"))
    if extra_figures.get("pairs"):
        lines += ["## Minimal-pair accuracy (synthetic pairs)", "",
                  "Accuracy on minimal pairs generated from each run's own corpus grammar, in BLiMP's "
                  "format; not the BLiMP benchmark.", "",
                  f"![minimal-pair accuracy (synthetic pairs)]({extra_figures['pairs']})", ""]
    lines += ["## Runs", ""] + report_text.runs_table(table) + [""]
    lines += report_text.references_section()
    return "\n".join(lines)


def _print_summary(fits: TableFits | None, report_dir: Path, level_figures: list[dict[str, str]],
                   extra_figures: dict[str, str | None]) -> None:
    if fits is not None:
        print("fitted law (95% bootstrap intervals; every number in report.md and fits.json):")
        print("\n".join("  " + line for line in report_text.law_lines(fits)))
    made = [path for figs in level_figures for path in figs.values()] + [p for p in extra_figures.values() if p]
    print("figures:" + "".join(f"\n  {report_dir / path}" for path in made))


def write_report(grid_dir: Path, *, bootstrap: int = 200, seed: int = 0,
                 permutations: int = DEFAULT_PERMUTATIONS) -> Path:
    """Fit, plot and write <grid_dir>/report/report.md; returns its path.

    Raises ConfigError only when results.csv is missing or unreadable; every other shortfall is a
    printed note and a skipped section.
    """
    grid_dir = Path(grid_dir)
    report_dir = grid_dir / "report"
    # Named relative to the grid so that a moved or copied grid rebuilds byte-identical files.
    table = replace(read_table(grid_dir / "results.csv"), source="results.csv")
    notes: list[str] = []
    fits = _fit(table, FitRequest(n_boot=bootstrap, seed=seed, n_perm=permutations), notes)
    level_figures, extra_figures = _figures(grid_dir, table, fits, report_dir / "figures", notes)
    report_dir.mkdir(parents=True, exist_ok=True)
    if fits is not None:
        (report_dir / "fits.json").write_text(json.dumps(report_text.fits_to_json(fits), indent=1) + "\n")
    report = report_dir / "report.md"
    report.write_text(_markdown(fits, table, grid_dir, bootstrap, seed, notes, level_figures, extra_figures))
    _print_summary(fits, report_dir, level_figures, extra_figures)
    return report


def copy_headline(report_dir: Path, target: Path) -> None:
    """The allocation figure (ours beside Chinchilla's and Epoch's laws) answers the lab's question
    in one picture; with several quality levels, the highest level's."""
    # The ones report.md links: figures/ may still hold another level's from an earlier report.
    candidates = re.findall(r"\]\((figures/allocation[^)]*\.png)\)", (report_dir / "report.md").read_text())
    if not candidates:
        raise ConfigError("headline", f"{report_dir} has no allocation figure (no fit of approach 1, 2 or 3)")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(report_dir / candidates[-1], target)  # levels are listed by quality, ascending


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.report", description=__doc__.splitlines()[0])
    parser.add_argument("grid_dir", type=Path)
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--permutations", type=int, default=DEFAULT_PERMUTATIONS,
                        help="relabelings behind each test of a quality difference in an exponent")
    parser.add_argument("--headline", type=Path, metavar="PNG",
                        help="also copy the compute-optimal allocation figure here (the README's picture)")
    args = parser.parse_args(argv)
    try:
        if args.bootstrap < 0:
            raise ConfigError("bootstrap", f"must be >= 0, got {args.bootstrap}")
        if args.permutations < 0:
            raise ConfigError("permutations", f"must be >= 0, got {args.permutations}")
        if not args.grid_dir.is_dir():
            raise ConfigError("grid_dir", f"no such directory: {args.grid_dir}")
        path = write_report(args.grid_dir, bootstrap=args.bootstrap, seed=args.seed,
                            permutations=args.permutations)
        if args.headline is not None:
            copy_headline(path.parent, args.headline)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
