"""Approach 3: objective and gradient, the optimiser, recovery of known parameters, allocation."""
import numpy as np
import pytest
from scipy.optimize import approx_fprime, minimize, minimize_scalar

from analysis.approach3 import run_surface
from analysis.approach3_core import (
    EffectiveTokens,
    HuberLogLossObjective,
    fit_surface,
    huber,
    optimal_allocation,
    published_initial_grid,
)
from analysis.synthetic import TrueSurface, as_table, isoflop_rows

TRUTH = TrueSurface()
BUDGETS = [1e13, 3e13, 1e14, 3e14, 1e15, 3e15]



def test_published_grid_is_hoffmanns():
    grid = published_initial_grid()
    assert grid.shape == (4500, 5)
    assert sorted(set(grid[:, 3])) == [0.0, 0.5, 1.0, 1.5, 2.0]  # alpha
    assert sorted(set(grid[:, 0])) == [0.0, 5.0, 10.0, 15.0, 20.0, 25.0]  # a = log A
    assert sorted(set(grid[:, 2])) == [-1.0, -0.5, 0.0, 0.5, 1.0]  # e = log E


def test_huber_matches_definition():
    r = np.array([-0.01, -1e-3, 0.0, 5e-4, 0.02])
    expected = [1e-3 * (0.01 - 5e-4), 0.5e-6, 0.0, 0.5 * 25e-8, 1e-3 * (0.02 - 5e-4)]
    np.testing.assert_allclose(huber(r, 1e-3), expected, rtol=1e-12)


def test_analytic_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    n = 40
    params, tokens = 10 ** rng.uniform(5, 7, n), 10 ** rng.uniform(7, 9, n)
    epochs, quality = rng.choice([1.0, 2.0, 6.0], n), rng.choice([0.0, 0.5, 1.0], n)
    loss = TRUTH.loss(params, tokens) * np.exp(rng.normal(0, 0.02, n))
    tokens_model = EffectiveTokens(np.log(tokens / epochs), repetitions=epochs - 1, repeat_decay=None,
                                   quality_design=(1 - quality)[:, None], quality_names=("gamma",))
    objective = HuberLogLossObjective(np.log(params), tokens_model, np.log(loss))
    weights = rng.integers(0, 3, n).astype(float)
    theta = np.array([4.0, 5.5, 0.5, 0.3, 0.35, np.log(8.0), -0.4])
    _, grad = objective.value_and_grad(theta, weights)
    numeric = approx_fprime(theta, lambda t: objective.value_and_grad(t, weights)[0], 1e-7)
    np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-9)


def test_repeat_decay_far_out_is_finite_and_at_its_limits():
    # A line search can try log R* = 1e5 or -1e5: no overflow, no inf * 0, and the limits of
    # D_eff = U (1 + R* (1 - e^(-R/R*))): U (1 + R) for R* -> inf, U for R* -> 0.
    repetitions = np.array([0.0, 1.0, 5.0])
    model = EffectiveTokens(np.log([1e6, 1e6, 1e6]), repetitions=repetitions, repeat_decay=None)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is exact here
        high, high_slope = model.evaluate(np.array([1e5]))
        low, low_slope = model.evaluate(np.array([-1e5]))
    np.testing.assert_allclose(high, np.log(1e6 * (1 + repetitions)), rtol=1e-12)
    np.testing.assert_allclose(low, np.log(1e6), rtol=1e-12)
    assert not high_slope.any() and not low_slope.any()


def test_score_starts_equals_objective_one_at_a_time():
    rows = isoflop_rows(TRUTH, BUDGETS[:3], noise=0.01)
    runs = as_table(rows).runs
    objective = HuberLogLossObjective(np.log(runs.params), EffectiveTokens(np.log(runs.tokens)),
                                      np.log(runs.loss))
    starts = published_initial_grid()[::397]
    expected = [objective.value_and_grad(s)[0] for s in starts]
    np.testing.assert_allclose(objective.score_starts(starts, chunk=3), expected, rtol=1e-12)


