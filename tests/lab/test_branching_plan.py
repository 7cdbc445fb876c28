"""lab.sweep.branching: one trunk per family of budgets, and the compute ledger."""
import dataclasses
import json
from pathlib import Path

import pytest

from common.errors import ConfigError
from lab.config import RunConfig
from lab.schedule import cooldown_start
from lab.sweep.branching import as_branch_cell, compute_ledger, plan_trunks

STEP = 8 * 128  # batch 8 x seq 128


def _cell(tokens: float, d_model: int = 64, seed: int = 0) -> RunConfig:
    cfg = RunConfig(seed=seed)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, d_model=d_model),
                              train=dataclasses.replace(cfg.train, tokens=tokens, batch_size=8, seq_len=128,
                                                        warmup_tokens=4 * STEP))
    return as_branch_cell(cfg)


def test_each_family_gets_one_trunk_that_ends_at_its_longest_cooldown(tmp_path):
    budgets = [100 * STEP, 200 * STEP, 400 * STEP, 800 * STEP]
    cells = [_cell(b) for b in budgets] + [_cell(b, d_model=128) for b in budgets] + [_cell(budgets[0], seed=1)]
    dirs = [tmp_path / "runs" / f"cell{i}" for i in range(len(cells))]
    branched, trunks = plan_trunks(cells, dirs, tmp_path)
    assert len(trunks) == 2  # the lone seed-1 cell has no family: no trunk
    assert branched[-1].train.branch_from is None
    small = trunks[0] if trunks[0].cfg.model.d_model == 64 else trunks[1]
    starts = [cooldown_start(c.train, int(c.train.tokens // STEP)) for c in cells[:4]]
    assert starts == [80, 160, 320, 640]
    assert small.cfg.train.schedule == "constant" and small.cfg.train.tokens == 640 * STEP
    assert small.cfg.train.keep_steps == starts
    assert small.run_dir.parent == tmp_path / "trunks" and small.cells == tuple(dirs[:4])
    for cell, start in zip(branched[:4], starts):
        assert cell.train.schedule == "wsd"
        assert (cell.train.branch_from, cell.train.branch_step) == (str(small.run_dir), start)


def test_branching_needs_warmup_in_tokens_and_token_budgets():
    cfg = RunConfig()
    with pytest.raises(ConfigError) as e:
        as_branch_cell(cfg)
    assert e.value.field == "grid.branching" and "warmup_tokens" in e.value.reason


def _final(run_dir: Path, **values) -> Path:
    run_dir.mkdir(parents=True)
    (run_dir / "final.json").write_text(json.dumps({"status": "done", **values}))
    return run_dir


def test_the_ledger_counts_each_trunk_once_and_each_cell_past_its_branch_point(tmp_path):
    # Budgets that double, cooldown 0.2: trunk 0.8 x 8 + cooldowns 0.2 x (1+2+4+8) = 9.4 of 15.
    per_step = 1e9
    steps = [100, 200, 400, 800]
    trunk = _final(tmp_path / "trunk", flops=640 * per_step, steps=640)
    cells = [_final(tmp_path / f"c{s}", flops=s * per_step, steps=s, parent={"trunk": "t", "step": int(0.8 * s)})
             for s in steps]
    ledger = compute_ledger([trunk], cells)
    assert ledger["independent_flops"] == pytest.approx(1500 * per_step)
    assert ledger["spent_flops"] == pytest.approx((640 + 0.2 * 1500) * per_step)
    assert ledger["ratio"] == pytest.approx(940 / 1500) and ledger["ratio"] <= 0.65
    alone = [_final(tmp_path / "alone", flops=100 * per_step, steps=100)]  # trained from scratch
    assert compute_ledger([], alone)["ratio"] == pytest.approx(1.0)
