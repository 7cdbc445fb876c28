"""analysis.report: the full report on a synthetic grid, byte-identical rebuilds, degraded inputs."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analysis.report import write_report
from analysis.synthetic import TrueSurface, isoflop_rows, write_grid, write_results_csv

ROOT = Path(__file__).resolve().parents[2]
SURFACE = TrueSurface(quality_gamma=-1.0)
# Few relabelings keep the tests quick; the rebuild must use the same to be byte-identical.
PERMUTATIONS = 30


@pytest.fixture(scope="module")
def grid(tmp_path_factory) -> Path:
    # Both levels on the same (N, D) cells, as a data-quality grid trains them: matched runs.
    rows = isoflop_rows(SURFACE, [1e13, 1e14, 1e15], sizes_per_budget=6, noise=0.01, seed=0,
                        qualities=(0.0, 1.0), centre_quality=1.0)
    rows[0]["status"], rows[0]["final_val_loss"] = "diverged", ""
    for i, row in enumerate(rows):
        row["pairs_acc"] = 0.6 + 0.01 * (i % 5)
    return write_grid(tmp_path_factory.mktemp("grid") / "grid", rows, SURFACE, logged_steps=5)


@pytest.fixture(scope="module")
def report(grid) -> Path:
    return write_report(grid, bootstrap=20, seed=0, permutations=PERMUTATIONS)


def test_report_has_every_section_and_figure(report, capsys):
    text = report.read_text()
    assert report == report.parent.parent / "report" / "report.md"
    for heading in ("## Notes", "## Loss curves", "## Fits: quality 0", "## Fits: quality 1",
                    "### Approach 1", "### Approach 2", "### Approach 3", "## Data quality",
                    "## Minimal-pair accuracy (synthetic pairs)", "## Runs", "## References"):
        assert heading in text, heading
    assert "BLiMP-style" not in text and "not the BLiMP benchmark" in text
    assert "q0-e1-C1e13" in text and "diverged" in text
    assert "Epoch 0.3478 ± 0.02" in text and "Besiroglu" in text
    # One compute for every approach, and how far the recorded training FLOPs (with the synthetic
    # attention-like term) sit from it.
    header = text.split("## Notes")[0]
    assert "Compute is C = 6ND (N = `params`, D = `tokens`) in all three approaches" in header
    assert "x 6ND on these runs" in header and "1.00-1.00x" not in header
    # The quality section's permutation test of each exponent difference.
    assert "| beta (data exponent) |" in text and "label-permutation null" in text
    assert f"refitted {PERMUTATIONS} times" in text
    figures = report.parent / "figures"
    for name in ("loss_curves", "isoflop_q0", "isoflop_q1", "loss_vs_compute_q1", "allocation_q0",
                 "residuals_q1", "quality", "pairs"):
        for suffix in ("png", "pdf", "json"):
            assert (figures / f"{name}.{suffix}").stat().st_size > 0, f"{name}.{suffix}"
        assert f"figures/{name}.png" in text
    fits = json.loads((report.parent / "fits.json").read_text())
    assert fits["quality"]["web_tokens_per_textbook_token"]["joint exponential"]["value"] > 1
    beta_test = fits["quality"]["exponent_differences"]["beta"]
    assert beta_test["permutations"] == PERMUTATIONS and 0 < beta_test["p_value"] <= 1
    assert beta_test["matched_groups"] == 17  # 18 cells; one q=0 run diverged
    pairs = json.loads((figures / "pairs.json").read_text())
    assert len(pairs["pairs_acc"]) == 35 and "blimp_acc" not in pairs


def test_figure_json_holds_the_plotted_numbers_and_run_ids(report, grid):
    figures = report.parent / "figures"
    isoflop = json.loads((figures / "isoflop_q1.json").read_text())
    assert len(isoflop["profiles"]) == 3
    profile = isoflop["profiles"][0]
    assert len(profile["run_ids"]) == len(profile["params"]) == len(profile["loss"]) == 6
    residuals = json.loads((figures / "residuals_q0.json").read_text())
    assert len(residuals["run_ids"]) == 17  # one q=0 run diverged
    assert residuals["rms"] == pytest.approx(np.sqrt(np.mean(np.square(residuals["residual_log_loss"]))))
    curves = json.loads((figures / "loss_curves.json").read_text())
    assert len(curves["runs"]) == 35 and len(curves["runs"][0]["loss"]) == 5


def test_rebuild_in_another_process_is_byte_identical(report, grid, tmp_path):
    """Same runs -> same bytes, whatever the hash seed (the papers build relies on it)."""
    copy = tmp_path / "grid"
    shutil.copytree(grid, copy, ignore=shutil.ignore_patterns("report"))
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONHASHSEED="12345")
    done = subprocess.run([sys.executable, "-m", "analysis.report", str(copy), "--bootstrap", "20",
                           "--permutations", str(PERMUTATIONS)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == str(copy / "report" / "report.md")
    # The console gets the fitted law per level and every figure's path (the grid prints this too).
    out = done.stdout
    for line in ("[quality 1] approach 1: N_opt ~ C^a", "[quality 0] approach 2: N_opt ~ C^a",
                 "[quality 1] approach 3: L(N, D) = E + A/N^alpha + B/D^beta", "[quality] tokens at q=0"):
        assert line in out, line
    printed = [Path(line.strip()) for line in out.split("figures:")[1].splitlines()[1:] if line.startswith("  ")]
    assert copy / "report" / "figures" / "isoflop_q1.png" in printed
    assert printed and all(path.is_file() for path in printed)
    originals = sorted(p.relative_to(report.parent) for p in report.parent.rglob("*") if p.is_file())
    rebuilt = sorted(p.relative_to(copy / "report") for p in (copy / "report").rglob("*") if p.is_file())
    assert originals == rebuilt
    different = [str(p) for p in originals
                 if (report.parent / p).read_bytes() != (copy / "report" / p).read_bytes()]
    assert different == []


def test_too_small_grid_writes_a_report_with_reasons(tmp_path, capsys):
    rows = isoflop_rows(TrueSurface(), [1e14], sizes_per_budget=4, noise=0.01)
    write_results_csv(rows, tmp_path / "results.csv")
    report = write_report(tmp_path, bootstrap=10)
    printed = capsys.readouterr().out
    assert "approach 3 skipped: approach 3 fits 5 parameters and needs at least 6 runs, got 4" in printed
    assert "approach 1 skipped" in printed and "approach 2 skipped" in printed
    assert "no run has a metrics.jsonl" in printed
    text = report.read_text()
    assert "*Approach 3 skipped:*" in text and "## Runs" in text


def test_scatter_design_skips_only_the_isoflop_parts(tmp_path, capsys):
    rng = np.random.default_rng(0)
    params, tokens = 10 ** rng.uniform(5, 6.5, 24), 10 ** rng.uniform(7, 8.5, 24)
    rows = [{"run_id": f"r{i}", "status": "done", "params": p, "tokens": d,
             "final_val_loss": float(TrueSurface().loss(p, d))} for i, (p, d) in enumerate(zip(params, tokens))]
    write_results_csv(rows, tmp_path / "results.csv")
    text = write_report(tmp_path, bootstrap=10).read_text()
    assert "*Approach 2 skipped:*" in text
    assert "### Approach 3" in text and (tmp_path / "report" / "figures" / "residuals.png").is_file()


def test_every_run_failed_still_writes_a_report(tmp_path, capsys):
    rows = isoflop_rows(TrueSurface(), [1e14], sizes_per_budget=3, noise=0.0)
    for row in rows:
        row["status"], row["final_val_loss"] = "failed", ""
    write_results_csv(rows, tmp_path / "results.csv")
    text = write_report(tmp_path).read_text()
    assert "no fits" in capsys.readouterr().out
    assert "excluded 3 of 3 runs" in text


def test_missing_results_is_an_error_line(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "analysis.report", str(tmp_path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.startswith("error: table: no such file")


def test_loss_curve_ends_on_the_final_validation_loss(tmp_path):
    """The trainer logs val_loss in metrics.jsonl only at periodic evaluations (none when
    eval_every=0); the final one is in the results table and must still end the curve."""
    from analysis.table import read_curves, read_table

    rows = isoflop_rows(SURFACE, [1e13], sizes_per_budget=3, noise=0.0, seed=0, qualities=(1.0,))
    grid = write_grid(tmp_path / "grid", rows, SURFACE, logged_steps=4)
    for row in rows:  # strip every val_loss, as a run with eval_every=0 leaves it
        path = grid / "runs" / row["run_id"] / "metrics.jsonl"
        records = [json.loads(line) for line in path.read_text().splitlines()]
        path.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "val_loss"}) + "\n"
                                for r in records))
    curves, notes = read_curves(grid, read_table(grid / "results.csv").runs)
    assert not notes and len(curves) == 3
    expected = {r["run_id"]: (float(r["tokens"]), float(r["final_val_loss"])) for r in rows}
    for curve in curves:
        assert curve.val_tokens.tolist() == [expected[curve.run_id][0]]
        assert curve.val_loss.tolist() == pytest.approx([expected[curve.run_id][1]])


def test_the_header_states_the_compute_a_grid_spent(tmp_path):
    rows = isoflop_rows(SURFACE, [1e13, 1e14], sizes_per_budget=4, noise=0.01, seed=0)
    grid = write_grid(tmp_path / "grid", rows, SURFACE, logged_steps=3)
    (grid / "compute.json").write_text(json.dumps({"spent_flops": 6.3e13, "independent_flops": 1e14,
                                                   "ratio": 0.63}))
    text = write_report(grid, bootstrap=5).read_text()
    assert "Compute spent by the grid: 6.3e+13 training FLOPs, 0.63x the 1e+14" in text


def test_the_header_says_which_fit_criteria_a_level_misses():
    from types import SimpleNamespace

    from analysis.intervals import Estimate
    from analysis.report_text import fit_shortfalls

    def est(value, low, high):
        return Estimate(value, low, high, 200, 0.95)

    surface = {"E": est(1.8, 1.6, 2.0), "alpha": est(0.34, 0.25, 0.45), "beta": est(0.3, 0.2, 0.4),
               "params_exponent": est(0.5, 0.45, 0.55)}
    envelope = SimpleNamespace(optima={"params": [1e5, 1e5, 3e5, 1e6]},
                               estimates={"params_exponent": est(0.52, 0.4, 0.6)})
    good = SimpleNamespace(surface=SimpleNamespace(estimates=surface), envelope=envelope)
    assert fit_shortfalls(good) == []
    pinned = {**surface, "E": est(1e-20, 1e-20, 1.0), "alpha": est(0.5, 0.2, 0.75),
              "params_exponent": est(0.8, 0.7, 0.9)}
    narrow = SimpleNamespace(optima={"params": [1e5, 1e5, 3e5]}, estimates=envelope.estimates)
    missed = fit_shortfalls(SimpleNamespace(surface=SimpleNamespace(estimates=pinned), envelope=narrow))
    assert [m.split(" ")[0] for m in missed] == ["E's", "alpha's", "the", "approaches"], missed


def test_one_seed_per_cell_says_nothing_about_seeds(report):
    header = report.read_text().split("## Notes")[0]
    assert "Seeds:" not in header and "Intervals: 95% percentile bootstrap over runs (20 refits" in header
    fits = json.loads((report.parent / "fits.json").read_text())
    assert "seeds" not in fits
    misfit = fits["levels"][0]["approach3"]["lack_of_fit"]
    assert misfit["f_statistic"] is None and misfit["rms_nats"] > 0
    assert "no test of seed noise against misfit" in header


def test_a_seeded_grid_states_its_seed_spread_and_fits_cells(tmp_path):
    from analysis.synthetic import seed_replicates

    cells = isoflop_rows(SURFACE, [1e13, 1e14], sizes_per_budget=4, noise=0.01, seed=0)
    rows = seed_replicates(cells, (0, 1, 2), seed_noise_nats=0.02, seed=0)
    write_results_csv(rows, tmp_path / "results.csv")
    text = write_report(tmp_path, bootstrap=5, permutations=0).read_text()
    losses = np.array([row["final_val_loss"] for row in rows]).reshape(len(cells), 3)
    pooled = float(np.sqrt(np.mean(np.var(losses, axis=1, ddof=1))))  # equal seeds: the mean variance
    fits = json.loads((tmp_path / "report" / "fits.json").read_text())
    assert fits["seeds"]["pooled_sd"] == pytest.approx(pooled, rel=1e-10)
    assert fits["seeds"]["degrees_of_freedom"] == 16 and fits["levels"][0]["cells"] == 8
    header = text.split("## Notes")[0]
    assert "Seeds: 3 per cell (24 runs in 8 cells)" in header and "16 degrees of freedom" in header
    assert "bootstrap over grid cells, each at its seeds' mean loss" in header
    assert "## Fits: quality 1 (24 runs in 8 cells)" in text
    assert "summed over 8 cells (each at its seeds' mean loss)" in text
    # Misfit against seed noise: 8 cells, 5 fitted parameters, 24 runs.
    misfit = fits["levels"][0]["approach3"]["lack_of_fit"]
    assert (misfit["cells"], misfit["fitted_parameters"], misfit["df_lack"], misfit["df_pure"]) == (8, 5, 3, 16)
    assert "Scatter (quality 1): the cells sit " in header
    assert f"F = {misfit['f_statistic']:.2f} (3 and 16 degrees of freedom)" in header
