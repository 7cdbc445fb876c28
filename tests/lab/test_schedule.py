import math

import pytest

from lab.config import TrainConfig
from lab.schedule import lr_at, warmup_steps


def test_cosine_warms_up_linearly_then_decays_to_floor():
    cfg = TrainConfig(lr=1.0, warmup=10, min_lr_ratio=0.1, schedule="cosine")
    lrs = [lr_at(s, 110, cfg) for s in range(110)]
    assert lrs[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert lrs[10] == pytest.approx(1.0)
    # halfway through the decay the cosine is at the midpoint of peak and floor
    assert lrs[60] == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 0.5)))
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[-1] == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 99 / 100)))


def test_wsd_holds_the_peak_then_decays_linearly_over_the_final_fraction():
    cfg = TrainConfig(lr=2.0, warmup=0.1, min_lr_ratio=0.0, schedule="wsd", cooldown=0.2,
                    decay_shape="linear")
    total = 100
    lrs = [lr_at(s, total, cfg) for s in range(total)]
    assert warmup_steps(cfg, total) == 10
    assert lrs[10:80] == pytest.approx([2.0] * 70)
    assert lrs[80] == pytest.approx(2.0 * (1 - 1 / 20))
    assert lrs[-1] == pytest.approx(0.0)


def test_constant_and_no_warmup():
    cfg = TrainConfig(lr=0.5, warmup=0, schedule="constant")
    assert {lr_at(s, 7, cfg) for s in range(7)} == {0.5}


def test_a_half_warmup_step_rounds_up():
    assert warmup_steps(TrainConfig(warmup=0.05), 10) == 1  # round() made it 0: no warmup at all
    assert warmup_steps(TrainConfig(warmup=0.05), 50) == 3
    assert warmup_steps(TrainConfig(warmup=0.05), 122) == 6


@pytest.mark.parametrize("changes,field", [
    ({"warmup": 500}, "train.warmup"),  # 500 warmup steps in a 100-step run: never decays
    ({"schedule": "wsd", "warmup": 0.5, "cooldown": 0.8}, "train.cooldown"),
    ({"warmup_tokens": 100 * 4 * 8 + 1}, "train.warmup_tokens"),  # longer than the run
    ({"schedule": "wsd", "warmup_tokens": 60 * 4 * 8, "cooldown": 0.5}, "train.cooldown"),
])
def test_a_schedule_that_does_not_fit_the_run_is_refused(changes, field):
    import numpy as np

    from common.errors import ConfigError
    from lab.data import WindowSampler
    from lab.plan import make_plan

    cfg = TrainConfig(tokens=100 * 4 * 8, batch_size=4, seq_len=8, **changes)
    sampler = WindowSampler(np.zeros(100_000, dtype=np.uint16), cfg.seq_len, 0)
    with pytest.raises(ConfigError) as e:
        make_plan(cfg, sampler)
    assert e.value.field == field
    make_plan(TrainConfig(tokens=100 * 4 * 8, batch_size=4, seq_len=8), sampler)  # the defaults fit


def test_wsd_phases_that_rounding_overlaps_meet_without_a_jump():
    # 10 steps, warmup 0.25 -> 3 steps, decay 0.75 -> 8 steps: one step too many.
    cfg = TrainConfig(lr=1.0, warmup=0.25, cooldown=0.75, min_lr_ratio=0.0, schedule="wsd", decay_shape="linear")
    lrs = [lr_at(s, 10, cfg) for s in range(10)]
    assert lrs[:3] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert all(later < earlier for earlier, later in zip(lrs[2:], lrs[3:]))  # decays from the peak
    assert lrs[3] == pytest.approx(1 - 1 / 7) and lrs[-1] == pytest.approx(0.0)


def test_warmup_in_tokens_does_not_depend_on_the_run_length():
    # 1,000 tokens at 32 tokens per step: 31.25 steps, whatever the run's length (and `warmup`).
    cfg = TrainConfig(lr=1.0, warmup=0.5, warmup_tokens=1000, batch_size=4, seq_len=8, schedule="wsd",
                      cooldown=0.2)
    assert warmup_steps(cfg, 100) == warmup_steps(cfg, 1000) == 31
    short, long = [lr_at(s, 100, cfg) for s in range(80)], [lr_at(s, 1000, cfg) for s in range(80)]
    assert short == long  # the same first steps until the shorter run's decay starts
    assert short[30] == pytest.approx(31 / 31) and short[29] == pytest.approx(30 / 31)


def test_a_1_sqrt_cooldown_falls_as_one_minus_the_root_of_its_progress():
    cfg = TrainConfig(lr=1.0, warmup=0, min_lr_ratio=0.1, schedule="wsd", cooldown=0.25, decay_shape="1-sqrt")
    lrs = [lr_at(s, 100, cfg) for s in range(100)]
    assert lrs[:75] == [1.0] * 75
    for k in range(1, 26):  # step 74 + k is the k-th of 25 cooldown steps
        assert lrs[74 + k] == pytest.approx(0.1 + 0.9 * (1 - math.sqrt(k / 25)))
    assert lrs[-1] == pytest.approx(0.1)
