"""analysis.lr_sweep on sweeps with a known answer: each size's optimum, the rule through them,
the refusal of an optimum at the edge, and the rule file that lab.lr_rule reads back."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from analysis.lr_sweep import EdgeOptimum, SizeSweep, fit_rule, optimum, predict, read_sweep, write_sweep_report
from lab.lr_rule import load_rule

LRS = [1e-3 * 2 ** k for k in range(6)]
A_TRUE, B_TRUE = math.log(0.5), -0.4  # lr_opt = 0.5 N^-0.4


def _loss(params: float, lr: float) -> float:
    """A parabola in log lr around the true optimum: the interpolation must find it exactly."""
    best = A_TRUE + B_TRUE * math.log(params)
    return 3.0 - 0.1 * math.log(params / 1e4) + 0.05 * (math.log(lr) - best) ** 2


def _sweep(params: float, lrs=LRS) -> SizeSweep:
    return SizeSweep(params, 0.95, list(lrs), [_loss(params, lr) for lr in lrs], [1] * len(lrs), [["r"]] * len(lrs))


def test_the_optimum_and_the_rule_are_recovered_from_a_known_surface():
    sizes = [2e4, 6e4, 2e5]
    optima = [optimum(_sweep(n)) for n in sizes]
    for n, o in zip(sizes, optima):
        assert o.lr == pytest.approx(0.5 * n ** -0.4, rel=1e-9)
        assert o.loss == pytest.approx(3.0 - 0.1 * math.log(n / 1e4), abs=1e-9)
        assert o.lr != o.best_swept_lr  # interpolated, not the nearest swept rate
    a, b = fit_rule(optima)
    assert (a, b) == (pytest.approx(A_TRUE, abs=1e-9), pytest.approx(B_TRUE, abs=1e-9))
    assert predict(optima[::2], 6e4) == pytest.approx(0.5 * 6e4 ** -0.4, rel=1e-9)  # held out


def test_a_best_rate_at_either_edge_is_refused_naming_the_size():
    low = _sweep(2e4, lrs=[0.05, 0.1, 0.2])  # the optimum (~0.0095) lies below every swept rate
    with pytest.raises(EdgeOptimum, match=r"N=20,000 .*lowest swept"):
        optimum(low)
    high = _sweep(2e4, lrs=[1e-5, 2e-5, 4e-5])
    with pytest.raises(EdgeOptimum, match=r"N=20,000 .*highest swept"):
        optimum(high)


def _write_grid(tmp_path, sizes, lrs_of=lambda n: LRS, status_of=lambda n, lr, seed: "done"):
    grid = tmp_path / "lr_sweep"
    rows = []
    for n in sizes:
        for seed in (0, 1):
            for lr in lrs_of(n):
                run_id = f"n{int(n)}-lr{lr:g}-s{seed}"
                noise = 0.002 * (1 if seed else -1)  # seeds average to the surface
                status = status_of(n, lr, seed)
                rows.append({"run_id": run_id, "status": status, "params": n, "lr": lr, "beta2": 0.95,
                             "seed": seed, "tokens": 5 * n,
                             "final_val_loss": _loss(n, lr) + noise if status == "done" else ""})
                (grid / "runs" / run_id).mkdir(parents=True)
                (grid / "runs" / run_id / "config.json").write_text(json.dumps({"code_version": "abc", "config": {
                    "model": {"vocab_size": 512}, "corpus": {"name": "synthetic"},
                    "train": {"seq_len": 64, "batch_size": 8, "schedule": "wsd", "cooldown": 0.2,
                              "decay_shape": "1-sqrt", "warmup_tokens": n}}}))
    with open(grid / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return grid


def test_the_report_writes_a_rule_that_train_lr_auto_reads_back(tmp_path):
    grid = _write_grid(tmp_path, [2e4, 6e4, 2e5])
    sweeps = read_sweep(grid)
    assert [s.seeds for s in sweeps] == [[2] * len(LRS)] * 3  # two seeds per rate, averaged
    report, problem = write_sweep_report(grid)
    assert problem is None
    rule = load_rule(str(grid / "report" / "lr_rule.json"))
    assert rule.kind == "measured" and rule.sizes == (2e4, 2e5)
    assert rule.lr(1e5) == pytest.approx(0.5 * 1e5 ** -0.4, rel=1e-5)
    assert "extrapolated" in rule.describe(1e6) and "extrapolated" not in rule.describe(1e5)
    document = json.loads((grid / "report" / "lr_rule.json").read_text())
    assert document["settings"]["vocab_size"] == 512 and len(document["optima"]) == 3
    assert document["settings"]["tokens_per_param"] == 5
    assert document["settings"]["warmup_tokens_per_param"] == 1  # the rate depends on it
    assert (grid / "report" / "lr_sweep.png").stat().st_size > 10_000
    assert "Rule: log lr" in report.read_text()


def test_an_edge_optimum_refuses_the_rule_and_removes_a_stale_one(tmp_path):
    grid = _write_grid(tmp_path, [2e4, 2e5], lrs_of=lambda n: LRS if n < 1e5 else LRS[3:])
    (grid / "report").mkdir()
    (grid / "report" / "lr_rule.json").write_text("{}")  # from an earlier, wider sweep
    report, problem = write_sweep_report(grid)
    assert "N=200,000" in problem and "N=20,000" not in problem
    assert not (grid / "report" / "lr_rule.json").exists()
    assert "No rule: size N=200,000" in report.read_text()


def test_the_shipped_rules_load_and_are_interior_sweeps():
    for name in ("smoke", "cpu"):
        rule = load_rule(name)
        document = json.loads(rule.path.read_text())
        assert rule.kind == "measured" and len(document["optima"]) >= 2
        for sweep in document["sweeps"]:  # every size's best swept rate has a neighbour each side
            best = int(np.argmin(sweep["losses"]))
            assert 0 < best < len(sweep["lrs"]) - 1
    prior = load_rule("gpu-prior")
    assert prior.kind == "prior" and prior.lr(1e8) == pytest.approx(0.3118 * (120 * 1e16) ** -0.125, rel=1e-3)


def test_a_diverged_rate_next_to_the_best_asks_for_a_rate_between_them(tmp_path):
    # At N=2e4 the optimum is ~9.5e-3: with 1.6e-2 diverged (one seed is enough), 8e-3 is the best
    # finite rate and its upper neighbour has no loss to fit.
    grid = _write_grid(tmp_path, [2e4, 2e5], status_of=lambda n, lr, seed: "diverged" if (n, lr, seed) == (2e4, 0.016, 1)
                       else "done")
    _, problem = write_sweep_report(grid)
    assert problem == ("size N=20,000 (beta2 0.95): rate 0.016 diverged next to the best rate 0.008; add a rate "
                       "between them to locate the optimum")
    assert not (grid / "report" / "lr_rule.json").exists()


def test_a_sweep_with_runs_still_to_come_gives_no_rule_and_a_rerun_says_why_again(tmp_path):
    from lab.sweep.report_step import write_or_reuse_report

    grid = _write_grid(tmp_path, [2e4, 2e5], status_of=lambda n, lr, seed: "failed" if (n, lr) == (2e5, 0.032)
                       else "done")
    for attempt in range(2):  # drawn, then kept: both times the reason is the last line
        said = []
        assert write_or_reuse_report(grid, log=said.append, kind="lr_sweep") is False
        assert said[-1] == ("error: no learning-rate rule: 2 runs of the sweep have no result yet "
                            "(n200000-lr0.032-s0, n200000-lr0.032-s1): rerun the grid"), (attempt, said)
    assert "unchanged inputs, kept" in said[0]
