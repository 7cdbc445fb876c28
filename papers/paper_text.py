"""A paper's text from its template and the numbers of this build.

Templates are Markdown with three kinds of placeholder, all filled by papers/build.py:

    {{ KEY }}            a value of numbers.json (a formatted estimate "v [low, high]" or a sentence)
    {{ figure:NAME }}    the figure's PNG with its caption from paper.yaml
    {{ table:NAME }}     the Markdown table built for this paper

Every number in the Results comes from the fits JSON of the same build, so the text cannot disagree
with the figures. An unknown key is an error (the build stops), never a silently empty hole.
"""
from __future__ import annotations

import math
import re

from analysis.intervals import format_number
from analysis.permutation import format_p
from analysis.quality_metrics import ACCURACY_METRICS
from analysis.references import CHINCHILLA_PUBLISHED, EPOCH_REFIT, TOKENS_PER_PARAM_RULE
from common.errors import ConfigError

PLACEHOLDER = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")
ESTIMATES = {"alpha": "alpha", "beta": "beta", "E": "E", "A": "A", "B": "B", "a": "params_exponent",
             "b": "tokens_exponent", "n_opt": "params_at_budget", "d_opt": "tokens_at_budget",
             "tpp": "tokens_per_param_at_budget"}


def _num(x) -> str:
    if x is None:
        return "nan"
    if isinstance(x, str):
        return x
    return format_number(float(x))


def _float(x) -> float:
    if x is None:
        return math.nan
    if isinstance(x, str):
        return math.inf if x == "inf" else -math.inf if x == "-inf" else math.nan
    return float(x)


def estimate_text(estimate: dict | None, missing: str) -> str:
    if not estimate or estimate.get("value") is None:
        return f"not estimated ({missing})"
    if not estimate.get("replicates"):
        return f"{_num(estimate['value'])} (no interval)"
    low, high = estimate["ci"]
    return f"{_num(estimate['value'])} [95% CI {_num(low)}, {_num(high)}]"


def _relation(estimate: dict | None, value: float, name: str) -> str:
    """Where a published value lies against our interval, as a clause."""
    if not estimate or estimate.get("value") is None or not estimate.get("replicates"):
        return f"cannot be compared with {name} ({format_number(value, 4)}), having no interval"
    low, high = _float(estimate["ci"][0]), _float(estimate["ci"][1])
    if low <= value <= high:
        return f"is consistent with {name} ({format_number(value, 4)} lies inside the 95% interval)"
    side = "below" if value < low else "above"
    return f"differs from {name} ({format_number(value, 4)} lies {side} the 95% interval)"


def _worth_verdict(estimate: dict | None, low_q: str, high_q: str) -> str:
    if not estimate or estimate.get("value") is None or not estimate.get("replicates"):
        return "The runs of this build cannot say how much a textbook token is worth (no interval)."
    low, high = _float(estimate["ci"][0]), _float(estimate["ci"][1])
    if low > 1:
        return (f"The whole 95% interval lies above 1: at equal token count, quality-{high_q} data "
                f"trains better than quality-{low_q} data.")
    if high < 1:
        return (f"The whole 95% interval lies below 1: at equal token count, quality-{low_q} data "
                f"trains better than quality-{high_q} data.")
    return "The 95% interval includes 1: these runs cannot tell the two qualities apart."


EXPONENT_WORDS = {"alpha": ("α", "size"), "beta": ("β", "data")}


def _difference_text(test: dict | None, missing: str) -> str:
    if not test or test.get("observed") is None:
        return f"not tested ({missing})"
    low, high = test["null_95"]
    return (f"{_num(test['observed'])} (permutation null 95% range {_num(low)} to {_num(high)}, "
            f"p = {format_p(_float(test['p_value']))})")


def _exponents_verdict(tests: dict, missing: str, low_q: str, high_q: str) -> str:
    """The finding about the exponents, worded by the permutation tests' verdicts only."""
    if not tests:
        return f"Whether quality changes the exponents was not tested ({missing})."
    permutations = next(iter(tests.values())).get("permutations", 0)
    relabelings = _float(next(iter(tests.values())).get("relabelings"))
    if relabelings < 40:  # the observed labelling and its mirror tie: p >= 2 / relabelings > 0.05
        return (f"The matched runs allow only {relabelings:.0f} distinct relabelings, too few for any "
                "difference to stand out: these runs cannot say whether quality changes the exponents.")
    significant = [name for name, test in tests.items() if test.get("significant")]
    if not significant:
        return (f"Neither difference lies outside what shuffled labels give ({permutations} relabelings of "
                f"matched runs): these runs give no evidence that quality changes how loss scales with size "
                "or data.")
    named = " and ".join(f"the {EXPONENT_WORDS[n][1]} exponent {EXPONENT_WORDS[n][0]}" for n in significant)
    which = f"Only {named} differs" if len(significant) < len(tests) else f"Both {named} differ"
    return (f"{which} beyond what shuffled labels give ({permutations} relabelings of matched runs): "
            f"quality-{high_q} and quality-{low_q} data scale differently there.")