def test_noise_free_data_recovers_parameters_exactly():
    runs = as_table(isoflop_rows(TRUTH, BUDGETS, noise=0.0)).runs
    result = run_surface(runs, budget=1e15, n_boot=0, seed=0)
    for name in ("E", "A", "B", "alpha", "beta"):
        assert result.estimates[name].value == pytest.approx(getattr(TRUTH, name), rel=2e-3), name


def test_optimum_is_not_beaten_by_an_independent_optimiser():
    """Powell (derivative-free, no grid) started at the truth cannot find a lower objective."""
    runs = as_table(isoflop_rows(TRUTH, BUDGETS, noise=0.02, seed=3)).runs
    objective = HuberLogLossObjective(np.log(runs.params), EffectiveTokens(np.log(runs.tokens)),
                                      np.log(runs.loss))
    ours = fit_surface(objective)
    truth = np.array([np.log(TRUTH.A), np.log(TRUTH.B), np.log(TRUTH.E), TRUTH.alpha, TRUTH.beta])
    powell = minimize(lambda t: objective.value_and_grad(t)[0], truth, method="Powell",
                      options={"xtol": 1e-10, "ftol": 1e-14, "maxfev": 40000})
    assert ours.objective <= powell.fun * (1 + 1e-6)


def test_noisy_data_recovers_truth_within_bootstrap_intervals():
    """1% noise on 42 runs, 300 refits (seeded): every true value inside its 95% interval."""
    runs = as_table(isoflop_rows(TRUTH, BUDGETS, noise=0.01, seed=1)).runs
    budget = 1e15
    result = run_surface(runs, budget=budget, n_boot=300, seed=0)
    est = result.estimates
    a_true = TRUTH.beta / (TRUTH.alpha + TRUTH.beta)
    true_split = optimal_allocation(budget, TRUTH.A, TRUTH.B, TRUTH.alpha, TRUTH.beta)
    truths = {"E": TRUTH.E, "A": TRUTH.A, "B": TRUTH.B, "alpha": TRUTH.alpha, "beta": TRUTH.beta,
              "params_exponent": a_true, "tokens_exponent": 1 - a_true,
              "params_at_budget": float(true_split.params), "tokens_at_budget": float(true_split.tokens),
              "tokens_per_param_at_budget": float(true_split.tokens_per_param)}
    for name, truth in truths.items():
        assert est[name].contains(truth), (name, truth, est[name].format())
    # Intervals that contain the truth only because they are enormous would not catch an error.
    assert est["params_exponent"].high - est["params_exponent"].low < 0.15
    assert est["tokens_per_param_at_budget"].high / est["tokens_per_param_at_budget"].low < 1.6
    assert result.failed_replicates == 0


def test_closed_form_allocation_matches_brute_force_minimisation():
    for law in (TRUTH, TrueSurface(A=406.4, B=410.7, alpha=0.34, beta=0.28)):
        for budget in (1e15, 1e21):
            def loss_at(log_params):
                params = np.exp(log_params)
                return law.loss(params, budget / (6 * params))
            best = minimize_scalar(loss_at, bounds=(0, 40), method="bounded", options={"xatol": 1e-10})
            split = optimal_allocation(budget, law.A, law.B, law.alpha, law.beta)
            assert float(split.params) == pytest.approx(np.exp(best.x), rel=1e-5)
            assert float(split.params * split.tokens) * 6 == pytest.approx(budget, rel=1e-12)


def test_too_few_runs_is_a_clear_error():
    from analysis.table import InsufficientData
    runs = as_table(isoflop_rows(TRUTH, [1e14], sizes_per_budget=4, noise=0.0)).runs
    with pytest.raises(InsufficientData, match="needs at least 6 runs, got 4"):
        run_surface(runs, budget=1e14, n_boot=0, seed=0)
