"""analysis.design_power: a grid's cells at a known scatter give the interval widths the report's
fit would give, so a reader can tell whether more of the same runs could ever make a result."""
from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from analysis.design_power import main, power_at_noise, scatter_about, surface_of, synthetic_cells
from analysis.synthetic import WARMED_UP_CPU_SURFACE as TRUTH
from analysis.synthetic import as_table, grid_rows
from tests.analysis.test_analysis_recovery import _token_budget_cpu_shape


def _cells():
    sizes, budgets = _token_budget_cpu_shape()
    params, tokens = np.meshgrid(sizes, budgets, indexing="ij")
    return params.ravel(), tokens.ravel()


def test_noiseless_cells_give_back_their_surface_and_no_scatter():
    params, tokens = _cells()
    runs = synthetic_cells(TRUTH, params, tokens, 0.0, np.random.default_rng(0))
    assert runs.loss == pytest.approx(TRUTH.loss(params, tokens), rel=1e-12)
    fitted = surface_of(runs)
    for name in ("E", "alpha", "beta"):
        assert getattr(fitted, name) == pytest.approx(getattr(TRUTH, name), rel=2e-3), name
    assert scatter_about(runs, TRUTH) == pytest.approx(0.0, abs=1e-12)
    # A known pattern of offsets is measured as its rms, in nats.
    offsets = 0.03 * np.where(np.arange(params.size) % 2, 1.0, -1.0)
    moved = as_table([{"run_id": f"c{i}", "status": "done", "params": n, "tokens": d,
                       "final_val_loss": float(TRUTH.loss(n, d)) + o}
                      for i, (n, d, o) in enumerate(zip(params, tokens, offsets))]).runs
    assert scatter_about(moved, TRUTH) == pytest.approx(0.03, rel=1e-9)


def test_the_main_jobs_cells_pin_the_exponents_at_low_noise_and_not_at_high():
    """At 0.002 nats the 16 cells meet all three criteria in nearly every replicate; at 0.08 nats,
    twice the measured seed noise, alpha's interval is wider than 0.3 in the median replicate and no
    replicate meets all three (a fit stuck at a bound can have a narrow interval). Few replicates and
    refits keep it fast; the two regimes are far apart, so the counts are not marginal."""
    params, tokens = _cells()
    quiet = power_at_noise(TRUTH, params, tokens, 0.002, replicates=6, n_boot=30)
    assert quiet.all_three >= 5 / 6, quiet.describe()
    assert quiet.mean_abs_a_error < 0.01, quiet.describe()
    loud = power_at_noise(TRUTH, params, tokens, 0.08, replicates=6, n_boot=30)
    assert loud.all_three == 0.0 and loud.median_alpha_width > 0.3, loud.describe()
    assert loud.median_alpha_width > 2 * quiet.median_alpha_width
    with pytest.raises(ValueError, match="noise must be >= 0"):
        power_at_noise(TRUTH, params, tokens, -0.01, replicates=1, n_boot=5)


def _write_results(path, rows):
    header = list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)


def test_command_line_on_a_results_table(tmp_path, capsys):
    sizes, budgets = _token_budget_cpu_shape()
    table = tmp_path / "results.csv"
    rows = grid_rows({1.0: TRUTH}, sizes, budgets, noise_nats=0.01, seed=3)
    _write_results(table, rows)
    assert main([str(table), "--noise", "0.01", "--replicates", "2", "--bootstrap", "10"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"16 cells of {table}; truth = its Approach 3 fit: E ")
    assert len(out) == 2 and out[1].startswith("noise 0.01 nats: alpha's interval ")
    scatter = float(out[0].split("its cells sit ", 1)[1].split(" nats")[0])
    implied = float(out[0].split("imply ~", 1)[1].split(" nats")[0])
    assert 0.003 < scatter < implied < 0.02  # 0.01 nats of noise, less what 5 fitted parameters absorb
    assert implied == pytest.approx(scatter * math.sqrt(16 / 11), rel=2e-3)

    # Bad input: one line naming the field, exit 2, nothing fitted.
    for argv, field in (([str(table), "--quality", "0.5"], "quality"),
                        ([str(table), "--replicates", "0"], "replicates"),
                        ([str(table), "--noise", "-1"], "noise"),
                        ([str(tmp_path / "missing.csv")], "table")):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"error: {field}:"), err
    two_levels = tmp_path / "two.csv"
    _write_results(two_levels, rows + [{**row, "run_id": row["run_id"] + "w", "quality": 0.0} for row in rows])
    assert main([str(two_levels)]) == 2
    assert "name one" in capsys.readouterr().err
    repeated = tmp_path / "repeated.csv"
    _write_results(repeated, [{**row, "epochs": 2.0} for row in rows])
    assert main([str(repeated)]) == 2
    assert "trained past one epoch" in capsys.readouterr().err
    # So much noise that a loss would fall below 0: one line, not a refit of fewer cells.
    assert main([str(table), "--noise", "20", "--replicates", "1", "--bootstrap", "5"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: not enough data: noise 20 nats")
