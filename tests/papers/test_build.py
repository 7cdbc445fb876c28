"""papers/build.py: a paper built from real smoke-scale runs, rebuilt without retraining into
byte-identical files, its manifest checked against the files; its text filled from fitted numbers;
bad input as one line and exit 2.

The build test shrinks both grids through per-grid overrides (`data_quality.grid.sizes=[...]`), so
that it trains 5 tiny runs; at that size the fits are skipped (too few runs) and the figures say so,
which is what the smoke scale is for. The fitted path is covered in-process on synthetic grids.
"""
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT, TINY

BUILD = ROOT / "papers" / "build.py"
SLUG = "data_quality_scaling"
SHRINK = ["data_quality.grid.sizes=[3.0e4]", "data_quality.grid.budgets=[2560,5120]",
          "token_budget.grid.sizes=[3.0e4]", "token_budget.grid.budgets=[2560]", "bootstrap=10",
          "launcher.poll_s=0.2"]


def _build(args: list[str], cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(BUILD), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _outputs(paper_dir: Path) -> dict[str, str]:
    return {str(p.relative_to(paper_dir)): _sha(p) for p in sorted(paper_dir.rglob("*")) if p.is_file()}


def test_build_writes_manifest_and_rebuilds_identically_without_training(tmp_path, corpus_cache):
    out = tmp_path / "out"
    args = [SLUG, *TINY, *SHRINK, f"corpus.cache_dir={corpus_cache}", f"out_dir={out}"]
    first = _build(args, cwd=tmp_path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    paper_dir = out / "papers" / SLUG
    manifest = json.loads((paper_dir / "manifest.json").read_text())

    spec_figures = ["loss_by_quality", "quality_multiplier", "quality_metrics", "tokens_per_param",
                    "token_budget_allocation", "token_budget_loss"]
    assert sorted(manifest["figures"]) == sorted(spec_figures)
    all_runs = {r for grid in manifest["grids"].values() for r in grid["runs"]}
    assert len(manifest["grids"]["data_quality"]["runs"]) == 4 and len(manifest["grids"]["token_budget"]["runs"]) == 1
    for name, entry in {**manifest["figures"], **manifest["tables"]}.items():
        assert entry["run_ids"] and set(entry["run_ids"]) <= all_runs, name
        assert entry["code_version"] == manifest["code_version"]
        for rel, digest in entry["files"].items():
            assert _sha(paper_dir / rel) == digest, rel
        for rel, digest in entry["inputs"].items():  # results.csv of each grid and the fits behind it
            assert _sha(out / rel) == digest, rel
    for name in spec_figures:
        files = manifest["figures"][name]["files"]
        assert {f"figures/{name}.{s}" for s in ("png", "pdf", "json")} == set(files)
    assert set(manifest["tables"]) == {"token_worth", "quality_effects", "surface", "runs"}
    paper = (paper_dir / "paper.md").read_text()
    assert "{{" not in paper and "figures/loss_by_quality.png" in paper
    assert "scale=smoke" in paper and "not estimated" in paper  # too few runs to fit, and it says so
    for run_id in all_runs:
        assert run_id in paper  # the runs table

    before = _outputs(paper_dir)
    start = time.perf_counter()
    second = _build(args, cwd=tmp_path)
    elapsed = time.perf_counter() - start
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "4 runs, 4 finished, 0 to train" in second.stdout and "1 runs, 1 finished, 0 to train" in second.stdout
    assert elapsed < 60
    assert _outputs(paper_dir) == before  # figures, tables, fits, text and manifest: byte for byte


@pytest.mark.parametrize("args, field", [
    (["no_such_paper", "scale=smoke"], "slug"),
    ([SLUG, "scale=huge"], "scale"),
    ([], "slug"),
    ([SLUG, "scale=smoke", "bootstrap=many"], "bootstrap"),
    ([SLUG, "scale=smoke", "model.no_such_field=1"], "model.no_such_field"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, field):
    result = _build([*args, f"out_dir={tmp_path / 'out'}"] if args else [], cwd=tmp_path, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}: "), result.stderr
    assert not (tmp_path / "out").exists()  # nothing trained or written


def test_results_text_is_filled_from_the_fits(tmp_path):
    """On synthetic grids with enough runs to fit: every number of the text is the fits' number."""
    sys.path.insert(0, str(ROOT / "papers"))
    import numpy as np
    import paper_kinds
    import paper_text

    from analysis.pipeline import FitRequest, fit_table
    from analysis.report_text import fits_to_json
    from analysis.synthetic import TrueAccuracy, TrueSurface, isoflop_rows, with_accuracy, write_grid
    from analysis.table import read_table

    surface = TrueSurface(quality_gamma=-1.0)
    # Both levels on the same (N, D) cells, as a data-quality grid trains them; minimal pairs with a
    # textbook token worth e web tokens, facts with no quality effect, and no two-hop facts column.
    quality_rows = isoflop_rows(surface, [1e13, 1e14, 1e15], sizes_per_budget=5, noise=0.01, seed=0,
                                qualities=(0.0, 1.0), centre_quality=1.0)
    quality_rows = with_accuracy(quality_rows, "pairs_acc", TrueAccuracy(intercept=-2.5, size_slope=0.4,
                                                                         data_slope=0.4, quality_gamma=-1.0), seed=0)
    quality_rows = with_accuracy(quality_rows, "fact_acc", TrueAccuracy(chance=0.25, intercept=-3.0,
                                                                        size_slope=0.3, data_slope=0.3), seed=1)
    grids = {"data_quality": quality_rows,
             "token_budget": isoflop_rows(surface, [1e13, 1e14, 1e15], sizes_per_budget=5, noise=0.01, seed=1)}
    tables, fits, fit_json, dirs = {}, {}, {}, {}
    for key, rows in grids.items():
        dirs[key] = write_grid(tmp_path / key, rows, surface, logged_steps=3)
        tables[key] = read_table(dirs[key] / "results.csv")
        fits[key] = fit_table(tables[key], FitRequest(n_boot=40, seed=0, budget=1e14, n_perm=40))
        fit_json[key] = json.loads(json.dumps(fits_to_json(fits[key])))
    ctx = paper_kinds.Context(tables=tables, fits=fits, fit_json=fit_json, grid_dirs=dirs, budget=1e14, scale="cpu")
    spec = __import__("yaml").safe_load((ROOT / "papers" / SLUG / "paper.yaml").read_text())
    figures = {}
    for item in spec["figures"]:
        paths, run_ids = paper_kinds.draw(item["kind"], item["name"], item["grids"], ctx, tmp_path / "figures")
        assert [p.suffix for p in paths] == [".png", ".pdf", ".json"] and run_ids
        figures[item["name"]] = f"figures/{item['name']}.png"
        assert "missing" not in json.loads(paths[2].read_text()), item["name"]
    tables_md = {item["name"]: paper_kinds.tabulate(item["kind"], item["grids"], ctx) for item in spec["tables"]}
    values = paper_text.numbers(fit_json, ctx)
    text = paper_text.fill((ROOT / "papers" / SLUG / "paper.md").read_text(), values, figures=figures,
                           captions={}, tables=tables_md)
    assert "{{" not in text
    # The only metric not estimated is the one without a column, and the text says why.
    assert "two-hop facts, not estimated (no run has a `fact_acc_2hop`" in text
    assert text.count("not estimated (") == text.count("not estimated (no run has a `fact_acc_2hop`") == 2  # + table
    effects = fit_json["data_quality"]["quality"]["metric_effects"]
    for metric in ("loss", "pairs", "facts"):
        assert values[f"data_quality.effect.{metric}"] == paper_text.estimate_text(
            effects[metric]["web_tokens_per_textbook_token"], "")
        assert values[f"data_quality.effect.{metric}"] in text
        assert "permutation p = " in values[f"data_quality.effect.{metric}.verdict"]
    assert effects["pairs"]["web_tokens_per_textbook_token"]["ci"][0] <= np.e <= effects["pairs"][
        "web_tokens_per_textbook_token"]["ci"][1]
    assert values["data_quality.effect.pairs.verdict"].endswith("a difference, textbook tokens worth more")
    assert values["data_quality.effect.facts.verdict"].endswith("no difference beyond shuffled labels")
    assert "| minimal pairs |" in tables_md["quality_effects"] and "| facts |" in tables_md["quality_effects"]
    worth = fit_json["data_quality"]["quality"]["web_tokens_per_textbook_token"]["joint exponential"]
    assert values["data_quality.worth.exponential"] == paper_text.estimate_text(worth, "")
    assert values["data_quality.worth.exponential"] in text and worth["value"] > 1
    beta = fit_json["token_budget"]["levels"][0]["approach3"]["estimates"]["beta"]
    assert f"β = {paper_text.estimate_text(beta, '')}" in text
    assert np.isclose(beta["value"], surface.beta, atol=0.05)
    with pytest.raises(Exception, match="unknown value"):
        paper_text.fill("{{ no.such.key }}", values, figures={}, captions={}, tables={})
