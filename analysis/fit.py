"""Command line: scaling-law fits of a table of runs.

    python -m analysis.fit TABLE.csv [--approach 1|2|3|all] [--json] [--bootstrap N] [--seed S]
                                     [--budget C] [--params-column params|non_embedding_params]
                                     [--permutations N]
                                     [--no-repeat-correction] [--fit-repeat-decay]

Bad input prints one line ``error: ...`` and exits 2. With --json, stdout holds one JSON object
and the notes (excluded runs, skipped fits) go to stderr.
"""
from __future__ import annotations

import argparse
import json
import sys

from analysis.approach3 import SurfaceOptions
from analysis.cli import OneLineParser, bad_input
from analysis.pipeline import APPROACHES, FitRequest, TableFits, fit_table
from analysis.quality import DEFAULT_PERMUTATIONS
from analysis.report_text import fits_to_json, summary_lines
from analysis.table import PARAMS_COLUMNS, InsufficientData, read_table
from common.errors import ConfigError


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m analysis.fit", description=__doc__.splitlines()[0])
    parser.add_argument("table", help="CSV with params, tokens and loss (or final_val_loss) columns")
    parser.add_argument("--approach", choices=["1", "2", "3", "all"], default="all")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap refits (default 1000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--permutations", type=int, default=DEFAULT_PERMUTATIONS,
                        help="relabelings behind each test of a quality difference in an exponent "
                             f"(default {DEFAULT_PERMUTATIONS})")
    parser.add_argument("--budget", type=float, default=None,
                        help="compute C = 6ND (FLOPs) at which to report allocations (default: a power of "
                             "ten near the median run)")
    parser.add_argument("--params-column", choices=PARAMS_COLUMNS, default="params")
    parser.add_argument("--no-repeat-correction", action="store_true",
                        help="use raw tokens even when runs repeated data (epochs > 1)")
    parser.add_argument("--fit-repeat-decay", action="store_true",
                        help="fit Muennighoff's R_D* instead of fixing it at 15.4")
    return parser


def _request(args: argparse.Namespace) -> FitRequest:
    if args.bootstrap < 0:
        raise ConfigError("bootstrap", f"must be >= 0, got {args.bootstrap}")
    if args.permutations < 0:
        raise ConfigError("permutations", f"must be >= 0, got {args.permutations}")
    if args.budget is not None and not args.budget > 0:
        raise ConfigError("budget", f"must be > 0, got {args.budget}")
    approaches = APPROACHES if args.approach == "all" else (int(args.approach),)
    return FitRequest(approaches=approaches, n_boot=args.bootstrap, seed=args.seed, budget=args.budget,
                      n_perm=args.permutations,
                      surface=SurfaceOptions(repeat_correction=not args.no_repeat_correction,
                                             fit_repeat_decay=args.fit_repeat_decay))


def _require_some_fit(fits: TableFits) -> None:
    """A single requested approach that failed everywhere, or nothing fitted at all, is an error."""
    fitted = any(level.envelope or level.isoflop or level.surface for level in fits.levels)
    if not fitted:
        reasons = {reason for level in fits.levels for reason in level.skipped.values()}
        raise InsufficientData("; ".join(sorted(reasons)))


def _notes(fits: TableFits) -> list[str]:
    notes = list(fits.notes)
    for level in fits.levels:
        notes += [f"[{level.label}] approach {approach} skipped: {reason}"
                  for approach, reason in sorted(level.skipped.items())]
    if fits.quality_skipped is not None:
        notes.append(f"quality analysis skipped: {fits.quality_skipped}")
    return notes


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        request = _request(args)
        table = read_table(args.table, params_column=args.params_column)
        fits = fit_table(table, request)
        _require_some_fit(fits)
    except (ConfigError, InsufficientData) as error:
        return bad_input(error)
    if args.json:
        for note in _notes(fits):
            print(f"note: {note}", file=sys.stderr)
        print(json.dumps(fits_to_json(fits), indent=2))
    else:
        print("\n".join(summary_lines(fits)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
