"""Cooldown branches: a run started from its trunk's checkpoint is the run trained from scratch."""
import dataclasses
import json
from pathlib import Path

import pytest

from common.cli import compose
from experiments.run import register
from lab.runs import run_id
from lab.schedule import cooldown_start
from lab.single_run import resolve, run_single
from lab.sweep.runner import EntryConfig, base_run_config
from tests.helpers import TINY

STEP_TOKENS = 4 * 32  # batch 4 x seq 32 (TINY)


def _cfg(cache: Path, out: Path, *extra: str):
    entry = compose("config", [*TINY, f"corpus.cache_dir={cache}", f"out_dir={out}", "train.precision=fp32",
                               "train.log_every=5", "train.eval_every=20", "train.checkpoint_every=7",
                               "train.keep_checkpoints=1", "train.schedule=wsd", "train.cooldown=0.2",
                               "train.decay_shape=1-sqrt", f"train.warmup_tokens={5 * STEP_TOKENS}",
                               "train.progress=none", *extra], register, EntryConfig)
    return base_run_config(entry)


def _train(cfg, **changes):
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **changes))
    return run_single(cfg, log=lambda *_: None), Path(cfg.out_dir)


def _rows(out: Path) -> list[dict]:
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _same_numbers(a: list[dict], b: list[dict]) -> None:
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for key in ("loss", "lr", "grad_norm", "val_loss"):
        assert [r.get(key) for r in a] == pytest.approx([r.get(key) for r in b], abs=1e-6, rel=0), key


@pytest.fixture(scope="module")
def trunk(tmp_path_factory, corpus_cache):
    """One constant-rate trunk serving budgets of 50 and 100 steps: it trains to the larger one's
    cooldown start (80) and keeps the smaller one's (40), which periodic pruning would remove."""
    base = _cfg(corpus_cache, tmp_path_factory.mktemp("trunk"))
    long_steps = 100
    assert cooldown_start(base.train, long_steps) == 80 and cooldown_start(base.train, 50) == 40
    final, out = _train(base, schedule="constant", tokens=80 * STEP_TOKENS, keep_steps=[40, 80])
    (trunk_dir,) = [p for p in out.iterdir() if p.is_dir()]
    kept = sorted(p.name for p in (trunk_dir / "checkpoints").iterdir())
    # keep_checkpoints=1 keeps the newest periodic one (77); 40 and 80 are kept besides it
    assert kept == ["step_00000040", "step_00000077", "step_00000080"], kept
    return trunk_dir


@pytest.mark.parametrize("steps,branch_step", [(100, 80), (50, 40)])
def test_a_branch_equals_the_independent_run(tmp_path, corpus_cache, trunk, steps, branch_step):
    base = _cfg(corpus_cache, tmp_path / "x")
    independent, a = _train(dataclasses.replace(base, out_dir=str(tmp_path / "a")), tokens=steps * STEP_TOKENS)
    branch, b = _train(dataclasses.replace(base, out_dir=str(tmp_path / "b")), tokens=steps * STEP_TOKENS,
                       branch_from=str(trunk), branch_step=branch_step)
    assert branch["parent"] == {"trunk": str(trunk), "step": branch_step}
    assert "parent" not in independent
    assert branch["run_id"] == independent["run_id"]  # the same run, however its first steps came
    for key in ("final_train_loss", "final_val_loss", "final_val_own_loss", "flops", "tokens"):
        assert branch[key] == pytest.approx(independent[key], abs=1e-6, rel=0), key
    _same_numbers(_rows(b), _rows(a))


def test_without_the_trunk_checkpoint_a_branch_trains_from_scratch(tmp_path, corpus_cache, trunk):
    base = _cfg(corpus_cache, tmp_path / "x")
    independent, _ = _train(dataclasses.replace(base, out_dir=str(tmp_path / "a")), tokens=30 * STEP_TOKENS)
    branch, _ = _train(dataclasses.replace(base, out_dir=str(tmp_path / "b")), tokens=30 * STEP_TOKENS,
                       branch_from=str(trunk), branch_step=24)  # the trunk kept no step 24
    assert "parent" not in branch
    assert branch["final_val_loss"] == pytest.approx(independent["final_val_loss"], abs=1e-6, rel=0)


def test_a_branch_whose_trunk_ran_another_rate_before_the_branch_step_is_refused(tmp_path, corpus_cache, trunk):
    # A cosine run of 60 steps as the trunk: the same fields but for the schedule's tail, yet its
    # rate falls from the end of warmup on, so its step 40 is not the branch's.
    from common.errors import ConfigError

    base = _cfg(corpus_cache, tmp_path / "cos")
    _, out = _train(base, schedule="cosine", tokens=60 * STEP_TOKENS, keep_steps=[40])
    (cosine,) = [p for p in out.iterdir() if p.is_dir()]
    with pytest.raises(ConfigError) as refused:
        _train(dataclasses.replace(base, out_dir=str(tmp_path / "b")), tokens=50 * STEP_TOKENS,
               branch_from=str(cosine), branch_step=40)
    assert "learning rate before the branch step" in refused.value.reason


def test_branch_fields_leave_the_run_id_alone(tmp_path, corpus_cache):
    cfg = _cfg(corpus_cache, tmp_path)
    moved = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, branch_from="/elsewhere", branch_step=3,
                                                               keep_steps=[3]))
    assert run_id(moved) == run_id(cfg)


def test_a_branch_whose_trunk_differs_beyond_the_schedule_tail_is_refused(tmp_path, corpus_cache, trunk):
    from common.errors import ConfigError

    base = _cfg(corpus_cache, tmp_path)
    with pytest.raises(ConfigError) as refused:
        _train(base, tokens=50 * STEP_TOKENS, lr=resolve(base).train.lr / 2, branch_from=str(trunk), branch_step=40)
    assert refused.value.field == "train.branch_from" and "train.lr" in refused.value.reason
