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


def test_a_p_value_just_under_the_level_is_not_printed_as_the_level():
    from analysis.permutation import SIGNIFICANCE_LEVEL, format_p

    # 10 of 200 relabelings at least as extreme: p = 10/201, "a difference", once printed "0.05".
    assert 10 / 201 < SIGNIFICANCE_LEVEL and format_p(10 / 201) == "0.0498"
    assert format_p(0.0512) == "0.051" and format_p(0.05) == "0.05"
    assert format_p(0.005) == "0.005" and format_p(0.47) == "0.47"
    assert format_p(100 / 2001) == "0.04998"  # 2,000 relabelings: three digits would still say 0.05


def test_every_printed_p_value_goes_through_format_p():
    """The paper's table once printed p with format_number while the text used format_p."""
    import re

    pattern = re.compile(r"format_number\([^)]*p_value|p_value[^\n]*:\.\d+[gf]")
    offenders = [f"{path.relative_to(ROOT)}:{n}" for folder in ("analysis", "papers") for path in (ROOT / folder).glob("*.py")
                 for n, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert not offenders, offenders