def _level_key(level: dict) -> str:
    return "all" if level.get("quality") is None else f"q{level['quality']:g}"


def numbers(fit_json: dict, ctx) -> dict[str, str]:
    """Every value a template can use, as text; the keys are listed in the build's numbers.json."""
    out: dict[str, str] = {"scale": ctx.scale, "budget": f"{ctx.budget:.3g}"}
    settings = next((j["settings"] for j in fit_json.values() if "settings" in j), {})
    out["bootstrap"] = str(settings.get("bootstrap", 0))
    out["seed"] = str(settings.get("seed", 0))
    out["chinchilla.alpha"], out["chinchilla.beta"] = f"{CHINCHILLA_PUBLISHED.alpha}", f"{CHINCHILLA_PUBLISHED.beta}"
    out["epoch.alpha"], out["epoch.beta"] = f"{EPOCH_REFIT.alpha}", f"{EPOCH_REFIT.beta}"
    from analysis.approach3_core import optimal_allocation
    for label, law in (("chinchilla", CHINCHILLA_PUBLISHED), ("epoch", EPOCH_REFIT)):
        split = optimal_allocation(ctx.budget, law.A, law.B, law.alpha, law.beta)
        out[f"{label}.tpp"] = format_number(float(split.tokens_per_param))
    out["rule.tpp"] = f"{TOKENS_PER_PARAM_RULE:g}"
    out.update({f"chance.{metric.key}": f"{metric.chance:g}" for metric in ACCURACY_METRICS})
    total = 0
    for key, fits in fit_json.items():
        table = ctx.tables[key]
        out[f"{key}.runs"] = str(len(table.runs))
        out[f"{key}.excluded"] = str(len(table.excluded))
        total += len(table.runs)
        levels = fits.get("levels", [])
        out[f"{key}.levels"] = ", ".join(f"{lvl['quality']:g}" for lvl in levels if lvl.get("quality") is not None) \
            or "one"
        if fits.get("skipped"):
            levels = [{"quality": None, "approach3": {"skipped": fits["skipped"]}}]
        named = {_level_key(lvl): lvl for lvl in levels}
        if levels:
            named["low"], named["high"] = levels[0], levels[-1]
        for name, level in named.items():
            fit = level.get("approach3", {})
            reason = fit.get("skipped", "no fit")
            estimates = fit.get("estimates", {})
            prefix = f"{key}.{name}"
            out[f"{prefix}.q"] = "–" if level.get("quality") is None else f"{level['quality']:g}"
            out[f"{prefix}.runs"] = str(level.get("runs", 0))
            for short, long in ESTIMATES.items():
                out[f"{prefix}.{short}"] = estimate_text(estimates.get(long), reason)
            out[f"{prefix}.beta_vs_chinchilla"] = _relation(estimates.get("beta"), CHINCHILLA_PUBLISHED.beta,
                                                            "Chinchilla's beta")
            out[f"{prefix}.beta_vs_epoch"] = _relation(estimates.get("beta"), EPOCH_REFIT.beta, "Epoch's beta")
            out[f"{prefix}.alpha_vs_chinchilla"] = _relation(estimates.get("alpha"), CHINCHILLA_PUBLISHED.alpha,
                                                             "Chinchilla's alpha")
            out[f"{prefix}.alpha_vs_epoch"] = _relation(estimates.get("alpha"), EPOCH_REFIT.alpha, "Epoch's alpha")
            out[f"{prefix}.tpp_vs_rule"] = _relation(estimates.get("tokens_per_param_at_budget"),
                                                     TOKENS_PER_PARAM_RULE, "the 20 tokens/parameter rule")
        out.update(_quality_numbers(key, fits))
    out["runs.total"] = str(total)
    return out


def _quality_numbers(key: str, fits: dict) -> dict[str, str]:
    """The exchange rate and the exponent tests of one grid's quality fits, as text."""
    out: dict[str, str] = {}
    quality = fits.get("quality") or {}
    reason = quality.get("skipped") or fits.get("skipped") or "no quality fit"
    worth = quality.get("web_tokens_per_textbook_token") or {}
    levels_q = [f"{q:g}" for q in quality.get("levels", [])]
    low_q, high_q = (levels_q[0], levels_q[-1]) if levels_q else ("low", "high")
    out[f"{key}.worth.exponential"] = estimate_text(worth.get("joint exponential"), reason)
    out[f"{key}.worth.per_level"] = estimate_text(worth.get("joint per_level"), reason)
    out[f"{key}.worth.equal_loss"] = estimate_text(worth.get("per-level fits, equal loss"), reason)
    out[f"{key}.worth.verdict"] = _worth_verdict(worth.get("joint exponential"), low_q, high_q)
    multipliers = (quality.get("multipliers") or {}).get("exponential") or {}
    out[f"{key}.multiplier.low"] = estimate_text(multipliers.get(low_q), reason)
    tests = quality.get("exponent_differences") or {}
    untested = next((n.split(": ", 1)[-1] for n in quality.get("notes", []) if "permutation test" in n), reason)
    for name in EXPONENT_WORDS:
        out[f"{key}.diff.{name}"] = _difference_text(tests.get(name), untested)
    out[f"{key}.exponents.verdict"] = _exponents_verdict(tests, untested, low_q, high_q)
    out.update(_effect_numbers(key, quality.get("metric_effects") or {}, reason))
    return out


