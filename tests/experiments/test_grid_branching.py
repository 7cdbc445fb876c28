"""grid.branching through the real entry point: one trunk per model, every cell a cooldown
branched off it, the same numbers as the cells trained from scratch, at ~0.63x the compute."""
import csv
import json

import pytest

from tests.helpers import TINY, run_entry

# Budgets that double: 20, 40, 80 and 160 steps of 4 x 32 tokens.
GRID = [*TINY, "grid=token_budget", "grid.sizes=[3.0e4]", "grid.budgets=[2560,5120,10240,20480]",
        "grid.report=false", "grid.eval_pairs=false", "launcher.poll_s=0.2", "train.precision=fp32",
        "train.schedule=wsd"]


def _rows(path) -> dict:
    with open(path) as f:
        return {row["run_id"]: row for row in csv.DictReader(f)}


def test_branches_match_the_cells_trained_from_scratch_at_a_fraction_of_the_compute(tmp_path, corpus_cache):
    common = [*GRID, f"corpus.cache_dir={corpus_cache}"]
    branched = run_entry([*common, f"out_dir={tmp_path / 'b'}"], cwd=tmp_path, timeout=600)
    assert branched.returncode == 0, branched.stdout + branched.stderr
    scratch = run_entry([*common, "grid.branching=false", f"out_dir={tmp_path / 's'}"], cwd=tmp_path, timeout=600)
    assert scratch.returncode == 0, scratch.stdout + scratch.stderr

    grid_b, grid_s = tmp_path / "b" / "token_budget-smoke", tmp_path / "s" / "token_budget-smoke"
    rows_b, rows_s = _rows(grid_b / "results.csv"), _rows(grid_s / "results.csv")
    assert rows_b.keys() == rows_s.keys() and len(rows_b) == 4  # the same runs (ids)
    for run, row in rows_b.items():
        for key in ("final_val_loss", "final_train_loss", "flops", "tokens"):
            assert float(row[key]) == pytest.approx(float(rows_s[run][key]), abs=1e-6, rel=0), (run, key)
        # metrics.jsonl too: the same logged windows and validation steps, as if never branched
        rows = [[json.loads(line) for line in (grid / "runs" / run / "metrics.jsonl").read_text().splitlines()]
                for grid in (grid_b, grid_s)]
        assert [r["step"] for r in rows[0]] == [r["step"] for r in rows[1]], run
        for key in ("loss", "lr", "val_loss"):
            assert [r.get(key) for r in rows[0]] == pytest.approx([r.get(key) for r in rows[1]], abs=1e-6), (run, key)
        parent = json.loads((grid_b / "runs" / run / "parent.json").read_text())
        assert parent["trunk"].endswith(tuple(p.name for p in (grid_b / "trunks").iterdir()))
    (trunk,) = (grid_b / "trunks").iterdir()  # one model: one trunk, and it is no grid point
    assert json.loads((trunk / "final.json").read_text())["steps"] == 128  # 0.8 x 160

    # The ledger: trunk 128 steps + cooldowns 0.2 x (20+40+80+160) = 188 of 300 steps.
    last = branched.stdout.strip().splitlines()[-1]
    assert last.startswith("compute: ") and last.endswith("0.63x of independent runs"), last
    assert json.loads((grid_b / "compute.json").read_text())["ratio"] == pytest.approx(188 / 300)
    assert scratch.stdout.strip().splitlines()[-1].endswith("1.00x of independent runs")

    again = run_entry([*common, f"out_dir={tmp_path / 'b'}"], cwd=tmp_path)
    assert again.returncode == 0 and "4 finished, 0 to train" in again.stdout  # trains nothing


def test_branching_is_refused_where_a_launcher_cannot_order_branches_after_trunks(tmp_path):
    result = run_entry([*GRID, "launcher=submitit_local", "launcher.wait=false", f"out_dir={tmp_path}"], cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: grid.branching: launcher.wait=false")
