"""The training loop: small functions (plan, train_step, evaluate, checkpoint) composed by train().

train() owns one run directory. It resumes from the newest intact checkpoint there, appends to
metrics.jsonl, and ends by writing final.json (status "done" or "diverged").
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from common.errors import ConfigError
from lab import checkpoint
from lab.accounting import describe
from lab.config import RunConfig, TrainConfig
from lab.data import WindowSampler, eval_batches, token_byte_lengths
from lab.metrics import MetricsLog, Progress
from lab.model import Llama
from lab.precision import Precision, choose, cpu_has_native_bf16, peak_flops
from lab.schedule import lr_at

EVAL_LOGIT_ELEMENTS = 2 ** 28  # per validation forward (1 GiB of fp32 logits)


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
    micro = t.micro_batch_size or t.batch_size // world_size
    if micro < 1 or t.batch_size % (micro * world_size) != 0:
        raise ConfigError("train.micro_batch_size",
                          f"batch_size={t.batch_size} must split into micro batches of {micro} "
                          f"over {world_size} processes")
    if sampler.n_windows < 1:
        raise ConfigError("corpus.train_words", f"the training split holds fewer than seq_len+1={t.seq_len + 1} tokens")
    # Schedules that could only be bent to fit: refused rather than silently reshaped.
    if t.warmup >= 1 and t.warmup > steps:
        raise ConfigError("train.warmup", f"{t.warmup:g} warmup steps exceed the run's {steps} steps; "
                                          "give a fraction of the run (< 1) instead")
    warmup_fraction = t.warmup if t.warmup < 1 else t.warmup / steps
    if t.schedule == "wsd" and warmup_fraction + t.decay_fraction > 1 + 1e-9:  # fractions: any length alike
        raise ConfigError("train.decay_fraction", f"warmup ({warmup_fraction:.3g} of the run) and decay "
                                                  f"({t.decay_fraction:g}) overlap in a {steps}-step run")
    epochs = sampler.epochs_for(steps * t.batch_size)
    if epochs > t.max_epochs + 1e-9:
        raise ConfigError("train.tokens",
                          f"budget of {steps * tokens_per_step} tokens needs {epochs:.2f} epochs of the "
                          f"{len(sampler.tokens)} unique training tokens, above train.max_epochs={t.max_epochs} "
                          f"(raise train.max_epochs to repeat data, or corpus.train_words)")
    return Plan(steps, tokens_per_step, t.batch_size // (micro * world_size), micro,
                steps * tokens_per_step, epochs, len(sampler.tokens))


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


def build_optimizer(model: torch.nn.Module, t: TrainConfig, device: str) -> torch.optim.AdamW:
    # Decay matrices only: norm gains and (by convention) nothing 1-D is pulled towards zero.
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": t.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=t.lr, betas=(t.beta1, t.beta2), fused=True)


def train_step(model, optimizer, sampler: WindowSampler, plan: Plan, step: int, lr: float,
               t: TrainConfig, precision: Precision, rank: int = 0, world: int = 1) -> tuple[float, float]:
    """One optimizer step over the global batch; returns (mean loss, grad norm before clipping)."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    first = step * t.batch_size + rank * plan.micro_batch * plan.accumulation
    total = torch.zeros((), dtype=torch.float64)
    for micro_step in range(plan.accumulation):
        x, y = sampler.batch(first + micro_step * plan.micro_batch, plan.micro_batch)
        x, y = x.to(precision.device), y.to(precision.device)
        sync = getattr(model, "no_sync", None)
        last = micro_step == plan.accumulation - 1
        # Under DDP, only the last micro step all-reduces gradients. no_sync() is a one-shot
        # context manager: forward and backward both go inside the one with-block.
        with sync() if (sync is not None and not last) else _null():
            with precision.autocast():
                loss = model(x, y) / plan.accumulation  # through a DDP wrapper, if any, so its hooks run
            loss.backward()
        total += loss.detach().double().cpu()
    clip = t.grad_clip if t.grad_clip > 0 else math.inf
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    # A backward pass can overflow while the loss stays finite: clipping would scale by NaN and
    # AdamW write NaN into every weight. Skipped here; the caller records the run as diverged.
    if torch.isfinite(grad_norm):
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if world > 1:
        import torch.distributed as dist

        # On the run's device: NCCL (the GPU backend) reduces CUDA tensors only.
        total = total.to(precision.device)
        dist.all_reduce(total)
        total = total.cpu() / world
    return float(total), float(grad_norm)


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@torch.no_grad()
def evaluate(model, tokens: np.ndarray, byte_lengths: np.ndarray, t: TrainConfig,
             precision: Precision) -> dict:
    """Held-out loss in nats per token and bits per byte over the first eval_tokens tokens.

    Takes the bare model (not a DDP or torch.compile wrapper): evaluation needs no gradient
    sync, and a compiled wrapper would compile a second graph for the logits-only call."""
    model.eval()
    nats, n_tokens, n_bytes = 0.0, 0, 0
    # Validation materialises (rows x seq_len x vocab) logits: at GPU scale a training batch of
    # them is tens of GB. Rows are capped so one forward's logits stay near 1 GiB in fp32.
    rows_cap = EVAL_LOGIT_ELEMENTS // (t.seq_len * model.cfg.vocab_size)
    rows = max(1, min(t.micro_batch_size or t.batch_size, rows_cap))
    for x, y in eval_batches(tokens, t.seq_len, t.eval_tokens, rows):
        x, y = x.to(precision.device), y.to(precision.device)
        with precision.autocast():
            logits = model(x)
        nll = torch.nn.functional.cross_entropy(logits.float().view(-1, logits.size(-1)), y.reshape(-1),
                                                reduction="sum")
        nats += float(nll.double())
        n_tokens += y.numel()
        n_bytes += int(byte_lengths[y.cpu().numpy()].sum())
    model.train()
    return {"loss": nats / n_tokens, "bpb": nats / math.log(2) / max(1, n_bytes), "tokens": n_tokens}


