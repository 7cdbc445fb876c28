"""A grid's plan before any compute: one row per run, totals, an estimate of the wall time on
this machine, and every check that can be made first (against the prepared corpora, or at a
scale whose corpora take hours to prepare, from the config alone)."""
from __future__ import annotations

import dataclasses
import math
import os
import sys
from pathlib import Path

from common.errors import ConfigError
from lab.accounting import attention_kind, compute_6nd, flops_per_token, total_params
from lab.config import RunConfig
from lab.sweep.launchers import LauncherConfig, gpu_groups
from lab.sweep.spec import warmup_notes


def prepare_corpora(planned: list) -> dict:
    """Prepare each distinct corpus once, here, before workers start (they then hit the cache).
    Returns them by repr(corpus config)."""
    from corpora.cache import prepare_corpus

    corpora = {}
    for plan in planned:
        key = repr(plan.cfg.corpus)
        if key not in corpora:
            corpus = corpora[key] = prepare_corpus(plan.cfg.corpus, progress=sys.stderr.isatty())
            level = plan.axes.get("quality_label") or f"quality {plan.cfg.corpus.quality:g}"
            print(f"corpus {plan.cfg.corpus.name} ({level}): {corpus.path}", flush=True)
    return corpora


def check_runs_fit_their_corpora(planned: list, run_dirs: list[Path], pending: list[Path], corpora: dict,
                                 procs_per_run: int) -> dict[Path, float]:
    """Every check a run makes once its corpus is prepared (budget vs data, held-out splits,
    schedule), for all pending runs before any starts: bad input is one line and exit 2, not a
    grid of runs recorded as failed one by one. Returns each pending run's epochs."""
    from lab.plan import plan_run

    pending = set(pending)
    epochs = {}
    for plan, run_dir in zip(planned, run_dirs):
        if run_dir in pending:
            epochs[run_dir] = plan_run(plan.cfg, corpora[repr(plan.cfg.corpus)], procs_per_run)[1].epochs
    return epochs


# Scales whose corpora a plan-only invocation does not prepare (billions of tokens, which the real
# run prepares on the machine it trains on), and whose real runs print their plan before them.
CONFIG_ONLY_SCALES = ("gpu",)


def check_runs_from_config(planned: list, run_dirs: list[Path], pending: list[Path],
                           procs_per_run: int) -> tuple[dict[Path, float], list[str]]:
    """The pre-compute checks without the corpus: ({run: an upper bound on its epochs}, notes).

    The training split is taken as corpus.train_words tokens: byte-level BPE splits text into
    words before merging, so every word is at least one token and the real split is no shorter.
    Every check of lab.plan is then conservative: fewer tokens mean more epochs, and a words
    budget fewer steps, so a larger warmup fraction. The budget, micro-batch and schedule checks
    are exact for token budgets; one that fails is bad input. Epochs above train.max_epochs at
    this bound are not (the real split may be long enough): deferred to the real run, with the
    tokens per word they need."""
    from lab.data import WindowSampler
    from lab.plan import make_plan

    bounds, notes, pending = {}, [], set(pending)
    for plan, run_dir in zip(planned, run_dirs):
        if run_dir not in pending:
            continue
        cfg = plan.cfg
        t, words = cfg.train, cfg.corpus.train_words
        if words is None:
            notes.append(f"{run_dir.name}: corpus.train_words=null (the whole source): epochs checked by the real run")
            continue
        sampler = WindowSampler(range(int(words)), t.seq_len, cfg.seed)  # a length, no tokens held
        bound = make_plan(dataclasses.replace(t, max_epochs=math.inf), sampler, procs_per_run).epochs
        bounds[run_dir] = bound
        if bound > t.max_epochs + 1e-9:
            notes.append(f"{run_dir.name}: at least 1 token per word gives {bound:.2f} epochs, above "
                         f"train.max_epochs={t.max_epochs:g}: fits if the corpus holds >= "
                         f"{bound / t.max_epochs:.2f} tokens per word; checked by the real run")
        if cfg.corpus.val_words < t.seq_len + 1:
            notes.append(f"{run_dir.name}: corpus.val_words={cfg.corpus.val_words} may hold fewer than "
                         f"seq_len+1={t.seq_len + 1} tokens; checked by the real run")
    return bounds, notes


# Model FLOPs utilisation the wall-time estimate assumes, by device: training FLOPs by the lab's
# count (lab.accounting.flops_per_token) per second of a run's whole wall time (validation and
# checkpoints included), over the matmul peak of the run's share of the machine.
# cpu 0.2: the main job (grid=token_budget, 16 runs) on the 2-core AVX-512 machine ran two one-thread
#   workers at 40 GFLOP/s each over its runs (17 at 80k parameters to 54 at 1M: final.json flops /
#   wall_s), against half the two-thread bf16 matmul peak, ~190 GFLOP/s (bench/RESULTS.md: ~380).
# cuda 0.3: assumed, not measured (no GPU session yet, see bench/RESULTS.md), for 10M-150M-parameter
#   models at seq 1024 in bf16; replace it with the MFU such runs log in metrics.jsonl.
ASSUMED_MFU = {"cpu": 0.2, "cuda": 0.3}


