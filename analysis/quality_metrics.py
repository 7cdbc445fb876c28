"""The quality effect on every metric: what one textbook token is worth in web tokens, on the loss
and on each accuracy, with a bootstrap interval and a label-permutation null.

One definition throughout: quality multiplies the training tokens, D_eff = m(q) D with m = 1 at the
highest level, and one shape is shared by all levels. For the loss that is the joint per-level
surface of analysis.quality, L(N, m(q) D). For an accuracy it is a logistic link from a floor at
chance to a ceiling at 1,

    acc = c + (1 - c) sigmoid(k0 + kN ln N + kD ln D + s(q)),    m(q) = exp(s(q) / kD),

least squares over grid cells (accuracy against tokens, with a shared size term), one shift s(q)
per level but the highest. A textbook token is worth m(high) / m(low) web tokens on every metric.

An accuracy gets an exchange rate only where it is seen to rise with tokens: the slope of a linear
fit of accuracy on ln D, with the same size and level terms, must have its bootstrap interval above
0. m is a ratio over kD, and on runs near chance the logistic can saturate at its floor, where a
large kD is fitted to noise and its refits barely move; the linear slope has no floor to hide
behind. The fitted kD must be above 0 as well.

Intervals: the cells resampled within each level (percentile bootstrap). A refit with kD <= 0
puts m at its limit as kD falls to 0 (0 or inf, by the sign of the level's shift) rather than
being left out, which would narrow the interval on its open side.

Null: the quality labels shuffled among the runs of one (size, tokens) cell, the shape held at a
fit with no quality term (every level pooled), the level terms refitted; the statistic is the
lowest level's term (ln m on the loss, the logit shift s on an accuracy: at a shape held fixed both
are ln worth up to a constant factor). A difference is reported only at p < 0.05.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.optimize import least_squares
from scipy.special import expit

from analysis.approach3 import SurfaceOptions, build_tokens
from analysis.approach3_core import (
    HuberLogLossObjective,
    fit_surface,
    polish,
    single_threaded_blas,
)
from analysis.intervals import (
    Estimate,
    percentile_estimate,
)
from analysis.permutation import (
    PermutationTest,
    matched_groups,
    mixed_groups,
    relabelings,
    shuffle_within,
    two_sided_p,
)
from analysis.table import InsufficientData, RunTable

# The fact probe asks for one answer among this many distractors plus the true one.
FACT_DISTRACTORS = 3
LOSS_FORM = "per_level"  # the joint fit whose multiplier has the accuracies' definition
POOLED_STARTS = 4  # polished starts of the pooled fit the loss null's refits start from
LOGISTIC_LINK = "logistic in ln N and ln D, ceiling 1, floor at chance"
DATA_SLOPE = 2  # kD's place in an accuracy fit's theta = (k0, kN, kD, s(level 0), ...)


@dataclass(frozen=True)
class AccuracyMetric:
    # A short key (fits.json, the paper's numbers) and the name a reader sees.
    key: str
    name: str
    # The results.csv column, and the RunTable field it is read into.
    column: str
    field: str
    chance: float


ACCURACY_METRICS = (
    AccuracyMetric("pairs", "minimal pairs", "pairs_acc", "pairs_acc", 0.5),
    AccuracyMetric("facts", "facts", "fact_acc", "fact_acc", 1.0 / (FACT_DISTRACTORS + 1)),
    AccuracyMetric("facts_2hop", "facts (2 hops)", "fact_acc_2hop", "fact_acc_2hop", 1.0 / (FACT_DISTRACTORS + 1)),
)


@dataclass(frozen=True)
class LogisticFit:
    """A fitted accuracy link, kept to draw it: theta = (k0, kN, kD, s(level 0), ...), ln N and ln D
    centred at the fitted cells' means."""

    theta: np.ndarray
    log_centre: tuple[float, float]
    chance: float
    levels: tuple[float, ...]

    def predict(self, params, tokens, quality: float) -> np.ndarray:
        index = self.levels.index(quality)
        shift = self.theta[DATA_SLOPE + 1 + index] if index < len(self.levels) - 1 else 0.0
        logit = (self.theta[0] + self.theta[1] * (np.log(params) - self.log_centre[0])
                 + self.theta[2] * (np.log(tokens) - self.log_centre[1]) + shift)
        return self.chance + (1.0 - self.chance) * expit(logit)


