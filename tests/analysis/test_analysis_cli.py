"""python -m analysis.fit: output, JSON, exclusions with a note, and one-line errors (exit 2)."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.synthetic import TrueSurface, isoflop_rows, write_results_csv

ROOT = Path(__file__).resolve().parents[2]


def fit_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "analysis.fit", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def grid_csv(tmp_path_factory) -> Path:
    rows = isoflop_rows(TrueSurface(), [1e13, 1e14, 1e15], sizes_per_budget=6, noise=0.01, seed=0)
    rows[0]["status"], rows[0]["final_val_loss"] = "diverged", "nan"
    rows[1]["status"], rows[1]["final_val_loss"] = "failed", ""
    return write_results_csv(rows, tmp_path_factory.mktemp("cli") / "results.csv")


def test_json_output_has_every_fit_and_notes_the_excluded_runs(grid_csv):
    done = fit_cli(str(grid_csv), "--json", "--bootstrap", "30")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["used"] == 16 and result["rows"] == 18
    assert {run["reason"] for run in result["excluded"]} == {"diverged", "failed"}
    assert "excluded 2 of 18 runs" in done.stderr  # never silently
    level = result["levels"][0]
    surface = level["approach3"]["estimates"]
    assert set(surface) >= {"E", "A", "B", "alpha", "beta", "params_exponent", "tokens_per_param_at_budget"}
    low, high = surface["alpha"]["ci"]
    assert low <= surface["alpha"]["value"] <= high
    assert level["approach2"]["estimates"]["params_exponent"]["replicates"] > 0
    assert "approach1" in level
    assert result["references"]["Epoch refit"]["alpha"] == 0.3478


def test_text_output_compares_with_published_values(grid_csv):
    done = fit_cli(str(grid_csv), "--approach", "3", "--bootstrap", "20", "--budget", "1e15")
    assert done.returncode == 0, done.stderr
    assert "alpha" in done.stdout and "Epoch 0.3478 ± 0.02" in done.stdout
    assert "tokens per parameter at C=1e+15" in done.stdout and "20 tokens/param rule ~20" in done.stdout
    assert "approach 1" not in done.stdout
    assert "note: excluded 2 of 18 runs" in done.stdout


def test_plain_loss_column_is_accepted(tmp_path):
    rows = isoflop_rows(TrueSurface(), [1e13, 1e14], sizes_per_budget=5, noise=0.0)
    path = tmp_path / "plain.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["params", "tokens", "loss"])
        writer.writerows([r["params"], r["tokens"], r["final_val_loss"]] for r in rows)
    done = fit_cli(str(path), "--approach", "2", "--json", "--bootstrap", "10")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["loss_column"] == "loss"


@pytest.mark.parametrize("content, message", [
    (None, "error: table: no such file"),
    ("params,loss\n1e6,3.0\n", "error: table: "),
    ("params,tokens,loss\n1e6,2e7,abc\n", "non-number"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, content, message):
    path = tmp_path / "table.csv"
    if content is not None:
        path.write_text(content)
    done = fit_cli(str(path))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert done.stdout == ""


def test_missing_columns_are_named(tmp_path):
    path = tmp_path / "table.csv"
    path.write_text("params,loss\n1e6,3.0\n")
    done = fit_cli(str(path))
    assert "lacks column(s) tokens" in done.stderr


def test_too_few_points_is_a_clear_message(tmp_path):
    path = tmp_path / "tiny.csv"
    path.write_text("params,tokens,loss\n1e6,2e7,3.5\n2e6,1e7,3.4\n4e6,5e6,3.6\n")
    done = fit_cli(str(path), "--approach", "3")
    assert done.returncode == 2
    assert "error: not enough data: approach 3 fits 5 parameters and needs at least 6 runs, got 3" \
        in done.stderr


def test_report_headline_copies_the_highest_quality_allocation_figure(tmp_path):
    from analysis.report import main
    from analysis.synthetic import write_grid

    surface = TrueSurface(quality_gamma=-1.0)
    rows = isoflop_rows(surface, [1e13, 1e14, 1e15], sizes_per_budget=5, noise=0.01, seed=0, qualities=(0.0, 1.0))
    grid = write_grid(tmp_path / "grid", rows, surface, logged_steps=3)
    headline = tmp_path / "docs" / "assets" / "headline.png"
    assert main([str(grid), "--bootstrap", "5", "--headline", str(headline)]) == 0
    figures = grid / "report" / "figures"
    assert headline.read_bytes() == (figures / "allocation_q1.png").read_bytes()
    assert headline.read_bytes() != (figures / "allocation_q0.png").read_bytes()


def test_negative_permutations_is_one_line_and_exit_2(grid_csv):
    done = fit_cli(str(grid_csv), "--permutations", "-1")
    assert done.returncode == 2 and done.stderr == "error: permutations: must be >= 0, got -1\n"
