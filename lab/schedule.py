"""Learning-rate schedules: linear warmup, then cosine, warmup-stable-decay, or constant."""
from __future__ import annotations

import math

from lab.config import TrainConfig


def warmup_steps(cfg: TrainConfig, total_steps: int) -> int:
    if cfg.warmup_tokens is not None:
        steps = cfg.warmup_tokens / (cfg.batch_size * cfg.seq_len)
    else:
        steps = cfg.warmup * total_steps if cfg.warmup < 1 else cfg.warmup
    # Halves round up (round() takes them to even: 5% of 10 steps was no warmup at all).
    return min(int(math.floor(steps + 0.5)), total_steps)


def decay_steps(cfg: TrainConfig, total_steps: int) -> int:
    """WSD: the final steps over which the rate cools down to the floor."""
    return max(1, int(math.floor(cfg.cooldown * total_steps + 0.5)))


def cooldown_start(cfg: TrainConfig, total_steps: int) -> int:
    """WSD: the first step of the cooldown. Every step before it runs at the rate a constant
    schedule with the same warmup would give, which is what lets a cooldown branch off a trunk.
    Rounding both phases can overlap them by a step: the cooldown then starts where warmup ends."""
    return max(warmup_steps(cfg, total_steps), total_steps - decay_steps(cfg, total_steps))


def lr_at(step: int, total_steps: int, cfg: TrainConfig) -> float:
    """Learning rate for optimizer step `step` (0-based) of a run of `total_steps` steps."""
    warm = warmup_steps(cfg, total_steps)
    peak, floor = cfg.lr, cfg.lr * cfg.min_lr_ratio
    if step < warm:
        return peak * (step + 1) / warm
    if cfg.schedule == "constant":
        return peak
    if cfg.schedule == "cosine":
        progress = (step - warm) / max(1, total_steps - warm)
        return floor + 0.5 * (peak - floor) * (1 + math.cos(math.pi * min(1.0, progress)))
    # WSD: hold the peak, then cool down to the floor over the final `cooldown` of the run.
    start = cooldown_start(cfg, total_steps)
    if step < start:
        return peak
    progress = min(1.0, (step - start + 1) / max(1, total_steps - start))
    if cfg.decay_shape == "1-sqrt":
        return floor + (peak - floor) * (1 - math.sqrt(progress))
    return peak + (floor - peak) * progress
