"""Approach 3's numerics on plain arrays: fitting L(N, D) = E + A/N^alpha + B/D_eff^beta to final
losses, its bootstrap refits, and the compute-optimal allocation C = 6 N D a fitted surface implies.

Kept apart from analysis.approach3 (the fit of a table of runs): bench/fit_speed.py and
analysis.references use it without a table, and the two together would pass 400 lines.
"""
from __future__ import annotations

import ctypes
import itertools
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from analysis.table import FLOPS_PER_PARAM_TOKEN

# The fit follows Hoffmann et al. 2022 as corrected by Besiroglu et al. 2024: residuals are taken
# in log loss with the log-sum-exp parametrisation
#     log L = LSE(a - alpha log N, b - beta log D_eff, e),   A = e^a, B = e^b, E = e^e,
# and the Huber loss is *summed* over points (averaging shrinks the objective ~N-fold and stops
# L-BFGS early, one cause Besiroglu et al. give for the published misfit). Speed comes from three
# choices instead of the published one-start-at-a-time numerical L-BFGS: analytic gradients; all
# ~4,500 grid starts scored in one vectorised pass, only the best few polished with L-BFGS;
# bootstrap refits as per-run weights warm-started from the full-data optimum.

HUBER_DELTA = 1e-3
BASE_NAMES = ("a", "b", "e", "alpha", "beta")
# Starts polished with L-BFGS after scoring the whole grid. bench/fit_speed.py checks that the
# optimum equals the full published procedure's (try --polished-starts there to vary it).
DEFAULT_POLISHED_STARTS = 24
# |log R*| beyond which the repeat decay is held (e^40 ~ 2e17 repetitions: no data set is near).
LOG_REPEAT_DECAY_LIMIT = 40.0
LBFGS_OPTIONS = {"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-11}


def published_initial_grid() -> np.ndarray:
    """Hoffmann et al.'s initialisation grid, (4500, 5) rows of (a, b, e, alpha, beta)."""
    exponents = np.arange(0.0, 2.01, 0.5)
    log_scales = np.arange(0.0, 25.01, 5.0)
    log_irreducible = np.arange(-1.0, 1.01, 0.5)
    return np.array([(a, b, e, alpha, beta) for a, b, e, alpha, beta in itertools.product(
        log_scales, log_scales, log_irreducible, exponents, exponents)])


def huber(residuals: np.ndarray, delta: float = HUBER_DELTA) -> np.ndarray:
    magnitude = np.abs(residuals)
    return np.where(magnitude <= delta, 0.5 * residuals ** 2, delta * (magnitude - 0.5 * delta))


@dataclass(frozen=True)
class EffectiveTokens:
    """log D_eff as a function of the extra parameters, with its Jacobian.

    log D_eff = log(base tokens) + log(repeat factor) + quality_design @ quality_parameters, where
    the repeat factor is Muennighoff et al.'s 1 + R*(1 - exp(-R/R*)) on unique tokens (R = passes
    beyond the first) and the quality design encodes log m(q) (see analysis.quality).
    """

    log_base_tokens: np.ndarray
    # Repetitions R_D per point; None when the repeat correction is off.
    repetitions: np.ndarray | None = None
    # Fixed R_D*; None fits log R_D* as an extra parameter (needs repetitions).
    repeat_decay: float | None = None
    quality_design: np.ndarray | None = None
    quality_names: tuple[str, ...] = ()

    @property
    def fits_repeat_decay(self) -> bool:
        return self.repetitions is not None and self.repeat_decay is None

    @property
    def extra_names(self) -> tuple[str, ...]:
        return (("log_repeat_decay",) if self.fits_repeat_decay else ()) + self.quality_names

    def initial_extra(self) -> np.ndarray:
        # Start at Muennighoff's R_D* and at "every quality is worth the same".
        start = [np.log(15.4)] if self.fits_repeat_decay else []
        return np.array(start + [0.0] * len(self.quality_names))

    def evaluate(self, extra: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(log D_eff (n,), d log D_eff / d extra (n, n_extra))."""
        n_points = self.log_base_tokens.size
        log_tokens = self.log_base_tokens.copy()
        columns = []
        if self.repetitions is not None:
            inside = True
            if self.fits_repeat_decay:
                # A line search may try log R* far out (1e5 was seen), where exp overflows and
                # the formulas below meet inf * 0. Past +-LOG_REPEAT_DECAY_LIMIT the curve is
                # flat to double precision anyway (repeats worth all or nothing): hold it there.
                inside = abs(extra[0]) <= LOG_REPEAT_DECAY_LIMIT
                decay = np.exp(np.clip(extra[0], -LOG_REPEAT_DECAY_LIMIT, LOG_REPEAT_DECAY_LIMIT))
            else:
                decay = self.repeat_decay
            ratio = self.repetitions / decay
            kept = np.exp(-ratio)
            factor = 1.0 + decay * -np.expm1(-ratio)
            log_tokens += np.log(factor)
            if self.fits_repeat_decay:
                # d factor / d log R* = R* (1 - e^-r - r e^-r), r = R/R*.
                slope = decay * (-np.expm1(-ratio) - ratio * kept) / factor
                columns.append(slope if inside else np.zeros_like(slope))
        if self.quality_design is not None:
            quality_parameters = extra[len(columns):]
            log_tokens += (self.quality_design * quality_parameters).sum(axis=1)
            columns.extend(self.quality_design.T)
        jacobian = np.column_stack(columns) if columns else np.zeros((n_points, 0))
        return log_tokens, jacobian


class HuberLogLossObjective:
    """Summed Huber loss of log-loss residuals, with its analytic gradient."""

    def __init__(self, log_params: np.ndarray, tokens: EffectiveTokens, log_loss: np.ndarray,
                 delta: float = HUBER_DELTA):
        self.log_params = np.asarray(log_params, dtype=float)
        self.tokens = tokens
        self.log_loss = np.asarray(log_loss, dtype=float)
        self.delta = delta
        self.names = BASE_NAMES + tokens.extra_names

    @property
    def n_points(self) -> int:
        return self.log_loss.size

    def predict_log_loss(self, theta: np.ndarray) -> np.ndarray:
        a, b, e, alpha, beta = theta[:5]
        log_tokens, _ = self.tokens.evaluate(theta[5:])
        return np.logaddexp(np.logaddexp(a - alpha * self.log_params, b - beta * log_tokens), e)

    def value_and_grad(self, theta: np.ndarray, weights: np.ndarray | None = None
                       ) -> tuple[float, np.ndarray]:
        a, b, e, alpha, beta = theta[:5]
        log_tokens, token_jacobian = self.tokens.evaluate(theta[5:])
        terms = np.stack([a - alpha * self.log_params, b - beta * log_tokens,
                          np.full_like(log_tokens, e)])  # (3, n)
        peak = terms.max(axis=0)
        exp_terms = np.exp(terms - peak)
        total = exp_terms.sum(axis=0)
        share = exp_terms / total  # softmax: d LSE / d term, (3, n)
        residual = peak + np.log(total) - self.log_loss
        slope = np.clip(residual, -self.delta, self.delta)  # Huber derivative
        value = huber(residual, self.delta)
        if weights is not None:
            slope = slope * weights
            value = value * weights
        n_share, d_share, e_share = slope * share
        grad = np.empty(theta.size)
        grad[0] = n_share.sum()
        grad[1] = d_share.sum()
        grad[2] = e_share.sum()
        # Element-wise sums instead of BLAS dot products: on vectors this short, a threaded BLAS
        # only adds overhead, and spinning BLAS threads stall badly on a shared 2-core machine.
        grad[3] = -(n_share * self.log_params).sum()
        grad[4] = -(d_share * log_tokens).sum()
        grad[5:] = -beta * (d_share[:, None] * token_jacobian).sum(axis=0)
        return float(value.sum()), grad

    def score_starts(self, starts: np.ndarray, chunk: int = 512) -> np.ndarray:
        """Objective at many (a, b, e, alpha, beta) starts at once, extras at their initial values."""
        log_tokens, _ = self.tokens.evaluate(self.tokens.initial_extra())
        scores = np.empty(len(starts))
        for begin in range(0, len(starts), chunk):
            a, b, e, alpha, beta = starts[begin:begin + chunk].T[:, :, None]
            log_fit = np.logaddexp(np.logaddexp(a - alpha * self.log_params, b - beta * log_tokens), e)
            scores[begin:begin + chunk] = huber(log_fit - self.log_loss, self.delta).sum(axis=1)
        return scores


@dataclass(frozen=True)
class SurfaceFit:
    """The optimum found: theta = (a, b, e, alpha, beta, *extra) and its objective value."""

    theta: np.ndarray
    names: tuple[str, ...]
    objective: float
    converged: bool
    polished_starts: int

    @property
    def E(self) -> float:
        return float(np.exp(self.theta[2]))

    @property
    def A(self) -> float:
        return float(np.exp(self.theta[0]))

    @property
    def B(self) -> float:
        return float(np.exp(self.theta[1]))

    @property
    def alpha(self) -> float:
        return float(self.theta[3])

    @property
    def beta(self) -> float:
        return float(self.theta[4])

    def extra(self, name: str) -> float:
        return float(self.theta[self.names.index(name)])


# Symbol prefixes of OpenBLAS builds: plain, and the renamed copies in numpy/scipy wheels.
_OPENBLAS_PREFIXES = ("openblas", "scipy_openblas")
_OPENBLAS_SUFFIXES = ("", "64_")


def _openblas_controls() -> list[tuple[ctypes._CFuncPtr, ctypes._CFuncPtr]]:
    """(get, set) thread-count functions of every OpenBLAS copy loaded in the process (numpy's and
    scipy's wheels each bundle one), found the way threadpoolctl does. Empty where there is no
    /proc or no OpenBLAS (other BLAS vendors), so the fits then just run as they are."""
    maps = Path("/proc/self/maps")
    if not maps.is_file():
        return []
    paths = sorted({line.split()[-1] for line in maps.read_text().splitlines()
                    if "openblas" in line.lower() and line.split()[-1].startswith("/")})
    controls = []
    for path in paths:
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in _OPENBLAS_PREFIXES:
            for suffix in _OPENBLAS_SUFFIXES:
                getter = getattr(library, f"{prefix}_get_num_threads{suffix}", None)
                setter = getattr(library, f"{prefix}_set_num_threads{suffix}", None)
                if getter is not None and setter is not None:
                    controls.append((getter, setter))
    return controls


@contextmanager
def single_threaded_blas():
    """One OpenBLAS thread inside, the previous counts restored after.

    L-BFGS-B calls OpenBLAS on matrices of a few rows, where threads gain nothing and their
    spin-waiting competes with the main thread: measured on a 2-core machine, 200 bootstrap refits
    take 0.8 s alone but 2.3 s next to one busy process (0.8 s with one BLAS thread).
    """
    controls = _openblas_controls()
    previous = [getter() for getter, _ in controls]
    for _, setter in controls:
        setter(1)
    try:
        yield
    finally:
        for (_, setter), count in zip(controls, previous):
            setter(count)


def polish(objective: HuberLogLossObjective, start: np.ndarray, weights: np.ndarray | None = None,
           free: np.ndarray | None = None) -> tuple[np.ndarray, float, bool]:
    """L-BFGS with the analytic gradient from one start; with ``free`` (a mask over theta), only
    those parameters move and the rest stay at their start."""
    bounds = None if free is None else [(None, None) if f else (x, x) for f, x in zip(free, start)]
    result = minimize(objective.value_and_grad, start, args=(weights,), jac=True,
                      method="L-BFGS-B", bounds=bounds, options=LBFGS_OPTIONS)
    return result.x, float(result.fun), bool(result.success)


def fit_surface(objective: HuberLogLossObjective, *, starts: np.ndarray | None = None,
                polished_starts: int = DEFAULT_POLISHED_STARTS) -> SurfaceFit:
    """Score every grid start, polish the best few with L-BFGS, keep the lowest objective."""
    starts = published_initial_grid() if starts is None else np.asarray(starts, dtype=float)
    scores = objective.score_starts(starts)
    best_first = np.argsort(scores, kind="stable")[:polished_starts]
    extra = objective.tokens.initial_extra()
    best: tuple[np.ndarray, float, bool] | None = None
    with single_threaded_blas():
        for index in best_first:
            candidate = polish(objective, np.concatenate([starts[index], extra]))
            if np.isfinite(candidate[1]) and (best is None or candidate[1] < best[1]):
                best = candidate
    theta, value, converged = best
    return SurfaceFit(theta=theta, names=objective.names, objective=value, converged=converged,
                      polished_starts=len(best_first))


def bootstrap_surfaces(objective: HuberLogLossObjective, full_fit: SurfaceFit,
                       counts: np.ndarray) -> np.ndarray:
    """Refit on each bootstrap sample (rows of per-run counts) from the full-data optimum.

    Returns (n_boot, n_params); a refit whose objective is not finite is a row of NaN.
    """
    thetas = np.full((len(counts), full_fit.theta.size), np.nan)
    with single_threaded_blas():
        for replicate, weights in enumerate(counts):
            theta, value, _ = polish(objective, full_fit.theta, weights)
            if np.isfinite(value) and np.all(np.isfinite(theta)):
                thetas[replicate] = theta
    return thetas


# Compute-optimal allocation of C = 6 N D under L = E + A/N^alpha + B/D^beta (Hoffmann et al.
# 2022, eq. 4): G = (alpha A / (beta B))^(1/(alpha+beta)), N_opt = G (C/6)^a, D_opt = G^-1 (C/6)^b
# with a = beta/(alpha+beta), b = alpha/(alpha+beta); E does not move the optimum. Vectorised over
# parameter arrays so that one call evaluates a point estimate or a thousand bootstrap replicates.


@dataclass(frozen=True)
class Allocation:
    """The optimal split of one compute budget (arrays when evaluated on many parameter sets)."""

    compute: float
    params: np.ndarray
    tokens: np.ndarray

    @property
    def tokens_per_param(self) -> np.ndarray:
        return self.tokens / self.params


def allocation_exponents(alpha, beta) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) with N_opt ∝ C^a and D_opt ∝ C^b; a + b = 1."""
    alpha = np.asarray(alpha, dtype=float)
    beta = np.asarray(beta, dtype=float)
    return beta / (alpha + beta), alpha / (alpha + beta)


def allocation_scale(A, B, alpha, beta) -> np.ndarray:
    """G = (alpha A / (beta B))^(1/(alpha+beta))."""
    A, B, alpha, beta = (np.asarray(v, dtype=float) for v in (A, B, alpha, beta))
    return np.power(alpha * A / (beta * B), 1.0 / (alpha + beta))


def optimal_allocation(compute: float, A, B, alpha, beta) -> Allocation:
    a, b = allocation_exponents(alpha, beta)
    scale = allocation_scale(A, B, alpha, beta)
    half_budget = compute / FLOPS_PER_PARAM_TOKEN
    return Allocation(compute=compute,
                      params=scale * np.power(half_budget, a),
                      tokens=np.power(half_budget, b) / scale)


def optimal_loss(compute, E, A, B, alpha, beta) -> np.ndarray:
    """The loss reached when compute is split optimally: the parametric compute frontier."""
    allocation = optimal_allocation(compute, A, B, alpha, beta)
    return (np.asarray(E, dtype=float) + A / np.power(allocation.params, alpha)
            + B / np.power(allocation.tokens, beta))
