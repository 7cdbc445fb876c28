"""Learning rate per model size: `train.lr=auto` reads it from a rule, log lr = a + b log N.

A rule is a small JSON file. The lab ships the ones its own `grid=lr_sweep` measured (scale smoke
and cpu, on the embedded corpus) and a prior for scale gpu taken from a published fit; a sweep
writes a new one to `<grid dir>/report/lr_rule.json`, which `train.lr_rule=PATH` then uses.

The file says where its numbers come from ("measured": the sweep's sizes, learning rates, losses
and run ids; "prior": the paper), and the settings it holds for (vocabulary, sequence length,
batch, schedule); analysis/lr_sweep.py writes it, and this module only reads it, so `lab` needs
nothing from `analysis`.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from common.errors import ConfigError

RULES_DIR = Path(__file__).parent / "lr_rules"  # the shipped rules, by name: <name>.json
KINDS = ("measured", "prior")


@dataclass(frozen=True)
class LrRule:
    name: str
    kind: str  # "measured" (a sweep of this lab) or "prior" (a published fit)
    intercept: float  # a in log lr = a + b log N (natural logs, N = total parameters)
    slope: float  # b
    sizes: tuple[float, float]  # the N range the rule was measured on (a prior: fitted on)
    source: str  # one line: the sweep that measured it, or the paper
    path: Path

    def lr(self, n_params: float) -> float:
        return math.exp(self.intercept + self.slope * math.log(n_params))

    def describe(self, n_params: float) -> str:
        """What a run records as `train.lr_from`: the rule, its kind, and an extrapolation."""
        lo, hi = self.sizes
        outside = "" if lo * 0.999 <= n_params <= hi * 1.001 else f", extrapolated beyond N {lo:.3g}-{hi:.3g}"
        return f"{self.kind} rule {self.name!r} ({self.source}{outside})"


def rule_path(name_or_path: str) -> Path:
    """A shipped rule's name (lab/lr_rules/<name>.json), or a path to a rule file."""
    if name_or_path.endswith(".json") or "/" in name_or_path:
        return Path(name_or_path).expanduser()
    return RULES_DIR / f"{name_or_path}.json"


def load_rule(name_or_path: str) -> LrRule:
    path = rule_path(name_or_path)
    if not path.is_file():
        shipped = ", ".join(sorted(p.stem for p in RULES_DIR.glob("*.json")))
        raise ConfigError("train.lr_rule", f"no learning-rate rule {name_or_path!r} ({path} is not a file); "
                                           f"shipped rules: {shipped}, or give a rule file's path")
    try:
        data = json.loads(path.read_text())
        rule = LrRule(name=str(data["name"]), kind=str(data["kind"]), intercept=float(data["intercept"]),
                      slope=float(data["slope"]), sizes=(float(data["sizes"][0]), float(data["sizes"][-1])),
                      source=str(data["source"]), path=path)
    except (ValueError, KeyError, IndexError, TypeError) as e:
        raise ConfigError("train.lr_rule", f"{path} is not a learning-rate rule: {e.__class__.__name__}: {e}") from e
    if rule.kind not in KINDS:
        raise ConfigError("train.lr_rule", f"{path}: kind {rule.kind!r} is neither {' nor '.join(KINDS)}")
    if not all(map(math.isfinite, (rule.intercept, rule.slope))):
        raise ConfigError("train.lr_rule", f"{path}: intercept and slope must be finite numbers")
    return rule
