"""Straight lines in log-log space: y = coefficient * x^exponent, fitted by least squares."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.insufficient import InsufficientData


@dataclass(frozen=True)
class PowerLaw:
    exponent: float
    coefficient: float

    def __call__(self, x: np.ndarray | float) -> np.ndarray:
        return self.coefficient * np.power(x, self.exponent)


def fit_power_law(x: np.ndarray, y: np.ndarray) -> PowerLaw:
    """Least squares of log10 y on log10 x; needs two distinct x."""
    log_x = np.log10(np.asarray(x, dtype=float))
    log_y = np.log10(np.asarray(y, dtype=float))
    if np.unique(log_x).size < 2:
        raise InsufficientData(f"a power law needs at least 2 distinct compute values, got "
                               f"{np.unique(log_x).size}")
    slope, intercept = np.polyfit(log_x, log_y, 1)
    return PowerLaw(exponent=float(slope), coefficient=float(10.0 ** intercept))
