"""Every preset grid at every scale it defines: its plan-only path passes (corpora prepared at
smoke/cpu, config-only at gpu), every size keeps the configured attention grouping, warmup stays
within its cap and leaves room for the cooldown, the plan names every warmup above 5% of a run,
and the isoflop grid sizes runs by C = 6ND."""
import contextlib
import dataclasses
import io
import math
import sys

import pytest
import yaml

from common.errors import ConfigError
from tests.helpers import ROOT

GRID_DIR = ROOT / "experiments" / "conf" / "grid"
PRESETS = [(path.stem, scale) for path in sorted(GRID_DIR.glob("*.yaml"))
           for scale in yaml.safe_load(path.read_text())["scales"]]


def _entry(overrides):
    sys.path.insert(0, str(ROOT / "experiments"))
    from common.cli import compose
    from experiments.run import register
    from lab.sweep.runner import EntryConfig

    return compose("config", overrides, register, EntryConfig)


def _expanded(grid, scale, *extra):
    from lab.sweep.runner import base_run_config
    from lab.sweep.spec import expand

    entry = _entry([f"grid={grid}", f"scale={scale}", *extra])
    return entry, expand(base_run_config(entry), entry.grid, scale)


def _plan_only(args, tmp_path):
    """(exit code as experiments/run.py gives it, stdout) of a plan-only grid, in-process."""
    from lab.sweep.runner import run_grid

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            code = run_grid(_entry([*args, "grid.plan_only=true", f"out_dir={tmp_path / 'runs'}"]))
        except ConfigError as e:
            return 2, f"{out.getvalue()}error: {e.field}: {e.reason}"
    return code, out.getvalue()


def test_presets_are_enumerated():
    assert {g for g, _ in PRESETS} >= {"token_budget", "isoflop", "data_quality", "babylm_strict_small"}
    assert {s for _, s in PRESETS} == {"smoke", "cpu", "gpu"}


@pytest.mark.parametrize("grid,scale", PRESETS, ids=[f"{g}-{s}" for g, s in PRESETS])
def test_every_preset_plans_at_every_scale(grid, scale, tmp_path, corpus_cache):
    code, out = _plan_only([f"grid={grid}", f"scale={scale}", f"corpus.cache_dir={corpus_cache}"], tmp_path)
    assert code == 0, out
    assert "estimated wall time:" in out and "to train:" in out
    if scale == "gpu":  # billions of tokens: checked from the config, and it says what is deferred
        assert "checked from the config, corpora not prepared" in out and "Deferred to the real run" in out
        assert "at least 1 token per word gives" not in out  # the presets fit even at that bound
    else:
        assert "checks against the prepared corpora" in out and "passed" in out
    assert not (tmp_path / "runs").exists()  # nothing written: no specs, no runs


@pytest.mark.parametrize("grid,scale", PRESETS, ids=[f"{g}-{s}" for g, s in PRESETS])
def test_every_preset_size_keeps_the_kv_grouping(grid, scale):
    from lab.accounting import attention_kind

    entry, planned = _expanded(grid, scale)
    group = entry.model.kv_group
    for plan in planned:
        m = plan.cfg.model
        assert m.n_heads == group * m.n_kv_heads, (plan.axes, m)
        assert m.d_model == m.aspect_ratio * m.n_layers, m  # the presets need no rounding
    assert {attention_kind(p.cfg.model) for p in planned} == {f"gqa{group}"}


