"""The grid's one door into `analysis`: write the scaling report at the end of a grid, or keep
the one already there when nothing it reads has changed, so a rerun that trains nothing returns
at once. No other module of `lab` imports `analysis` (tests/test_layers.py holds it so)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from common.files import atomic_write_text

# The report's settings when a grid writes it (python -m analysis.report takes its own).
BOOTSTRAP = 200
SEED = 0
INPUTS_FILE = "inputs.sha256"  # beside report.md: the digest of what the report was drawn from


def write_or_reuse_report(grid_dir: Path, log=print) -> None:
    try:
        import analysis
        from analysis.report import write_report
    except ImportError as e:  # the analysis package is optional for training
        log(f"report skipped: {e}")
        return
    report_dir = grid_dir / "report"
    key = inputs_digest(grid_dir, Path(analysis.__file__).parent)
    stamp = report_dir / INPUTS_FILE
    if (report_dir / "report.md").is_file() and stamp.is_file() and stamp.read_text().strip() == key:
        log(f"report: {report_dir / 'report.md'} (unchanged inputs, kept)")
        return
    stamp.unlink(missing_ok=True)  # a redraw killed half way must not pass for a finished one
    path = write_report(grid_dir, bootstrap=BOOTSTRAP, seed=SEED)
    atomic_write_text(stamp, key + "\n")
    log(f"report: {path}")


def inputs_digest(grid_dir: Path, analysis_dir: Path) -> str:
    """sha256 over everything the report reads: results.csv, the settings, each listed run's loss
    curve (metrics.jsonl, by size and mtime) and the analysis code itself, so any change redraws."""
    h = hashlib.sha256()
    results = grid_dir / "results.csv"
    h.update(results.read_bytes() if results.is_file() else b"<no results.csv>")
    h.update(json.dumps({"bootstrap": BOOTSTRAP, "seed": SEED}).encode())
    for metrics in sorted((grid_dir / "runs").glob("*/metrics.jsonl")):
        stat = metrics.stat()
        h.update(f"{metrics.parent.name} {stat.st_size} {stat.st_mtime_ns}\n".encode())
    for source in sorted(analysis_dir.rglob("*.py")):
        h.update(str(source.relative_to(analysis_dir)).encode() + b"\0" + source.read_bytes())
    return h.hexdigest()
