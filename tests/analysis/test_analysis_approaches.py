"""Approaches 1 and 2 on synthetic IsoFLOP grids with known compute-optimal exponents."""
import dataclasses
import json

import numpy as np
import pytest

from analysis.approach1 import envelope_indices, group_by_compute, run_envelope
from analysis.approach2 import fit_profiles, run_isoflop
from analysis.synthetic import TrueSurface, as_table, isoflop_rows
from analysis.table import InsufficientData, read_table
from lab.accounting import total_params, training_flops
from lab.config import RunConfig
from lab.sweep.results import collect, write_csv
from lab.sweep.spec import GridConfig, ScaleAxes, expand

TRUTH = TrueSurface()
A_TRUE = TRUTH.beta / (TRUTH.alpha + TRUTH.beta)
BUDGETS = [1e13, 3e13, 1e14, 3e14, 1e15, 3e15]



def test_isoflop_recovers_allocation_exponents_within_intervals():
    runs = as_table(isoflop_rows(TRUTH, BUDGETS, sizes_per_budget=9, noise=0.01, seed=2)).runs
    result = run_isoflop(runs, budget=1e14, n_boot=300, seed=0).allocation
    est = result.estimates
    assert est["params_exponent"].contains(A_TRUE), est["params_exponent"].format()
    assert est["tokens_exponent"].contains(1 - A_TRUE), est["tokens_exponent"].format()
    true_params = TRUTH.optimal_params(1e14)
    assert est["params_at_budget"].contains(true_params), est["params_at_budget"].format()
    assert est["params_exponent"].high - est["params_exponent"].low < 0.15
    assert len(result.optima["compute"]) == len(BUDGETS)


def test_isoflop_noise_free_minima_are_the_true_optima():
    runs = as_table(isoflop_rows(TRUTH, BUDGETS, sizes_per_budget=9, span_dex=0.4, noise=0.0)).runs
    result = run_isoflop(runs, budget=1e14, n_boot=0, seed=0)
    for profile in result.profiles:
        # The parabola is a second-order approximation: a few percent in N at most.
        assert profile.optimal_params == pytest.approx(TRUTH.optimal_params(profile.budget), rel=0.05)
    assert result.allocation.laws.params.exponent == pytest.approx(A_TRUE, abs=0.01)
    assert result.allocation.laws.tokens.exponent == pytest.approx(1 - A_TRUE, abs=0.01)


def test_envelope_recovers_exponent_within_interval():
    runs = as_table(isoflop_rows(TRUTH, BUDGETS, sizes_per_budget=15, noise=0.005, seed=4)).runs
    result = run_envelope(runs, budget=1e14, n_boot=300, seed=0)
    assert result.estimates["params_exponent"].contains(A_TRUE), result.estimates["params_exponent"].format()
    assert result.estimates["tokens_exponent"].contains(1 - A_TRUE)
    assert len(result.optima["run_ids"]) == len(BUDGETS)


def test_envelope_keeps_the_best_run_per_bin_that_beats_smaller_budgets():
    flops = np.array([1.0, 1.02, 3.0, 3.05, 10.0, 10.1])
    loss = np.array([5.0, 4.8, 4.9, 4.5, 4.6, 4.7])  # the bin at 10 never beats the bin at 3
    groups = np.array([0, 0, 1, 1, 2, 2])
    assert envelope_indices(flops, loss, groups).tolist() == [1, 3]


def test_compute_groups_use_the_budget_column_or_gaps():
    rows = isoflop_rows(TRUTH, [1e14, 2e14], sizes_per_budget=5, noise=0.0)
    for row in rows:
        row["compute_budget"] = 1e14 if row["run_id"].find("C1e14") >= 0 else 2e14
    with_column = group_by_compute(as_table(rows).runs)
    assert with_column.from_budget_column and with_column.budgets.tolist() == [1e14, 2e14]
    without_column = [{k: v for k, v in row.items() if k != "compute_budget"} for row in rows]
    by_gaps = group_by_compute(as_table(without_column).runs)
    assert not by_gaps.from_budget_column and by_gaps.count == 2
    assert np.all(by_gaps.spread_dex < 0.01)


