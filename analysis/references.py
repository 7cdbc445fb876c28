"""Published scaling laws, kept as data with their citations so every comparison can name its source.

Only numbers we can point to in the cited text are recorded; standard errors are kept where the
source gives them (``None`` where it does not).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LossSurface:
    """L(N, D) = E + A / N^alpha + B / D^beta, with its source and (optional) standard errors."""

    name: str
    citation: str
    E: float
    A: float
    B: float
    alpha: float
    beta: float
    standard_errors: dict[str, float] | None = None

    def loss(self, params: np.ndarray | float, tokens: np.ndarray | float) -> np.ndarray:
        return self.E + self.A / np.power(params, self.alpha) + self.B / np.power(tokens, self.beta)


@dataclass(frozen=True)
class KaplanLaw:
    """Kaplan et al. 2020: L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D, N non-embedding."""

    citation: str
    alpha_N: float
    alpha_D: float
    N_c: float
    D_c: float
    # Exponent of the compute-efficient model size, N_opt ∝ C^0.73 (their Section 6).
    optimal_params_exponent: float

    def loss(self, non_embedding_params: np.ndarray | float, tokens: np.ndarray | float) -> np.ndarray:
        ratio = np.power(self.N_c / non_embedding_params, self.alpha_N / self.alpha_D)
        return np.power(ratio + self.D_c / tokens, self.alpha_D)


@dataclass(frozen=True)
class DataConstrainedLaw:
    """Muennighoff et al. 2023: repeated tokens decay in value, D' = U_D + U_D R_D* (1 - exp(-R_D/R_D*))."""

    citation: str
    R_D_star: float
    R_N_star: float

    def effective_tokens(self, unique_tokens: np.ndarray | float,
                         repetitions: np.ndarray | float) -> np.ndarray:
        # repetitions R_D counts passes beyond the first (epochs - 1).
        return unique_tokens + unique_tokens * self.R_D_star * (
            1.0 - np.exp(-np.asarray(repetitions, dtype=float) / self.R_D_star))


CHINCHILLA_PUBLISHED = LossSurface(
    name="Chinchilla (published)",
    citation="Hoffmann et al. 2022, Training Compute-Optimal Large Language Models, eq. 10",
    E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28,
)

# The exponents at the precision of the paper's TeX source, as tabulated by Besiroglu et al. 2024
# (Table 1); the rounding to 0.34/0.28 alone moves the optimal tokens per parameter noticeably.
CHINCHILLA_FULL_PRECISION = LossSurface(
    name="Chinchilla (TeX precision)",
    citation="Hoffmann et al. 2022 as recovered by Besiroglu et al. 2024 (arXiv:2404.10102), Table 1",
    E=1.69, A=406.4, B=410.7, alpha=0.3392, beta=0.2849,
)

EPOCH_REFIT = LossSurface(
    name="Epoch refit",
    citation=("Besiroglu, Erdil, Barnett, You 2024, Chinchilla Scaling: A replication attempt "
              "(Epoch AI, arXiv:2404.10102), Table 1, standard errors in parentheses there"),
    E=1.8172, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658,
    standard_errors={"E": 0.03, "A": 124.58, "B": 1293.23, "alpha": 0.02, "beta": 0.02},
)

KAPLAN = KaplanLaw(
    citation="Kaplan et al. 2020, Scaling Laws for Neural Language Models, eqs. 1.5 and 6.1",
    alpha_N=0.076, alpha_D=0.095, N_c=8.8e13, D_c=5.4e13, optimal_params_exponent=0.73,
)

MUENNIGHOFF = DataConstrainedLaw(
    citation="Muennighoff et al. 2023, Scaling Data-Constrained Language Models, eq. 5 and fit",
    R_D_star=15.4, R_N_star=5.3,
)

# The rule of thumb read off Chinchilla's allocation (70B parameters on 1.4T tokens).
TOKENS_PER_PARAM_RULE = 20.0
TOKENS_PER_PARAM_RULE_CITATION = "Hoffmann et al. 2022 (Chinchilla: 1.4T tokens for 70B parameters)"

PARAMETRIC_REFERENCES = (CHINCHILLA_PUBLISHED, CHINCHILLA_FULL_PRECISION, EPOCH_REFIT)

# Allocation exponents (a in N_opt ∝ C^a, b in D_opt ∝ C^b) by estimation approach.
CHINCHILLA_ALLOCATION_EXPONENTS = {
    "approach 1": (0.50, 0.50),
    "approach 2": (0.49, 0.51),
    "approach 3": (0.46, 0.54),
}
CHINCHILLA_ALLOCATION_CITATION = "Hoffmann et al. 2022, Table 2"