@dataclass(frozen=True)
class MetricEffect:
    """What a textbook token is worth on one metric, or why it was not estimated."""

    key: str
    metric: str
    column: str
    link: str
    # Web (lowest level) tokens one textbook (highest level) token is worth; None when skipped.
    worth: Estimate | None = None
    multipliers: dict[float, Estimate] = field(default_factory=dict)
    test: PermutationTest | None = None
    # The cells fitted (named by their first run), and why there is no estimate or no test.
    run_ids: tuple[str, ...] = ()
    skipped: str | None = None
    notes: tuple[str, ...] = ()
    # The accuracy's fitted link (None for the loss, whose surface analysis.quality keeps).
    fit: LogisticFit | None = None

    def verdict(self) -> str:
        if self.worth is None:
            return f"not estimated ({self.skipped})"
        if self.test is None or math.isnan(self.test.p_value):
            return "not tested"
        if not self.test.significant:
            return "no difference shown"
        return "textbook worth more" if self.worth.value > 1 else "textbook worth less"

    def to_json(self) -> dict:
        out: dict = {"metric": self.metric, "column": self.column, "link": self.link, "verdict": self.verdict(),
                     "run_ids": list(self.run_ids), "notes": list(self.notes)}
        if self.skipped is not None:
            out["skipped"] = self.skipped
        if self.worth is not None:
            out["web_tokens_per_textbook_token"] = self.worth.to_json()
            out["multipliers"] = {f"{q:g}": e.to_json() for q, e in self.multipliers.items()}
        if self.test is not None:
            out["permutation"] = self.test.to_json()
        return out


# --- the label-permutation null ----------------------------------------------------------------------


def _level_test(runs: RunTable, statistic, name: str, *, seed: int, n_perm: int, stream: int) -> PermutationTest:
    """statistic(level index per run) -> the lowest level's term, on observed and shuffled labels."""
    levels = runs.quality_levels()
    labels = np.searchsorted(levels, runs.quality)
    groups = matched_groups(runs)
    mixed = mixed_groups(labels, groups)
    if not mixed:
        raise InsufficientData("no size and token count was trained at more than one quality level")
    rng = np.random.default_rng([seed, 9, stream])
    with single_threaded_blas(), np.errstate(all="ignore"):
        observed = statistic(labels)
        null = np.array([statistic(shuffle_within(rng, labels, groups)) for _ in range(n_perm)])
    p_value, low, high, drawn = two_sided_p(observed, null)
    return PermutationTest(observed, low, high, p_value, drawn, mixed, relabelings(labels, groups), statistic=name)


def loss_test(runs: RunTable, *, seed: int, n_perm: int, options: SurfaceOptions = SurfaceOptions()) -> PermutationTest:
    """The null of the loss multiplier: the joint per-level surface refitted on shuffled labels,
    each refit started from one fit of all levels pooled (no quality term), every parameter free."""
    runs = runs.cell_means()
    levels = np.array(runs.quality_levels())
    if not mixed_groups(np.searchsorted(levels, runs.quality), matched_groups(runs)):  # before the fit
        raise InsufficientData("no size and token count was trained at more than one quality level")
    pooled_tokens, _, _, _ = build_tokens(runs, replace(options, quality_form=None))
    # Only a start for the refits (any start that ignores the labels keeps the test exact), so a
    # few polished starts do.
    pooled = fit_surface(HuberLogLossObjective(np.log(runs.params), pooled_tokens, np.log(runs.loss)),
                         polished_starts=min(options.polished_starts, POOLED_STARTS))

    def statistic(labels: np.ndarray) -> float:
        relabelled = replace(runs, quality=levels[labels])
        tokens, _, _, _ = build_tokens(relabelled, replace(options, quality_form=LOSS_FORM))
        objective = HuberLogLossObjective(np.log(runs.params), tokens, np.log(runs.loss))
        start = np.concatenate([pooled.theta, np.zeros(len(objective.names) - pooled.theta.size)])
        theta, value, _ = polish(objective, start)
        return -float(theta[objective.names.index(f"log_multiplier_q{levels[0]:g}")]) if np.isfinite(value) \
            else math.nan

    return _level_test(runs, statistic, "ln worth: the joint per-level surface refitted from the pooled fit",
                       seed=seed, n_perm=n_perm, stream=0)


# --- the accuracy fit --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogisticData:
    """Cells of one accuracy: the shape's design (1, ln N, ln D; centred) and one column per free level."""

    shape: np.ndarray
    accuracy: np.ndarray
    chance: float

    def design(self, labels: np.ndarray, n_levels: int) -> np.ndarray:
        # The highest level is the reference: columns for levels 0 .. n_levels - 2.
        indicators = (labels[:, None] == np.arange(n_levels - 1)[None, :]).astype(float)
        return np.column_stack([self.shape, indicators])