def test_isoflop_grid_results_csv_feeds_its_nominal_budgets_to_the_profiles(tmp_path):
    # The real path: the isoflop grid's plan, results.csv as the grid writes it, read by analysis.
    budgets = [1e13, 3e13, 1e14]
    grid = GridConfig(name="isoflop", kind="isoflop", scales={"cpu": ScaleAxes(
        sizes=[8.0e4, 2.3e5, 5.3e5, 1.0e6, 1.9e6], compute_budgets=budgets)})
    base = RunConfig()  # with the cpu preset's vocabulary and heads, so that 8e4 parameters is a shape
    base = dataclasses.replace(base, model=dataclasses.replace(base.model, vocab_size=2048, head_dim=16),
                               corpus=dataclasses.replace(base.corpus, vocab_size=2048))
    planned = expand(base, grid, "cpu")
    run_dirs = []
    for plan in planned:
        run_dir = tmp_path / "runs" / f"{plan.axes['size']:.0e}-C{plan.axes['compute_budget']:.0e}"
        run_dir.mkdir(parents=True)
        model, tokens = plan.cfg.model, plan.cfg.train.tokens
        final = {"status": "done", "params": total_params(model), "tokens": tokens,
                 "flops": training_flops(model, plan.cfg.train.seq_len, tokens),
                 "final_val_loss": float(TRUTH.loss(total_params(model), tokens))}
        (run_dir / "final.json").write_text(json.dumps(final))
        run_dirs.append(run_dir)
    write_csv(tmp_path / "results.csv", collect(planned, run_dirs))
    runs = read_table(tmp_path / "results.csv").runs
    groups = group_by_compute(runs)
    assert groups.from_budget_column and groups.budgets.tolist() == budgets
    # The grid plans D = C / (6N): whole optimizer steps leave each run's 6ND a little under its
    # nominal C, while the recorded FLOPs (attention included) lie above it.
    assert np.all((runs.compute <= runs.compute_budget) & (runs.compute > 0.95 * runs.compute_budget))
    assert np.all(runs.flops > runs.compute)
    profiles, notes = fit_profiles(runs, groups)
    assert [profile.budget for profile in profiles] == budgets, notes


def test_profile_with_minimum_outside_sampled_sizes_is_skipped_with_reason():
    rows = isoflop_rows(TRUTH, [1e14, 1e15], sizes_per_budget=5, span_dex=0.5, noise=0.0)
    # Keep only sizes below the optimum at 1e15: the loss falls monotonically, no interior minimum.
    optimum = TRUTH.optimal_params(1e15)
    rows = [r for r in rows if "C1e14" in r["run_id"] or r["params"] < optimum * 0.9]
    runs = as_table(rows).runs
    profiles, notes = fit_profiles(runs, group_by_compute(runs))
    assert len(profiles) == 1
    assert any("outside the sampled range" in note or "distinct sizes" in note for note in notes), notes
    with pytest.raises(InsufficientData, match="at least 2 IsoFLOP profiles"):
        run_isoflop(runs, budget=1e14, n_boot=0, seed=0)


def test_scatter_design_is_not_taken_for_isoflop_profiles():
    rng = np.random.default_rng(0)
    params, tokens = 10 ** rng.uniform(5, 7, 30), 10 ** rng.uniform(7, 9, 30)
    rows = [{"run_id": f"r{i}", "params": p, "tokens": d, "loss": float(TRUTH.loss(p, d))}
            for i, (p, d) in enumerate(zip(params, tokens))]
    runs = as_table(rows).runs
    profiles, _ = fit_profiles(runs, group_by_compute(runs))
    assert len(profiles) < 2  # a chance triple at near-equal compute may still form one
    with pytest.raises(InsufficientData, match="approach 2 needs at least 2 IsoFLOP profiles"):
        run_isoflop(runs, budget=1e14, n_boot=0, seed=0)


def test_runs_without_quality_beside_one_level_are_not_labelled_as_that_level():
    from analysis.pipeline import FitRequest, fit_table

    rows = isoflop_rows(TrueSurface(), [1e13, 1e14, 1e15], noise=0.01, seed=1)
    for row in rows[::2]:
        row["quality"] = float("nan")  # e.g. runs on a real corpus, which has no quality level
    fits = fit_table(as_table(rows), FitRequest(n_boot=0, approaches=(1,)))
    (level,) = fits.levels
    assert level.quality is None and len(level.runs) == len(rows)
    assert any("without a quality value are fitted together" in note for note in fits.notes)
