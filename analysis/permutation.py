"""The label-permutation null every quality difference is held against: the quality labels shuffled
among the runs of one grid cell (same size and token count), which differ in nothing but the label
when quality has no effect; a difference counts only at p < SIGNIFICANCE_LEVEL.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analysis.intervals import format_number, json_number
from analysis.table import RunTable

SIGNIFICANCE_LEVEL = 0.05


@dataclass(frozen=True)
class PermutationTest:
    """An observed statistic (a high-minus-low level difference) against its values under
    shuffled labels."""

    observed: float
    # Central 95% range of the null values, and the two-sided p-value of |observed|.
    null_low: float
    null_high: float
    p_value: float
    permutations: int
    # Matched groups whose labels could be shuffled, and the distinct relabelings they allow.
    matched_groups: int
    relabelings: float
    # What was recorded, where the caller's context does not say it.
    statistic: str = ""

    @property
    def significant(self) -> bool:
        return self.p_value < SIGNIFICANCE_LEVEL

    def to_json(self) -> dict:
        out = {"observed": json_number(self.observed), "null_95": [json_number(self.null_low),
                                                                   json_number(self.null_high)],
               "p_value": json_number(self.p_value), "significant": self.significant,
               "permutations": self.permutations, "matched_groups": self.matched_groups,
               "relabelings": json_number(self.relabelings)}
        return {"statistic": self.statistic, **out} if self.statistic else out


def format_p(p: float) -> str:
    """A p-value in two significant digits, or as many more as keep it off the significance
    level when it is not the level (0.0498 printed as 0.05 beside a verdict of "a difference")."""
    digits = 2
    text = format_number(p, digits)
    while not math.isnan(p) and p != SIGNIFICANCE_LEVEL and float(text) == SIGNIFICANCE_LEVEL and digits < 8:
        digits += 1
        text = format_number(p, digits)
    return text


def matched_groups(runs: RunTable) -> np.ndarray:
    """Group index of every run: one group per grid cell (size, token count, and whether it
    repeated data), so that the runs of a group differ only in their quality label. Not the exact
    epochs: each quality level's corpus has its own token count, so the same cell of two levels
    differs in epochs by a few percent (0.0205 against 0.0185), and no group would hold both."""
    repeated = np.nan_to_num(runs.epochs, nan=0.0) > 1
    cells = np.round(np.column_stack([np.log10(runs.params), np.log10(runs.tokens), repeated]), 3)
    return np.unique(cells, axis=0, return_inverse=True)[1].ravel()


def shuffle_within(rng: np.random.Generator, labels: np.ndarray, groups: np.ndarray) -> np.ndarray:
    shuffled = labels.copy()
    for group in np.unique(groups):
        members = np.flatnonzero(groups == group)
        shuffled[members] = rng.permutation(labels[members])
    return shuffled


def relabelings(labels: np.ndarray, groups: np.ndarray) -> float:
    """Distinct labellings a shuffle within groups can give: per group n! / prod(count of each label!)."""
    total = 1.0
    for group in np.unique(groups):
        _, counts = np.unique(labels[groups == group], return_counts=True)
        total *= math.factorial(int(counts.sum())) / math.prod(math.factorial(int(c)) for c in counts)
    return total


def mixed_groups(labels: np.ndarray, groups: np.ndarray) -> int:
    """Groups holding more than one label: the only ones a shuffle changes."""
    return int(sum(len(np.unique(labels[groups == g])) > 1 for g in np.unique(groups)))


def two_sided_p(observed: float, null: np.ndarray) -> tuple[float, float, float, int]:
    """(p, null 2.5%, null 97.5%, null draws) of |observed| among the null's values; the
    observed labelling counts among the permutations, so p is never exactly 0. A draw whose refit
    found no finite statistic (an accuracy that did not rise with tokens: an unbounded ratio)
    counts as at least as extreme as the observed one, so dropping it cannot shrink p."""
    finite = null[np.isfinite(null)]
    if finite.size == 0 or not math.isfinite(observed):
        return math.nan, math.nan, math.nan, 0
    low, high = np.quantile(finite, [0.025, 0.975])
    as_extreme = np.sum(np.abs(finite) >= abs(observed)) + (null.size - finite.size)
    p_value = (1.0 + as_extreme) / (1.0 + null.size)
    return float(p_value), float(low), float(high), int(null.size)
