"""What a fit must show before its numbers are a result, not a demonstration of the pipeline
(the method issue's criteria). The report checks a fit against them (analysis.report_text) and
analysis.design_power asks how often a grid could meet them at a given noise."""

MIN_E_LOW = 0.1  # the irreducible loss identified: its interval clear of 0
MAX_EXPONENT_WIDTH = 0.3  # alpha and beta each known to within this interval width
MIN_ENVELOPE_SIZES = 3  # the envelope brackets the optimum: it moves through this many sizes


def e_identified(low: float) -> bool:
    """E's interval is clear of MIN_E_LOW."""
    return low >= MIN_E_LOW


def exponent_pinned(width: float) -> bool:
    """An exponent's interval is no wider than MAX_EXPONENT_WIDTH."""
    return width <= MAX_EXPONENT_WIDTH