# The metrics of analysis.quality_metrics, as the text names them.
EFFECT_METRICS = {"loss": "loss", "pairs": "minimal pairs", "facts": "facts", "facts_2hop": "two-hop facts"}


def _effect_verdict(effect: dict) -> str:
    """The permutation test's verdict in words; only p < 0.05 is called a difference."""
    test = effect.get("permutation")
    if not test or test.get("p_value") is None:
        return "not tested"
    p = f"permutation p = {format_p(_float(test['p_value']))}"
    if not test.get("significant"):
        return f"{p}: no difference beyond shuffled labels"
    better = "textbook" if _float(effect["web_tokens_per_textbook_token"]["value"]) > 1 else "web"
    return f"{p}: a difference, {better} tokens worth more"


def _effect_numbers(key: str, effects: dict, reason: str) -> dict[str, str]:
    """What one textbook token is worth on each metric, its p and verdict, and one sentence of all."""
    out: dict[str, str] = {}
    clauses, estimated, tested, different, untested = [], [], [], [], []
    for metric, words in EFFECT_METRICS.items():
        effect = effects.get(metric) or {}
        missing = effect.get("skipped") or (reason if not effects else "not in this build's fits")
        worth = estimate_text(effect.get("web_tokens_per_textbook_token"), missing)
        if "web_tokens_per_textbook_token" not in effect:
            out[f"{key}.effect.{metric}"], out[f"{key}.effect.{metric}.verdict"] = worth, "not estimated"
            clauses.append(f"in {words}, {worth}")
            continue
        verdict = _effect_verdict(effect)
        out[f"{key}.effect.{metric}"], out[f"{key}.effect.{metric}.verdict"] = worth, verdict
        clauses.append(f"in {words}, {worth} web tokens ({verdict})")
        estimated.append(words)
        test = effect.get("permutation") or {}
        if test.get("p_value") is None:
            untested += [n.split(": ", 1)[-1] for n in effect.get("notes", []) if n.startswith("no permutation test")]
            continue
        tested.append(words)
        if test.get("significant"):
            different.append(words)
    out[f"{key}.effects.sentence"] = "One textbook token is worth: " + "; ".join(clauses) + "."
    if not estimated:
        verdict = "These runs support no exchange rate on any metric."
    elif not tested:
        why = f" ({untested[0]})" if untested else ""
        verdict = f"No exchange rate could be held against shuffled quality labels{why}."
    elif len(different) == len(tested):
        verdict = f"On every metric tested ({', '.join(tested)}) the exchange rate stands out from shuffled labels."
    elif different:
        verdict = (f"Only on {' and '.join(different)} does the exchange rate stand out from shuffled quality "
                   f"labels; on {' and '.join(w for w in tested if w not in different)} it does not.")
    else:
        verdict = (f"On no metric tested ({', '.join(tested)}) does the exchange rate stand out from shuffled "
                   "quality labels: these runs show no difference between the two grades of data there.")
    out[f"{key}.effects.verdict"] = verdict
    return out


def fill(source: str, values: dict[str, str], *, figures: dict[str, str], captions: dict[str, str],
         tables: dict[str, str]) -> str:
    def replace(match: re.Match) -> str:
        key = match.group(1)
        if key.startswith("figure:"):
            name = key.split(":", 1)[1]
            if name not in figures:
                raise ConfigError("template", f"unknown figure {name!r} (paper.yaml lists {', '.join(figures)})")
            caption = captions.get(name, "")
            return f"![{name}]({figures[name]})\n\n*Figure ({name}).* {caption}".rstrip()
        if key.startswith("table:"):
            name = key.split(":", 1)[1]
            if name not in tables:
                raise ConfigError("template", f"unknown table {name!r} (paper.yaml lists {', '.join(tables)})")
            caption = captions.get(name, "")
            return f"{tables[name]}\n\n*Table ({name}).* {caption}".rstrip()
        if key not in values:
            raise ConfigError("template", f"unknown value {key!r}; see numbers.json for the keys")
        return values[key]

    return PLACEHOLDER.sub(replace, source)