def parallel_slots(launcher: LauncherConfig, n_runs: int) -> int:
    """Runs at a time on this machine, as the local launchers start them (lab.sweep.launchers)."""
    per_run = launcher.threads_per_run * (launcher.procs_per_run if launcher.name == "local" else 1)
    return max(1, min(n_runs, launcher.workers or (os.cpu_count() or 1) // per_run))


def estimate_wall_s(runs: list[RunConfig], launcher: LauncherConfig) -> tuple[float | None, str]:
    """(seconds, how) to train `runs` on this machine: each run's FLOPs over the measured matmul
    peak times ASSUMED_MFU, spread over the launcher's slots longest first; (None, why not).
    A words budget counts as that many tokens (train.tokens holds it), a lower bound."""
    if not runs:
        return 0.0, "nothing to train"
    if launcher.name == "slurm":
        return None, "the runs go to SLURM nodes, not this machine"
    import torch

    from lab.precision import choose, peak_flops

    try:
        precision = choose(runs[0].train.device, runs[0].train.precision)
    except ConfigError as e:  # cuda asked for on a machine without one: what one H100 would take
        from lab.precision import gpu_peak_flops

        rate = gpu_peak_flops("H100", "bf16") * ASSUMED_MFU["cuda"]
        one = sum(c.train.tokens * flops_per_token(c.model, c.train.seq_len) for c in runs) / rate
        return None, (f"{e.field}: {e.reason}; on one H100 at its listed bf16 peak x {ASSUMED_MFU['cuda']:g} "
                      f"assumed MFU, one run at a time: ~{_duration(one)}")
    peak, slots = peak_flops(precision), parallel_slots(launcher, len(runs))
    if precision.device == "cpu":  # measured with this process's threads; a run has its own
        per_run = peak * launcher.threads_per_run * launcher.procs_per_run / torch.get_num_threads()
        unit = f"{launcher.threads_per_run * launcher.procs_per_run}-thread"
    else:  # one run per group of procs_per_run GPUs, as the local launcher hands them out
        groups = len(gpu_groups(launcher)) or max(1, torch.cuda.device_count() // launcher.procs_per_run)
        slots = max(1, min(len(runs), launcher.workers or groups, groups))
        per_run, unit = peak * launcher.procs_per_run, f"{launcher.procs_per_run}-GPU"
    rate = per_run * ASSUMED_MFU[precision.device]
    ends = [0.0] * slots
    for seconds in sorted((c.train.tokens * flops_per_token(c.model, c.train.seq_len) / rate for c in runs), reverse=True):
        ends[ends.index(min(ends))] += seconds
    how = (f"{precision.dtype} matmul peak {per_run / 1e9:,.0f} GFLOP/s per {unit} run, measured now on this "
           f"{precision.device}, x {ASSUMED_MFU[precision.device]:g} assumed MFU; {slots} at a time")
    return max(ends), how


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _plan_row(plan, run_dir: Path, epochs: str) -> str:
    cfg, axes = plan.cfg, plan.axes
    m, t = cfg.model, cfg.train
    budget = f"{t.words:,.0f} w" if t.words is not None else f"{t.tokens:,.0f}"
    shape = f"{m.n_layers}/{m.d_model}/{m.n_heads}/{m.n_kv_heads}"
    warmup = "-" if t.warmup_tokens is None else f"{t.warmup_tokens:,.0f}"
    c6nd = "-" if t.words is not None else f"{compute_6nd(m, t.tokens):.3g}"
    return (f"{run_dir.name:<28} {axes.get('size') or 0:>8.3g} {total_params(m):>12,} {shape:>13} "
            f"{attention_kind(m):>5} {budget:>15} {c6nd:>9} {warmup:>12} "
            f"{epochs:>7}" + ("  trunk" if axes.get("role") == "trunk" else ""))


def _work(cfg: RunConfig) -> RunConfig:
    """What training cfg costs here: a cooldown branch trains from its branch step on."""
    t = cfg.train
    if t.branch_from is None:
        return cfg
    return dataclasses.replace(cfg, train=dataclasses.replace(
        t, tokens=t.tokens - t.branch_step * t.batch_size * t.seq_len))


def print_plan(entry, planned: list, run_dirs: list[Path], pending: list[Path],
               epochs: dict[Path, str], notes: list[str]) -> None:
    """The plan: one row per run, totals, the estimated wall time, and the notes."""
    header = (f"{'run':<28} {'size':>8} {'N params':>12} {'L/d/heads/kv':>13} {'attn':>5} {'D tokens':>15} "
              f"{'C=6ND':>9} {'warmup tok':>12} {'epochs':>7}")
    lines = [header, "-" * len(header)]
    lines += [_plan_row(p, d, epochs.get(d, "-")) for p, d in zip(planned, run_dirs)]
    pending = set(pending)
    todo = [_work(p.cfg) for p, d in zip(planned, run_dirs) if d in pending]
    tokens = sum(c.train.tokens for c in todo if c.train.words is None)
    c6nd = sum(compute_6nd(c.model, c.train.tokens) for c in todo if c.train.words is None)
    lab = sum(c.train.tokens * flops_per_token(c.model, c.train.seq_len) for c in todo if c.train.words is None)
    lines.append(f"to train: {len(todo)} of {len(planned)} runs, {tokens:.3g} tokens, C = 6ND = {c6nd:.3g} FLOPs "
                 f"({lab:.3g} by the lab's count, attention included)" if tokens else
                 f"to train: {len(todo)} of {len(planned)} runs")
    # Trunks and cells are two waves: no cell starts before every trunk has ended.
    waves = [[_work(p.cfg) for p, d in zip(planned, run_dirs) if d in pending and (p.axes.get("role") == "trunk") == first]
             for first in (True, False)]
    estimates = [estimate_wall_s(wave, entry.launcher) for wave in waves if wave]
    seconds = None if any(s is None for s, _ in estimates) else sum(s for s, _ in estimates)
    how = estimates[-1][1] if estimates else "nothing to train"
    if len(estimates) == 2:
        how += "; trunks, then the cells' cooldowns"
    lines.append(f"estimated wall time: ~{_duration(seconds)} of training ({how}); an estimate, "
                 f"without corpus preparation, pair scoring and the report" if seconds is not None
                 else f"estimated wall time: not estimated ({how})")
    lines += _quality_levels(planned)
    lines += [f"note: {n}" for n in [*warmup_notes(planned, entry.grid, entry), *notes]]
    print("\n".join(lines), flush=True)


def _quality_levels(planned: list) -> list[str]:
    """A data_quality grid's levels, and the one whose held-out split validates every run."""
    levels = list(dict.fromkeys(p.axes["quality_label"] for p in planned if p.axes.get("quality_label")))
    if not levels:
        return []
    val = next(p.axes["val_level"] for p in planned if p.axes.get("quality_label"))
    return [f"quality levels: {', '.join(levels)}; every run validated on the held-out split of: {val}"]


def check_plan(entry, planned: list, run_dirs: list[Path], pending: list[Path],
               config_only: bool) -> tuple[dict, list]:
    """Every pre-compute check of the pending runs: ({run: its epochs, printed}, notes). With
    config_only, from the config alone (check_runs_from_config), else against the corpora,
    prepared here as the runs need them."""
    if not pending:
        return {}, []
    procs = entry.launcher.procs_per_run
    if procs > 1 and entry.launcher.name != "slurm" and any(p.cfg.train.backend == "jax" for p in planned):
        # torchrun's processes would each train the whole run: JAX spreads a run over a host's
        # devices from one process (train.mesh), and over hosts as SLURM tasks.
        raise ConfigError("launcher.procs_per_run", "the JAX backend drives all of a host's devices from one "
                                                    "process: leave procs_per_run at 1 and set train.mesh")
    if config_only:
        bounds, notes = check_runs_from_config(planned, run_dirs, pending, procs)
        later = "Deferred to the real run" if entry.grid.plan_only else "Checked next, once the corpora are prepared"
        notes.append(f"scale {entry.scale}: checked from the config, corpora not prepared (budgets, micro-batches, "
                     f"schedules exactly; epochs as an upper bound, <=, at 1 token per word). {later}: the "
                     f"corpus' own token counts (exact epochs, held-out lengths), words budgets in tokens, the tokenizer")
        return {d: f"<={e:.2f}" for d, e in bounds.items()}, notes
    corpora = prepare_corpora(planned)
    epochs = check_runs_fit_their_corpora(planned, run_dirs, pending, corpora, procs)
    passed = f"checks against the prepared corpora (budget vs data, held-out splits, schedules): passed for {len(pending)} runs"
    return {d: f"{e:.2f}" for d, e in epochs.items()}, [passed]


def print_plan_and_check(entry, planned: list, run_dirs: list[Path], pending: list[Path]) -> None:
    """The plan, then (or, at a scale in CONFIG_ONLY_SCALES, ahead of corpora that may take hours
    to prepare, with the config's bounds) every check before compute. Plan only: the config's
    checks alone at such a scale."""
    config_only = entry.scale in CONFIG_ONLY_SCALES
    print_plan(entry, planned, run_dirs, pending, *check_plan(entry, planned, run_dirs, pending, config_only))
    if config_only and not entry.grid.plan_only and pending:
        _, notes = check_plan(entry, planned, run_dirs, pending, config_only=False)
        print("\n".join(f"note: {n}" for n in notes), flush=True)
