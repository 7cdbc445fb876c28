"""The grid's one door into `analysis`: write the scaling report at the end of a grid, or keep
the one already there when nothing it reads has changed, so a rerun that trains nothing returns
at once. No other module of `lab` imports `analysis` (tests/test_layers.py holds it so)."""
from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path

from common.files import atomic_write_text

# The report's settings when a grid writes it (python -m analysis.report takes its own).
BOOTSTRAP = 200
SEED = 0
RULE_FILE = "lr_rule.json"  # a learning-rate sweep's rule, beside its report (analysis.lr_sweep)
INPUTS_FILE = "inputs.sha256"  # beside report.md: the digest of what the report was drawn from


def write_or_reuse_report(grid_dir: Path, log=print, kind: str = "token_budget") -> bool:
    """Write (or keep) the grid's report; False when a learning-rate sweep's rule is refused."""
    try:
        import analysis
        from analysis.lr_sweep import write_sweep_report
        from analysis.report import write_report
    except ImportError as e:  # the analysis package is optional for training
        log(f"report skipped: {e}")
        return True
    report_dir = grid_dir / "report"
    key = inputs_digest(grid_dir, Path(analysis.__file__).parent, kind)
    stamp = report_dir / INPUTS_FILE
    # The stamp names the outputs too: a report redrawn since by `python -m analysis.report`
    # with other settings, or a deleted figure, is not the one these inputs gave.
    if (report_dir / "report.md").is_file() and stamp.is_file() and \
            stamp.read_text().split() == [key, outputs_digest(report_dir)]:
        log(f"report: {report_dir / 'report.md'} (unchanged inputs, kept)")
        if kind == "lr_sweep" and not (report_dir / RULE_FILE).is_file():  # say again why there is none
            refusal = [line for line in (report_dir / "report.md").read_text().splitlines() if line.startswith("**No rule")]
            log(f"error: no learning-rate rule: {refusal[0].strip('*.').removeprefix('No rule: ') if refusal else 'see the report'}")
            return False
        return True
    stamp.unlink(missing_ok=True)  # a redraw killed half way must not pass for a finished one
    problem = None
    if kind == "lr_sweep":  # a sweep's product is a learning-rate rule, not a scaling fit
        path, problem = write_sweep_report(grid_dir)
    else:
        path = write_report(grid_dir, bootstrap=BOOTSTRAP, seed=SEED)
    atomic_write_text(stamp, f"{key}\n{outputs_digest(report_dir)}\n")
    log(f"report: {path}")
    if problem:
        log(f"error: no learning-rate rule: {problem}")
    elif kind == "lr_sweep":
        log(f"learning-rate rule: {report_dir / RULE_FILE} (train.lr=auto train.lr_rule=<this file>)")
    return problem is None


def inputs_digest(grid_dir: Path, analysis_dir: Path, kind: str = "token_budget") -> str:
    """sha256 over everything the report reads: results.csv, compute.json, the settings, the grid's name (its
    title), each run's loss curve (metrics.jsonl, by size and mtime), the analysis code and the
    numerical libraries' versions, so any change redraws."""
    h = hashlib.sha256()
    results = grid_dir / "results.csv"
    h.update(results.read_bytes() if results.is_file() else b"<no results.csv>")
    ledger = grid_dir / "compute.json"
    h.update(ledger.read_bytes() if ledger.is_file() else b"<no compute.json>")
    h.update(json.dumps({"bootstrap": BOOTSTRAP, "seed": SEED, "grid": grid_dir.name, "kind": kind,
                         "versions": [_version(name) for name in ("numpy", "scipy", "matplotlib")]}).encode())
    for metrics in sorted((grid_dir / "runs").glob("*/metrics.jsonl")):
        stat = metrics.stat()
        h.update(f"{metrics.parent.name} {stat.st_size} {stat.st_mtime_ns}\n".encode())
    for source in sorted(analysis_dir.rglob("*.py")):
        h.update(str(source.relative_to(analysis_dir)).encode() + b"\0" + source.read_bytes())
    return h.hexdigest()


def outputs_digest(report_dir: Path) -> str:
    """sha256 over every file of the report (names and bytes), the stamp itself left out."""
    h = hashlib.sha256()
    for path in sorted(p for p in report_dir.rglob("*") if p.is_file() and p.name != INPUTS_FILE):
        h.update(str(path.relative_to(report_dir)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "none"