@pytest.mark.parametrize("grid,scale", PRESETS, ids=[f"{g}-{s}" for g, s in PRESETS])
def test_every_preset_cell_warms_up_within_the_cap_and_the_plan_names_long_warmups(grid, scale):
    from lab.schedule import warmup_steps
    from lab.sweep.runner import base_run_config
    from lab.sweep.spec import LONG_WARMUP, warmup_notes

    entry, planned = _expanded(grid, scale)
    notes = warmup_notes(planned, entry.grid, base_run_config(entry))

    def steps_of(t):  # a words budget trains at least as many tokens as words (a word is one token or more)
        return int((t.words if t.words is not None else t.tokens) // (t.batch_size * t.seq_len))

    per_run = grid == "isoflop"  # its runs share no trunk: each capped by its own budget
    smallest = {}
    for plan in planned:
        smallest[plan.axes["size"]] = min(smallest.get(plan.axes["size"], math.inf), steps_of(plan.cfg.train))
    by_size = {}
    for plan in planned:
        t, size = plan.cfg.train, plan.axes["size"]
        steps = steps_of(t)
        warm = warmup_steps(t, steps)  # as the trainer rounds it
        cap = min(entry.grid.max_warmup_fraction, 1 - t.cooldown) if t.warmup_tokens is not None else 1
        assert warm <= cap * (steps if per_run else smallest[size]) + 1, (plan.axes, warm, smallest[size])
        if t.schedule == "wsd":
            assert warm / steps + t.cooldown <= 1 + 1e-9, (plan.axes, warm, steps)  # the cooldown still fits
        said = any(note.startswith(f"size {size:g}") for note in notes)
        assert warm <= LONG_WARMUP * steps or said, (plan.axes, warm, steps)
        by_size.setdefault(size, set()).add(t.warmup_tokens)
    if not per_run:
        assert all(len(w) == 1 for w in by_size.values()), by_size  # one warmup per size: one trunk's


def test_an_isoflop_run_warms_up_over_n_tokens_or_its_own_budgets_cap():
    from lab.accounting import total_params

    _, planned = _expanded("isoflop", "cpu")
    for plan in planned:
        t = plan.cfg.train
        per_step = t.batch_size * t.seq_len
        wanted = math.floor(total_params(plan.cfg.model) / per_step + 0.5)
        cap = math.floor(0.8 * t.tokens / per_step + 1e-9)
        assert t.warmup_tokens == min(wanted, cap) * per_step, (plan.axes, t.warmup_tokens)
    warmups = {p.cfg.train.warmup_tokens for p in planned if p.axes["size"] == 1.9e6}
    assert len(warmups) == 4  # the largest size's longer runs are not held to its shortest one's warmup
    from lab.sweep.runner import base_run_config
    from lab.sweep.spec import warmup_notes

    entry, _ = _expanded("isoflop", "cpu")
    notes = warmup_notes(list(reversed(planned)), entry.grid, base_run_config(entry))  # any order
    assert ("size 1.9e+06 (N=1,788,640): warmup capped at 0.8 of each run's budget: 8,192 tokens in its "
            "shortest run, not 1,788,640") in notes, notes


def test_the_plan_names_long_and_capped_warmups_and_only_those():
    from lab.sweep.runner import base_run_config
    from lab.sweep.spec import warmup_notes

    # 29k and 131k parameters; 1,024-token budgets up to 2M: 29k tokens of warmup is 1.4% of the
    # small model's smallest run here (no note), 131k tokens is 6.4% (a note saying so).
    args = ["grid.sizes=[3.0e4,1.3e5]", "grid.budgets=[2.048e6]"]
    entry, planned = _expanded("token_budget", "smoke", *args)
    notes = warmup_notes(planned, entry.grid, base_run_config(entry))
    assert len(notes) == 1 and notes[0].startswith("size 130000 (N=131,392): warmup 131,584 tokens (1 per "
                                                   "parameter), 6% of its smallest budget in tokens"), notes
    # A cooldown of 0.3 leaves at most 0.7 of the smallest run to warm up in, whatever the cap.
    entry, planned = _expanded("token_budget", "smoke", "grid.sizes=[1.3e5]", "grid.budgets=[5.12e4]",
                               "train.cooldown=0.3")
    (plan,) = planned
    assert plan.cfg.train.warmup_tokens == math.floor(0.7 * 51200 / 512) * 512
    (note,) = warmup_notes(planned, entry.grid, base_run_config(entry))
    assert note.startswith("size 130000 (N=131,392): warmup capped at 0.7 of its smallest budget"), note


def test_warmup_is_one_token_per_parameter_unless_capped():
    from lab.accounting import total_params

    args = ["grid.sizes=[3.0e4]", "grid.budgets=[2.048e6]"]  # 0.8 of it is far above N
    _, (plan,) = _expanded("token_budget", "smoke", *args)
    per_step = plan.cfg.train.batch_size * plan.cfg.train.seq_len
    n = total_params(plan.cfg.model)
    assert plan.cfg.train.warmup_tokens == round(n / per_step) * per_step
    _, (half,) = _expanded("token_budget", "smoke", *args, "grid.warmup_tokens_per_param=0.5")
    assert half.cfg.train.warmup_tokens == round(n / 2 / per_step) * per_step
    _, (kept,) = _expanded("token_budget", "smoke", *args, "train.warmup_tokens=1024")
    assert kept.cfg.train.warmup_tokens == 1024
    _, (fraction,) = _expanded("token_budget", "smoke", *args, "grid.warmup_tokens_per_param=null")
    assert fraction.cfg.train.warmup_tokens is None and fraction.cfg.train.warmup == 0.05


@pytest.mark.parametrize("scale", ["smoke", "cpu", "gpu"])
def test_isoflop_trains_each_size_on_c_over_6n(scale):
    from lab.accounting import compute_6nd, total_params

    _, planned = _expanded("isoflop", scale)
    for plan in planned:
        cfg, axes = plan.cfg, plan.axes
        per_step = cfg.train.batch_size * cfg.train.seq_len
        assert axes["budget_tokens"] == pytest.approx(axes["compute_budget"] / (6 * total_params(cfg.model)))
        assert cfg.train.tokens == math.floor(axes["budget_tokens"] / per_step) * per_step
        assert axes["compute_budget"] - 6 * total_params(cfg.model) * per_step < compute_6nd(cfg.model, cfg.train.tokens)
        assert compute_6nd(cfg.model, cfg.train.tokens) <= axes["compute_budget"]


def test_a_plan_that_does_not_fit_its_data_exits_2(tmp_path, corpus_cache):
    code, out = _plan_only(["grid=token_budget", "scale=smoke", "grid.sizes=[3.0e4]", "grid.budgets=[2e7]",
                            f"corpus.cache_dir={corpus_cache}"], tmp_path)
    assert code == 2 and "error: train.tokens:" in out and "above train.max_epochs" in out, out
    code, out = _plan_only(["grid=token_budget", "grid.max_warmup_fraction=0"], tmp_path)
    assert code == 2 and out.startswith("error: grid.max_warmup_fraction"), out


def test_gpu_epochs_beyond_the_one_token_per_word_bound_are_deferred_not_refused(tmp_path):
    code, out = _plan_only(["grid=token_budget", "scale=gpu", "grid.sizes=[1e7]", "grid.budgets=[8e9]"], tmp_path)
    assert code == 0, out
    assert "<=8.00" in out and "fits if the corpus holds >= 2.00 tokens per word; checked by the real run" in out


def test_the_estimate_spreads_runs_over_the_launchers_slots(monkeypatch):
    import lab.precision
    from lab.sweep import grid_plan
    from lab.sweep.launchers import LauncherConfig

    monkeypatch.setattr(lab.precision, "peak_flops", lambda precision: 1e9)
    monkeypatch.setattr("torch.get_num_threads", lambda: 1)
    _, planned = _expanded("token_budget", "smoke")
    runs = [dataclasses.replace(p.cfg, train=dataclasses.replace(p.cfg.train, device="cpu")) for p in planned]
    work = sorted((c.train.tokens * grid_plan.flops_per_token(c.model, c.train.seq_len) for c in runs), reverse=True)
    rate = 1e9 * grid_plan.ASSUMED_MFU["cpu"]
    one, _ = grid_plan.estimate_wall_s(runs, LauncherConfig(workers=1))
    assert one == pytest.approx(sum(work) / rate)
    two, how = grid_plan.estimate_wall_s(runs, LauncherConfig(workers=2))
    # Longest first: the largest run alone on one slot outlasts the other three on the other.
    assert two == pytest.approx(max(work[0], work[1] + work[2] + work[3]) / rate) == pytest.approx(work[0] / rate)
    assert "2 at a time" in how and "assumed MFU" in how
    slurm, why = grid_plan.estimate_wall_s(runs, LauncherConfig(name="slurm"))
    assert slurm is None and "SLURM" in why
