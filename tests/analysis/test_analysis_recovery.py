"""Recovery of the compute-optimal exponent a on the token_budget grid's own shape (scale cpu), from
synthetic replicates of the surface that grid measured: at the measured seed-to-seed noise of its
runs (0.040 nats), and at 0.01 nats, a check of the estimators themselves.

An approach passes when, over the replicates, its a is within 0.03 of the truth on average (mean
absolute error) and its 95% interval covers the truth in at least 90% of them. One that cannot on
this shape is marked xfail(strict=True) with its measured numbers: the grid shape is being
redesigned, and a strict xfail turns into a failure once a new shape lets it pass.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import pytest
import yaml

from analysis.approach1 import run_envelope
from analysis.approach2 import run_isoflop
from analysis.approach3 import run_surface
from analysis.synthetic import WARMED_UP_CPU_SURFACE as TRUTH
from analysis.synthetic import as_table, grid_rows
from analysis.table import InsufficientData
from tests.helpers import ROOT

REPLICATES = 50
# Measured on the main job's grid with train.lr=auto (bench/RESULTS.md, "Warmup and seed noise",
# 2026-12-07: generator revision 3, ~100-step warmups and the cpu rule measured under them): 8
# cells (78k and 230k parameters x 4 budgets) at seeds 0, 1, 2, pooled within cells over 16
# degrees of freedom (at 6-step warmups it was 0.153, and a seed moved a whole trunk). Most of it
# is one cell's (230k parameters at 125k tokens: without it ~0.021), so drawing 0.040 for every
# run overstates the noise of the longer runs: a conservative stand-in, not the measured pattern.
# On an Intel Xeon with AMX (session 14) two seeds of the same grid gave 0.094, most of it the
# 78k model's: the noise is the machine's as much as the grid's (bench/RESULTS.md).
MEASURED_SEED_NOISE_NATS = 0.040
# A low noise at which the estimators themselves must recover a (also the seed test's cell noise).
NOISE_NATS = 0.01
# Fewer refits than a report's 200 keep 50 replicates inside a minute. Not much fewer: at 40 the
# percentile intervals themselves get coarse (approach 3 covered 88%, against 96% at 80 and 100).
BOOTSTRAP = 80
MAX_MEAN_ERROR = 0.03
MIN_COVERAGE = 0.9
A_TRUE = TRUTH.beta / (TRUTH.alpha + TRUTH.beta)


@dataclass(frozen=True)
class Recovery:
    fitted: int
    mean_abs_error: float
    bias: float
    coverage: float

    def describe(self) -> str:
        return (f"fitted {self.fitted}/{REPLICATES}, mean |a error| {self.mean_abs_error:.3f} "
                f"(bias {self.bias:+.3f}), 95% interval covers the truth in {self.coverage:.0%}")


def _token_budget_cpu_shape() -> tuple[list[float], list[float]]:
    axes = yaml.safe_load((ROOT / "experiments/conf/grid/token_budget.yaml").read_text())["scales"]["cpu"]
    return [float(x) for x in axes["sizes"]], [float(x) for x in axes["budgets"]]


def _exponent(approach: int, runs, seed: int):
    if approach == 1:
        return run_envelope(runs, budget=1e12, n_boot=BOOTSTRAP, seed=seed).estimates["params_exponent"]
    if approach == 2:
        return run_isoflop(runs, budget=1e12, n_boot=BOOTSTRAP, seed=seed).allocation.estimates["params_exponent"]
    return run_surface(runs, budget=1e12, n_boot=BOOTSTRAP, seed=seed).estimates["params_exponent"]


@cache
def recovery(approach: int, noise_nats: float) -> Recovery:
    sizes, budgets = _token_budget_cpu_shape()
    errors, covered = [], []
    for replicate in range(REPLICATES):
        runs = as_table(grid_rows({1.0: TRUTH}, sizes, budgets, noise_nats=noise_nats, seed=replicate)).runs
        try:
            estimate = _exponent(approach, runs, replicate)
        except InsufficientData:
            continue
        errors.append(estimate.value - A_TRUE)
        covered.append(estimate.contains(A_TRUE))
    if not errors:
        return Recovery(0, float("nan"), float("nan"), 0.0)
    return Recovery(len(errors), float(np.mean(np.abs(errors))), float(np.mean(errors)), float(np.mean(covered)))


_ENVELOPE_FIXED = ("The envelope is drawn from a lattice of four sizes and four budgets, whose cells' C = 6ND "
                   "does not depend on the losses: its a stays near the measured grid's 0.575 whatever the "
                   "truth (0.721 here)")
_NO_ISOFLOP = ("fitted 0/50: sizes x token budgets give no group of runs at one compute, so there is no "
               "IsoFLOP profile to fit")


@pytest.mark.parametrize("approach,noise_nats", [
    pytest.param(1, NOISE_NATS, marks=pytest.mark.xfail(strict=True, reason=(
        "measured: fitted 50/50, mean |a error| 0.149 (bias -0.149), 95% interval covers the truth in 82%. "
        + _ENVELOPE_FIXED))),
    pytest.param(2, NOISE_NATS, marks=pytest.mark.xfail(strict=True, reason="measured: " + _NO_ISOFLOP)),
    pytest.param(3, NOISE_NATS, id="3-low-noise"),
    pytest.param(1, MEASURED_SEED_NOISE_NATS, marks=pytest.mark.xfail(strict=True, reason=(
        "measured: fitted 50/50, mean |a error| 0.151 (bias -0.151), 95% interval covers the truth in 82%. "
        + _ENVELOPE_FIXED))),
    pytest.param(2, MEASURED_SEED_NOISE_NATS, marks=pytest.mark.xfail(strict=True, reason="measured: " + _NO_ISOFLOP)),
    pytest.param(3, MEASURED_SEED_NOISE_NATS, marks=pytest.mark.xfail(strict=True, reason=(
        "measured: fitted 50/50, mean |a error| 0.096 (bias +0.009), 95% interval covers the truth in 86%: "
        "one seed per cell at 0.040 nats does not pin a to 0.03 on this grid (at 0.01: 0.023)"))),
])
def test_compute_optimal_exponent_is_recovered_on_the_token_budget_grid(approach, noise_nats):
    result = recovery(approach, noise_nats)
    assert result.fitted == REPLICATES, result.describe()
    assert result.mean_abs_error <= MAX_MEAN_ERROR, result.describe()
    assert result.coverage >= MIN_COVERAGE, result.describe()
