"""A run's horizon, fixed before the first step: steps, batches and epochs from the token budget,
and every check that needs the prepared corpus (a grid makes them for all its runs first)."""
from __future__ import annotations

import math
from dataclasses import dataclass

from common.errors import ConfigError
from lab.config import RunConfig, TrainConfig
from lab.data import WindowSampler


@dataclass(frozen=True)
class Plan:
    """The horizon derived from the token budget, fixed before the first step."""
    steps: int
    tokens_per_step: int
    accumulation: int
    micro_batch: int
    tokens: int  # exactly what the run trains on: steps * tokens_per_step
    epochs: float
    unique_tokens: int


def make_plan(t: TrainConfig, sampler: WindowSampler, world_size: int = 1, tokens_per_word: float = 1.0) -> Plan:
    tokens_per_step = t.batch_size * t.seq_len
    budget = t.tokens if t.words is None else t.words * tokens_per_word
    steps = int(budget // tokens_per_step)
    if steps < 1:
        raise ConfigError("train.words" if t.words else "train.tokens",
                          f"budget of {budget:.0f} tokens is smaller than one batch ({tokens_per_step})")
    # "auto" plans the whole share; the torch backend measures the device and replans (lab/micro_batch.py).
    micro = t.batch_size // world_size if t.micro_batch_size in (None, "auto") else t.micro_batch_size
    if micro < 1 or t.batch_size % (micro * world_size) != 0:
        raise ConfigError("train.micro_batch_size",
                          f"batch_size={t.batch_size} must split into micro batches of {micro} "
                          f"over {world_size} processes")
    if sampler.n_windows < 1:
        raise ConfigError("corpus.train_words", f"the training split holds fewer than seq_len+1={t.seq_len + 1} tokens")
    _check_schedule(t, steps)
    epochs = sampler.epochs_for(steps * t.batch_size)
    if epochs > t.max_epochs + 1e-9:
        raise ConfigError("train.tokens",
                          f"budget of {steps * tokens_per_step} tokens needs {epochs:.2f} epochs of the "
                          f"{len(sampler.tokens)} unique training tokens, above train.max_epochs={t.max_epochs} "
                          f"(raise train.max_epochs to repeat data, or corpus.train_words)")
    return Plan(steps, tokens_per_step, t.batch_size // (micro * world_size), micro,
                steps * tokens_per_step, epochs, len(sampler.tokens))


def _check_schedule(t: TrainConfig, steps: int) -> None:
    """Schedules that could only be bent to fit the run: refused rather than silently reshaped."""
    if t.warmup_tokens is not None:
        tokens = steps * t.batch_size * t.seq_len
        if t.warmup_tokens > tokens:
            raise ConfigError("train.warmup_tokens", f"{t.warmup_tokens:g} warmup tokens exceed the run's "
                                                     f"{tokens} tokens")
        warmup_fraction = t.warmup_tokens / tokens
    elif t.warmup >= 1 and t.warmup > steps:
        raise ConfigError("train.warmup", f"{t.warmup:g} warmup steps exceed the run's {steps} steps; "
                                          "give a fraction of the run (< 1) instead")
    else:
        warmup_fraction = t.warmup if t.warmup < 1 else t.warmup / steps
    if t.schedule == "wsd" and warmup_fraction + t.cooldown > 1 + 1e-9:  # fractions: any length alike
        raise ConfigError("train.cooldown", f"warmup ({warmup_fraction:.3g} of the run) and cooldown "
                                            f"({t.cooldown:g}) overlap in a {steps}-step run")


def plan_run(cfg: RunConfig, corpus, world: int = 1) -> tuple[WindowSampler, Plan, float]:
    """(sampler, plan, tokens per word) of a run on its prepared corpus, with every check that
    needs the corpus; a grid calls it for each run before starting any (lab.sweep.runner)."""
    t = cfg.train
    sampler = WindowSampler(corpus.tokens("train"), t.seq_len, cfg.seed)
    split = corpus.manifest["splits"]["train"]
    tokens_per_word = split["tokens"] / max(1, split["words"])
    plan = make_plan(t, sampler, world, tokens_per_word)
    check_held_out(corpus, t.seq_len)
    return sampler, plan, tokens_per_word


def check_held_out(corpus, seq_len: int) -> None:
    """Validation reads whole windows of seq_len+1 tokens: a shorter held-out split would give no
    window, and the run would fail at its final evaluation after all the training, on every
    resume again. Refused before the first step instead."""
    for split in ("val_clean", "val"):
        n = len(corpus.tokens(split))
        if n < seq_len + 1:
            raise ConfigError("corpus.val_words", f"the {split} split holds {n} tokens, fewer than "
                                                  f"train.seq_len+1={seq_len + 1}: raise corpus.val_words "
                                                  "(or give a larger held-out file)")


def snapshot_steps(t: TrainConfig, plan: Plan, tokens_per_word: float) -> dict[str, int]:
    """The step at which each snapshot's count (of tokens, or of words for a words budget) is
    first reached. Only then is it taken: a snapshot taken later under the count's name would
    misname its weights (BabyLM's chck_1M must have seen 1M words)."""
    unit = tokens_per_word if t.words is not None else 1.0
    return {name: min(plan.steps, max(1, math.ceil(count * unit / plan.tokens_per_step)))
            for name, count in t.snapshots.items()}


def validation_due(done: int, t: TrainConfig) -> bool:
    """At a logged step: whether a multiple of eval_every was reached since the previous logged
    step. Validation rides on logged rows, so when log_every does not divide eval_every it comes
    at the first logged step past each multiple, and logging windows never depend on it."""
    return bool(t.eval_every) and done // t.eval_every > (done - t.log_every) // t.eval_every
