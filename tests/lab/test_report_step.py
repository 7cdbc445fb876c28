"""lab.sweep.report_step: a rerun keeps the report when nothing it reads changed, redraws otherwise."""
from pathlib import Path

import pytest

import analysis.report
from analysis.synthetic import TrueSurface, isoflop_rows, write_grid
from lab.sweep import report_step

SURFACE = TrueSurface()


@pytest.fixture()
def grid(tmp_path, monkeypatch) -> Path:
    monkeypatch.setattr(report_step, "BOOTSTRAP", 10)  # a real report, drawn quickly
    rows = isoflop_rows(SURFACE, [1e13, 1e14, 1e15], sizes_per_budget=5, noise=0.01, seed=0)
    grid = write_grid(tmp_path / "grid", rows, SURFACE, logged_steps=4)
    report_step.write_or_reuse_report(grid, log=lambda *_: None)  # the first report, really drawn
    assert (grid / "report" / "report.md").is_file() and (grid / "report" / report_step.INPUTS_FILE).is_file()
    return grid


@pytest.fixture()
def redraws(monkeypatch) -> list:
    """Records each redraw instead of fitting again (the first report is real, see `grid`)."""
    calls = []

    def counting(grid_dir, **settings):
        calls.append(settings)
        return Path(grid_dir) / "report" / "report.md"

    monkeypatch.setattr(analysis.report, "write_report", counting)
    return calls


def test_unchanged_inputs_keep_the_report(grid, redraws):
    said = []
    report_step.write_or_reuse_report(grid, log=said.append)
    assert redraws == [] and "kept" in said[0]


@pytest.mark.parametrize("change", ["results", "curve", "settings", "report_gone", "stamp_gone",
                                    "report_redrawn_elsewhere", "figure_gone", "ledger"])
def test_any_change_redraws_it(grid, redraws, monkeypatch, change):
    if change == "results":
        results = grid / "results.csv"  # a run retrained or added: its row differs
        rows = results.read_text().splitlines()
        results.write_text("\n".join(rows[:-1]) + "\n")
    elif change == "curve":
        metrics = sorted((grid / "runs").glob("*/metrics.jsonl"))[0]
        metrics.write_text(metrics.read_text() + metrics.read_text().splitlines()[-1] + "\n")
    elif change == "settings":
        monkeypatch.setattr(report_step, "BOOTSTRAP", 11)
    elif change == "report_gone":
        (grid / "report" / "report.md").unlink()
    elif change == "report_redrawn_elsewhere":  # python -m analysis.report with other settings
        report = grid / "report" / "report.md"
        report.write_text(report.read_text() + "drawn with other settings\n")
    elif change == "ledger":  # the grid's compute.json, which the report's header states
        (grid / "compute.json").write_text('{"spent_flops": 1, "independent_flops": 2, "ratio": 0.5}')
    elif change == "figure_gone":
        sorted((grid / "report" / "figures").glob("*.png"))[0].unlink()
    else:
        (grid / "report" / report_step.INPUTS_FILE).unlink()
    report_step.write_or_reuse_report(grid, log=lambda *_: None)
    assert len(redraws) == 1


def test_a_change_in_the_analysis_code_redraws_it(grid, tmp_path):
    code = tmp_path / "analysis_copy"
    code.mkdir()
    (code / "fit.py").write_text("x = 1\n")
    before = report_step.inputs_digest(grid, code)
    (code / "fit.py").write_text("x = 2\n")
    assert report_step.inputs_digest(grid, code) != before