def fit_logistic(data: LogisticData, design: np.ndarray, start: np.ndarray, weights: np.ndarray | None = None,
                 free: np.ndarray | None = None) -> np.ndarray:
    """Least squares of acc = c + (1 - c) sigmoid(design @ theta); only the `free` entries move."""
    free = np.ones(start.size, bool) if free is None else free
    root_weights = np.ones(design.shape[0]) if weights is None else np.sqrt(weights)
    span = 1.0 - data.chance

    def residuals(moving: np.ndarray) -> np.ndarray:
        theta = start.copy()
        theta[free] = moving
        return root_weights * (data.chance + span * expit(design @ theta) - data.accuracy)

    def jacobian(moving: np.ndarray) -> np.ndarray:
        theta = start.copy()
        theta[free] = moving
        sigmoid = expit(design @ theta)  # (no overflow at a saturated fit)
        return (root_weights * span * sigmoid * (1.0 - sigmoid))[:, None] * design[:, free]

    fitted = least_squares(residuals, start[free], jac=jacobian, method="trf", x_scale="jac")
    theta = start.copy()
    theta[free] = fitted.x
    return theta


def _ratio(numerator: np.ndarray, slope: np.ndarray, at_limit: bool) -> np.ndarray:
    """exp(numerator / slope) where slope > 0; where not, NaN, or with at_limit the value as the
    slope falls to 0: inf, 0 or 1 by the numerator's sign."""
    limit = np.where(numerator > 0, np.inf, np.where(numerator < 0, 0.0, 1.0)) if at_limit else np.nan
    with np.errstate(all="ignore"):
        ratio = np.where(slope > 0, np.exp(numerator / slope), limit)
    return np.where(np.isnan(slope) | np.isnan(numerator), np.nan, ratio)  # a failed refit stays NaN


def _worth(thetas: np.ndarray, at_limit: bool = False) -> np.ndarray:
    """m(high) / m(low) = exp(-s(low) / kD) for each row of thetas."""
    thetas = np.atleast_2d(thetas)
    return _ratio(-thetas[:, DATA_SLOPE + 1], thetas[:, DATA_SLOPE], at_limit)


def _multipliers(thetas: np.ndarray, levels: list[float], at_limit: bool = False) -> dict[float, np.ndarray]:
    thetas = np.atleast_2d(thetas)
    out = {}
    for index, q in enumerate(levels):
        shift = thetas[:, DATA_SLOPE + 1 + index] if index < len(levels) - 1 else np.zeros(len(thetas))
        out[q] = _ratio(shift, thetas[:, DATA_SLOPE], at_limit)
    return out