def snapshots_due(t: TrainConfig, plan: Plan, done: int, run_dir: Path, tokens_per_word: float) -> list[str]:
    """Snapshots whose count is first reached at step `done`. Only then: a snapshot taken at a
    later step under the count's name would misname its weights (BabyLM's chck_1M must have seen
    1M words), so one lost past its step stays missing, and the submission says so."""
    unit = tokens_per_word if t.words is not None else 1.0
    due = []
    for name, count in t.snapshots.items():
        step = min(plan.steps, max(1, math.ceil(count * unit / plan.tokens_per_step)))
        if step == done and not (run_dir / "snapshots" / name).is_dir():
            due.append(name)
    return due


def _validation_due(done: int, t: TrainConfig) -> bool:
    """At a logged step: whether a multiple of eval_every was reached since the previous logged
    step. Validation rides on logged rows, so when log_every does not divide eval_every it comes
    at the first logged step past each multiple, and logging windows never depend on it."""
    return bool(t.eval_every) and done // t.eval_every > (done - t.log_every) // t.eval_every


def _rng_state() -> dict:
    return {"torch": torch.get_rng_state()}


def train(cfg: RunConfig, run_dir: Path, corpus, *, rank: int = 0, world: int = 1,
          ddp_wrap=None) -> dict:
    """Train (or resume) the run in run_dir; return the final.json contents."""
    t = cfg.train
    if t.threads:
        torch.set_num_threads(t.threads)
    precision = choose(t.device, t.precision)
    torch.manual_seed(cfg.seed)
    sampler, plan, tokens_per_word = plan_run(cfg, corpus, world)
    model = Llama(cfg.model).to(precision.device)
    optimizer = build_optimizer(model, t, precision.device)
    shape = describe(cfg.model, t.seq_len)
    byte_lengths = token_byte_lengths(corpus.tokenizer_path)
    is_writer = rank == 0

    start_step, elapsed_before, resumed_window = 0, 0.0, []
    if is_writer:  # a kill mid-save leaves a temporary directory behind (run_single holds the lock)
        checkpoint.remove_partial_writes(run_dir)
        for path, problem in checkpoint.remove_damaged_snapshots(run_dir):
            print(f"{path}: damaged snapshot ({problem}); removed. It is taken again only if this "
                  "resume replays its step (else it stays missing: retrain the run)", file=sys.stderr)
    ckpt = checkpoint.load_latest(run_dir)
    if ckpt is not None:
        checkpoint.load_model_weights(model, ckpt.model_state)
        optimizer.load_state_dict(ckpt.train_state["optimizer"])
        torch.set_rng_state(ckpt.train_state["rng"]["torch"])
        start_step, elapsed_before = ckpt.step, ckpt.train_state["elapsed_s"]
        resumed_window = list(ckpt.train_state.get("window_losses", []))
        started_with = ckpt.train_state.get("log_every", t.log_every)
        if started_with != t.log_every:
            # Not in the run id (a display setting), but it cuts the logging windows the resumed
            # rows and final_train_loss continue: another value would mix two windowings.
            raise ConfigError("train.log_every", f"this run was started with log_every={started_with}; "
                                                 f"resume it with the same value (got {t.log_every})")
    trained = ddp_wrap(model) if ddp_wrap is not None else model
    if t.compile:
        trained = torch.compile(trained)
    metrics = MetricsLog(run_dir / "metrics.jsonl", start_step if ckpt else None) if is_writer else None
    label = cfg.name or run_dir.name
    progress = Progress(plan.steps, start_step, plan.tokens_per_step, t.progress if is_writer else "none", label)
    if ckpt is not None:
        progress.message(f"{label}: resumed from step {start_step} ({ckpt.path.name})")
    if precision.device == "cpu" and precision.dtype == "bf16" and not cpu_has_native_bf16():
        progress.message(f"{label}: warning: train.precision=bf16 on a CPU without native bf16 "
                         f"(emulated, far slower than fp32); precision=auto picks fp32 here")
    peak = peak_flops(precision)
    flops_per_step = shape["flops_per_token"] * plan.tokens_per_step

    def save(step: int) -> None:
        if is_writer:
            # The open logging window's losses too: a resumed run logs the same windows (and so
            # the same final_train_loss) as an uninterrupted one.
            state = {"optimizer": optimizer.state_dict(), "rng": _rng_state(), "step": step,
                     "sequences_seen": step * t.batch_size, "window_losses": list(window_losses),
                     "log_every": t.log_every,
                     "elapsed_s": elapsed_before + (time.perf_counter() - t0)}
            checkpoint.save(run_dir, step, model, state, t.keep_checkpoints)

    t0 = time.perf_counter()
    window_start, window_losses, window_steps = time.perf_counter(), resumed_window, 0
    status, reason = "done", None
    model.train()
    for step in range(start_step, plan.steps):
        lr = lr_at(step, plan.steps, t)
        loss, grad_norm = train_step(trained, optimizer, sampler, plan, step, lr, t, precision, rank, world)
        if not math.isfinite(loss):
            status, reason = "diverged", f"non-finite loss ({loss}) at step {step + 1}"
            break
        if not math.isfinite(grad_norm):
            status, reason = "diverged", f"non-finite gradient norm ({grad_norm}) at step {step + 1}"
            break
        window_losses.append(loss)
        window_steps += 1  # timed since window_start (a resumed window's first losses were not)
        done = step + 1
        if done % t.log_every == 0 or done == plan.steps:
            now = time.perf_counter()
            tok_s = window_steps * plan.tokens_per_step / (now - window_start)
            # tok_s counts the global batch: every process's device adds to the peak.
            row = {"step": done, "tokens": done * plan.tokens_per_step, "loss": float(np.mean(window_losses)),
                   "lr": lr, "grad_norm": grad_norm, "tokens_per_s": tok_s,
                   "mfu": tok_s * shape["flops_per_token"] / (peak * world) if peak == peak else float("nan")}
            if _validation_due(done, t) and done != plan.steps:  # the last step is validated below
                val = evaluate(model, corpus.tokens("val_clean"), byte_lengths, t, precision)
                row.update(val_loss=val["loss"], val_bpb=val["bpb"])
            if metrics is not None:
                metrics.write(row)
            progress.update(done, row)
            window_start, window_losses, window_steps = time.perf_counter(), [], 0
        # Snapshots before the checkpoint: a kill between the two replays this step from the
        # previous checkpoint and finds the snapshot already taken at the right step.
        for name in snapshots_due(t, plan, done, run_dir, tokens_per_word) if is_writer else ():
            checkpoint.save_snapshot(run_dir, name, done, done * plan.tokens_per_step, model)
        if t.checkpoint_every and done % t.checkpoint_every == 0 and done != plan.steps:
            save(done)
    else:
        if ckpt is None or ckpt.step != plan.steps:  # else: killed after its final save
            save(plan.steps)
    progress.close()
    wall_s = elapsed_before + (time.perf_counter() - t0)

    final = {"status": status, "reason": reason, "steps": plan.steps, "tokens": plan.tokens,
             "flops": flops_per_step * plan.steps, "epochs": plan.epochs, "unique_tokens": plan.unique_tokens,
             "params": shape["params"], "non_embedding_params": shape["non_embedding_params"],
             "flops_per_token": shape["flops_per_token"], "wall_s": wall_s,
             "words": plan.tokens / tokens_per_word, "tokens_per_word": tokens_per_word,
             "precision": precision.dtype, "precision_reason": precision.reason, "device": precision.device,
             "world_size": world}
    rows = _recent_losses(run_dir / "metrics.jsonl") if is_writer else []
    final["final_train_loss"] = rows[-1] if rows else None
    if status == "done":
        val = evaluate(model, corpus.tokens("val_clean"), byte_lengths, t, precision)
        own = evaluate(model, corpus.tokens("val"), byte_lengths, t, precision)
        final.update(final_val_loss=val["loss"], final_val_bpb=val["bpb"], val_tokens=val["tokens"],
                     final_val_own_loss=own["loss"], final_val_own_bpb=own["bpb"])
    else:
        final.update(final_val_loss=None, final_val_bpb=None)
    return final


def _recent_losses(path: Path) -> list[float]:
    from lab.metrics import read_metrics

    return [row["loss"] for row in read_metrics(path)]
