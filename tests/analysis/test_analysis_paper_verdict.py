"""The data-quality paper words its finding about the exponents by the permutation tests' verdict."""
import json
import sys
from dataclasses import replace

from analysis.pipeline import FitRequest, fit_table
from analysis.report_text import fits_to_json
from analysis.synthetic import MEASURED_CPU_SURFACE, as_table, grid_rows
from tests.helpers import ROOT

SIZES, BUDGETS = [8.0e4, 2.3e5, 5.3e5], [2.5e5, 5.0e5, 1.0e6]


def _paper_numbers(web_surface) -> dict[str, str]:
    sys.path.insert(0, str(ROOT / "papers"))
    import paper_text

    rows = grid_rows({0.0: web_surface, 1.0: MEASURED_CPU_SURFACE}, SIZES, BUDGETS, seed=0)
    fits = fit_table(as_table(rows), FitRequest(n_boot=0, seed=0, budget=1e12, n_perm=100))
    return paper_text._quality_numbers("data_quality", json.loads(json.dumps(fits_to_json(fits))))


def test_no_quality_effect_is_worded_as_none_found():
    values = _paper_numbers(MEASURED_CPU_SURFACE)
    assert "give no evidence that quality changes" in values["data_quality.exponents.verdict"]
    assert "permutation null 95% range" in values["data_quality.diff.beta"]


def test_a_data_exponent_effect_is_worded_as_found_in_beta_only():
    web = replace(MEASURED_CPU_SURFACE, beta=MEASURED_CPU_SURFACE.beta - 0.1,
                  B=MEASURED_CPU_SURFACE.B * 5e5 ** -0.1)
    verdict = _paper_numbers(web)["data_quality.exponents.verdict"]
    assert verdict.startswith("Only the data exponent β differs beyond what shuffled labels give"), verdict


def test_without_matched_runs_the_paper_says_it_was_not_tested():
    sys.path.insert(0, str(ROOT / "papers"))
    import paper_text

    fit_json = {"quality": {"levels": [0.0, 1.0], "notes": [
        "no permutation test of the exponents: no size and token count was trained at both the lowest "
        "and highest level"]}}
    values = paper_text._quality_numbers("data_quality", fit_json)
    assert values["data_quality.diff.beta"].startswith("not tested (no size and token count")
    assert "was not tested" in values["data_quality.exponents.verdict"]