def _token_slope(data: LogisticData, design: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The ln D coefficient of a weighted linear fit of accuracy on the design, one per row of
    weights: how much accuracy rises per e-fold of tokens, with no floor or ceiling to saturate."""
    root = np.sqrt(np.atleast_2d(weights))
    return np.array([np.linalg.lstsq(design * r[:, None], data.accuracy * r, rcond=None)[0][DATA_SLOPE]
                     for r in root])


def _stratified_counts(rng: np.random.Generator, labels: np.ndarray, n_boot: int) -> np.ndarray:
    """(n_boot, n_cells) draws of cells with replacement inside each level, so that no level can
    vanish from a replicate and leave its shift unidentified."""
    counts = np.zeros((n_boot, labels.size))
    for level in np.unique(labels):
        members = np.flatnonzero(labels == level)
        counts[:, members] = rng.multinomial(members.size, np.full(members.size, 1.0 / members.size), size=n_boot)
    return counts


def accuracy_effect(runs: RunTable, metric: AccuracyMetric, *, n_boot: int, seed: int, n_perm: int,
                    stream: int = 0) -> MetricEffect:
    """m(q) on one accuracy with its interval and permutation test, or a MetricEffect saying why not."""
    skipped = MetricEffect(metric.key, metric.name, metric.column, f"{LOGISTIC_LINK} {metric.chance:g}")
    values = getattr(runs, metric.field)
    scored = ~np.isnan(values)
    if not scored.any():
        return replace(skipped, skipped=f"no run has a `{metric.column}` value: a results.csv written before "
                                        "that column, or the metric not scored")
    notes = []
    if not scored.all():
        notes.append(f"{int((~scored).sum())} of {len(runs)} runs have no `{metric.column}` and are left out")
    cells = runs.subset(scored).cell_means()
    levels = cells.quality_levels()
    labels = np.searchsorted(levels, cells.quality)
    n_params = 3 + len(levels) - 1
    for axis, count in (("model sizes", len(np.unique(cells.params))), ("token counts", len(np.unique(cells.tokens)))):
        if count < 2:
            return replace(skipped, skipped=f"needs at least 2 distinct {axis}, got {count}", notes=tuple(notes))
    if len(levels) < 2 or len(cells) < n_params + 2:
        return replace(skipped, notes=tuple(notes), skipped=f"{n_params} parameters need at least {n_params + 2} "
                       f"cells at 2 or more quality levels, got {len(cells)} at {len(levels)}")
    log_params, log_tokens = np.log(cells.params), np.log(cells.tokens)
    shape = np.column_stack([np.ones(len(cells)), log_params - log_params.mean(), log_tokens - log_tokens.mean()])
    data = LogisticData(shape, getattr(cells, metric.field), metric.chance)
    design = data.design(labels, len(levels))
    theta = fit_logistic(data, design, np.zeros(n_params))
    effect = replace(skipped, run_ids=cells.run_ids, notes=tuple(notes),
                     fit=LogisticFit(theta, (float(log_params.mean()), float(log_tokens.mean())), metric.chance,
                                     tuple(levels)))
    counts = _stratified_counts(np.random.default_rng([seed, 8, stream]), labels, n_boot)
    with single_threaded_blas():
        rise = percentile_estimate(float(_token_slope(data, design, np.ones(len(cells)))[0]),
                                   _token_slope(data, design, counts))
    # Without refits (n_boot=0, `--bootstrap 0`) there is no interval and only the point slopes'
    # signs decide, which about half of all grids at chance pass; their rates say "[no interval]".
    if rise.value <= 0 or rise.low <= 0:
        interval = "" if math.isnan(rise.low) else (
            f", {rise.confidence:.0%} interval [{rise.low:.2g}, {rise.high:.2g}], not above 0")
        return replace(effect, skipped=f"accuracy is not seen to rise with tokens on these runs (linear slope "
                                       f"{rise.value:.2g} per e-fold of tokens{interval}): no exchange rate")
    if theta[DATA_SLOPE] <= 0:
        return replace(effect, skipped=f"the logistic fit finds no rise of accuracy with tokens on these runs "
                                       f"(data slope {theta[DATA_SLOPE]:.3g}): no exchange rate")
    with single_threaded_blas(), np.errstate(all="ignore"):
        # Each refit is the whole estimator on its resample: from the point fit's start, not from
        # the point fit, where a saturated logistic would leave every refit stuck.
        start = np.zeros(n_params)
        replicates = np.array([fit_logistic(data, design, start, weights) for weights in counts]).reshape(
            n_boot, n_params)
    flat = replicates[:, DATA_SLOPE] <= 0
    if flat.any():
        notes.append(f"{int(flat.sum())} of {n_boot} bootstrap refits find no rise of accuracy with tokens; "
                     "their m is taken at its limit as the slope falls to 0 (0 or inf)")
    point_multipliers = _multipliers(theta, levels)
    sample_multipliers = _multipliers(replicates, levels, at_limit=True)
    multipliers = {q: percentile_estimate(float(point_multipliers[q][0]), sample_multipliers[q]) for q in levels}
    worth = percentile_estimate(float(_worth(theta)[0]), _worth(replicates, at_limit=True))
    test = None
    if n_perm > 0:
        try:
            test = accuracy_test(cells, data, seed=seed, n_perm=n_perm, stream=stream + 1)
        except InsufficientData as reason:
            notes.append(f"no permutation test: {reason}")
    return replace(effect, worth=worth, multipliers=multipliers, test=test, notes=tuple(notes))


def accuracy_test(cells: RunTable, data: LogisticData, *, seed: int, n_perm: int, stream: int) -> PermutationTest:
    """The null of an accuracy's multiplier: the logistic fit refitted on shuffled labels from a
    fit of every level pooled (no shifts); the statistic is ln worth."""
    levels = len(cells.quality_levels())
    start = np.concatenate([fit_logistic(data, data.shape, np.zeros(3)), np.zeros(levels - 1)])

    def statistic(labels: np.ndarray) -> float:
        return float(np.log(_worth(fit_logistic(data, data.design(labels, levels), start))[0]))

    return _level_test(cells, statistic, "ln worth: the logistic fit refitted from the pooled fit",
                       seed=seed, n_perm=n_perm, stream=stream)


def metric_effects(runs: RunTable, loss_worth: Estimate, loss_multipliers: dict[float, Estimate], *,
                   n_boot: int, seed: int, n_perm: int,
                   options: SurfaceOptions = SurfaceOptions()) -> tuple[MetricEffect, ...]:
    """The loss row (the joint per-level surface's multiplier, passed in) and a row per accuracy."""
    link = f"L(N, m(q) D) = E + A/N^alpha + B/(m(q) D)^beta (joint {LOSS_FORM} fit, Huber on log loss)"
    loss = MetricEffect("loss", "loss", "final_val_loss", link, worth=loss_worth, multipliers=loss_multipliers,
                        run_ids=runs.cell_means().run_ids)
    if n_perm > 0:
        try:
            loss = replace(loss, test=loss_test(runs, seed=seed, n_perm=n_perm, options=options))
        except InsufficientData as reason:
            loss = replace(loss, notes=(f"no permutation test: {reason}",))
    effects = [loss]
    for index, metric in enumerate(ACCURACY_METRICS):
        effects.append(accuracy_effect(runs, metric, n_boot=n_boot, seed=seed, n_perm=n_perm,
                                       stream=2 * (index + 1)))
    return tuple(effects)
