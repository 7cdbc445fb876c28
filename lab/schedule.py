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
    """WSD: the final steps over which the rate decays to the floor."""
    return max(1, int(math.floor(cfg.decay_fraction * total_steps + 0.5)))


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
    # WSD: hold the peak, then decay linearly to the floor over the final decay_fraction.
    # Rounding both phases can overlap them by a step: the decay then starts where warmup ends.
    decay_start = max(warm, total_steps - decay_steps(cfg, total_steps))
    if step < decay_start:
        return peak
    progress = (step - decay_start + 1) / max(1, total_steps - decay_start)
    return peak + (floor - peak) * min(1.0, progress)
