"""train.lr=auto: the rate comes from a rule at the resolved model's N, the run records which rule
(measured or a prior), its id is the one of the same number given by hand, and a bad rule fails
before any compute."""
from __future__ import annotations

import dataclasses
import json
import math

import pytest

from common.errors import ConfigError
from lab.accounting import total_params
from lab.config import RunConfig, TrainConfig
from lab.lr_rule import load_rule
from lab.runs import run_id
from lab.single_run import resolve
from tests.helpers import run_entry


def _auto(rule: str, params: float = 1e6) -> RunConfig:
    cfg = RunConfig()
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, params=params),
                               train=dataclasses.replace(cfg.train, lr="auto", lr_rule=rule))


def test_auto_takes_the_rules_rate_at_the_picked_shape(tmp_path):
    path = tmp_path / "rule.json"
    path.write_text(json.dumps({"name": "t", "kind": "measured", "intercept": math.log(0.5), "slope": -0.4,
                                "sizes": [1e4, 1e5], "source": "a test"}))
    cfg = resolve(_auto(str(path)))
    n = total_params(cfg.model)
    assert cfg.train.lr == pytest.approx(0.5 * n ** -0.4, rel=1e-3)
    assert cfg.train.lr_from.startswith("measured rule 't' (a test, extrapolated beyond N")
    by_hand = resolve(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, lr_from=None, lr_rule="cpu")))
    assert run_id(by_hand) == run_id(cfg)  # the number is the run; where it came from is a record
    assert resolve(cfg) == cfg  # resolving twice changes nothing


def test_the_gpu_prior_is_marked_a_prior():
    cfg = resolve(_auto("gpu-prior", params=4e7))
    assert cfg.train.lr_from.startswith("prior rule 'gpu-prior' (DeepSeek LLM 2024")
    assert cfg.train.lr == pytest.approx(load_rule("gpu-prior").lr(total_params(cfg.model)), rel=1e-3)


def test_a_missing_or_broken_rule_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="train.lr_rule: no learning-rate rule 'nope'.*shipped rules: .*gpu-prior"):
        resolve(_auto("nope"))
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": "x", "kind": "guess", "intercept": 0, "slope": 0, "sizes": [1], "source": ""}')
    with pytest.raises(ConfigError, match="kind 'guess'"):
        resolve(_auto(str(broken)))
    with pytest.raises(ConfigError, match="train.lr: must be a number > 0 or auto"):
        resolve(dataclasses.replace(RunConfig(), train=TrainConfig(lr="fast")))


def test_the_entry_point_refuses_a_bad_rule_in_one_line(tmp_path):
    done = run_entry(["train.lr_rule=nope", "train.tokens=1e4"], cwd=tmp_path, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: train.lr_rule: no learning-rate rule 'nope'")


def test_the_scale_presets_use_auto(tmp_path):
    from common.cli import compose
    from experiments.run import register
    from lab.sweep.runner import EntryConfig, base_run_config

    for scale, rule in (("smoke", "smoke"), ("cpu", "cpu"), ("gpu", "gpu-prior")):
        entry = compose("config", [f"scale={scale}"], register, EntryConfig)
        assert (entry.train.lr, entry.train.lr_rule) == ("auto", rule)
        if scale != "gpu":
            assert resolve(base_run_config(entry)).train.lr_from.startswith(f"measured rule '{rule}'")
