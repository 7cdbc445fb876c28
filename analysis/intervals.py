"""Point estimates with bootstrap percentile intervals, and the resampling of runs behind them.

With seed replicates the resampled "runs" are grid cells at their seeds' mean loss (every approach
fits RunTable.cell_means), which makes the bootstrap a cluster bootstrap: a drawn cell brings all
of its seeds, so every replicate sees each cell's seed noise as measured, and k seeds of a cell are
never taken for k independent points (pseudo-replication, which would narrow an interval by up to
sqrt(k)). Seeds are not redrawn inside a drawn cell: the cell's mean already carries their noise,
and a second level of resampling would add it again (Davison & Hinkley 1997, sec. 3.8). With one
run per cell the cells are the runs, and nothing changes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DEFAULT_CONFIDENCE = 0.95


@dataclass(frozen=True)
class Estimate:
    """A fitted quantity on all runs, and the percentile interval of its bootstrap refits."""

    value: float
    low: float
    high: float
    # Bootstrap refits that produced a finite-or-infinite number (failed refits are dropped).
    replicates: int
    confidence: float = DEFAULT_CONFIDENCE

    def contains(self, x: float) -> bool:
        return self.low <= x <= self.high

    def format(self, digits: int = 3) -> str:
        if self.replicates == 0:
            return f"{format_number(self.value, digits)} [no interval]"
        return (f"{format_number(self.value, digits)} "
                f"[{format_number(self.low, digits)}, {format_number(self.high, digits)}]")

    def to_json(self) -> dict:
        return {"value": json_number(self.value), "ci": [json_number(self.low), json_number(self.high)],
                "confidence": self.confidence, "replicates": self.replicates}


def format_number(x: float, digits: int = 3) -> str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x != 0 and (abs(x) >= 1e5 or abs(x) < 1e-3):
        return f"{x:.{max(digits - 1, 0)}e}"
    if abs(x) >= 10 ** digits:  # "%g" would switch to exponent notation below 1e5
        return f"{x:.0f}"
    return f"{x:.{digits}g}"


def json_number(x: float) -> float | str | None:
    """JSON has no inf or nan: write them as strings (and nan as null) instead of invalid tokens."""
    x = float(x)
    if math.isnan(x):
        return None
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def plain_json(value):
    """numpy values as plain lists and floats; NaN as null and infinities as strings (valid JSON)."""
    if isinstance(value, dict):
        return {str(key): plain_json(item) for key, item in value.items()}
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [plain_json(item) for item in value]
    if isinstance(value, float):
        return json_number(value)
    return value


def percentile_estimate(value: float, samples: np.ndarray,
                        confidence: float = DEFAULT_CONFIDENCE) -> Estimate:
    """Percentile interval of the bootstrap samples; NaN marks a failed refit and is dropped."""
    samples = np.asarray(samples, dtype=float)
    samples = samples[~np.isnan(samples)]
    if samples.size == 0:
        return Estimate(float(value), math.nan, math.nan, 0, confidence)
    tail = (1.0 - confidence) / 2.0
    # Linear interpolation next to an infinite sample would give inf*0 = nan; rank selection is
    # exact there and indistinguishable from linear for a thousand samples.
    method = "linear" if np.all(np.isfinite(samples)) else "inverted_cdf"
    low, high = np.quantile(samples, [tail, 1.0 - tail], method=method)
    return Estimate(float(value), float(low), float(high), int(samples.size), confidence)


def resample_counts(rng: np.random.Generator, n_points: int, n_boot: int) -> np.ndarray:
    """How often each run appears in each bootstrap sample, (n_boot, n_points).

    Counts are equivalent to resampling rows with replacement and let a weighted objective reuse
    the full-data arrays instead of copying them per replicate.
    """
    return rng.multinomial(n_points, np.full(n_points, 1.0 / n_points), size=n_boot).astype(float)


def stratified_resample(rng: np.random.Generator, group_ids: np.ndarray) -> np.ndarray:
    """Row indices resampled with replacement inside each group (keeps a designed grid's groups)."""
    chosen = []
    for group in np.unique(group_ids):
        members = np.flatnonzero(group_ids == group)
        chosen.append(rng.choice(members, size=members.size, replace=True))
    return np.sort(np.concatenate(chosen)) if chosen else np.array([], dtype=int)
