"""The PyTorch side of a run: build the model and optimizer, take a step, evaluate, save and
restore. The loop in lab.trainer owns everything else (schedule, logging, cadence, final.json),
so another framework plugs in by offering the same few methods."""
from __future__ import annotations

import contextlib
import math
import sys
from pathlib import Path

import numpy as np
import torch

from lab import checkpoint
from lab.config import RunConfig, TrainConfig
from lab.data import WindowSampler, eval_batches, token_byte_lengths
from lab.model import Llama
from lab.plan import Plan
from lab.precision import Precision, choose, cpu_has_native_bf16, peak_flops
from lab.trainer import Resumed

EVAL_LOGIT_ELEMENTS = 2 ** 28  # per validation forward (1 GiB of fp32 logits)


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
        with sync() if (sync is not None and not last) else contextlib.nullcontext():
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


class TorchBackend:
    """One run's model, optimizer and data on one process (rank) of `world`."""

    name = "torch"

    def __init__(self, cfg: RunConfig, corpus, sampler: WindowSampler, plan: Plan, *,
                 rank: int = 0, world: int = 1, ddp_wrap=None):
        t = cfg.train
        if t.threads:
            torch.set_num_threads(t.threads)
        self.cfg, self.corpus, self.sampler, self.plan = cfg, corpus, sampler, plan
        self.rank, self.world, self._ddp_wrap = rank, world, ddp_wrap
        self.precision = choose(t.device, t.precision)
        torch.manual_seed(cfg.seed)  # before the model: its initial weights come from this seed
        self.model = Llama(cfg.model).to(self.precision.device)
        self.optimizer = build_optimizer(self.model, t, self.precision.device)
        self.byte_lengths = token_byte_lengths(corpus.tokenizer_path)
        self.trained = self.model  # the wrapped model (DDP, compile) once start() ran

    def precision_warning(self) -> str | None:
        p = self.precision
        if p.device == "cpu" and p.dtype == "bf16" and not cpu_has_native_bf16():
            return ("warning: train.precision=bf16 on a CPU without native bf16 "
                    "(emulated, far slower than fp32); precision=auto picks fp32 here")
        return None

    def peak_flops(self) -> float:
        return peak_flops(self.precision)

    def restore(self, run_dir: Path, is_writer: bool) -> Resumed | None:
        """Load the newest intact checkpoint in run_dir, if any; the writer first clears what a
        kill left behind (a half-written checkpoint, damaged snapshots)."""
        if is_writer:
            checkpoint.remove_partial_writes(run_dir)
            for path, problem in checkpoint.remove_damaged_snapshots(run_dir):
                print(f"{path}: damaged snapshot ({problem}); removed. It is taken again only if this "
                      "resume replays its step (else it stays missing: retrain the run)", file=sys.stderr)
        ckpt = checkpoint.load_latest(run_dir)
        if ckpt is None:
            return None
        state = ckpt.train_state
        checkpoint.load_model_weights(self.model, ckpt.model_state)
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"]["torch"])
        return Resumed(ckpt.step, state["elapsed_s"], list(state.get("window_losses", [])),
                       state.get("log_every"), ckpt.path.name)

    def start(self) -> None:
        """Wrap the model for training, after any restore (DDP broadcasts the loaded weights)."""
        trained = self._ddp_wrap(self.model) if self._ddp_wrap is not None else self.model
        self.trained = torch.compile(trained) if self.cfg.train.compile else trained
        self.model.train()

    def step(self, step: int, lr: float) -> tuple[float, float]:
        return train_step(self.trained, self.optimizer, self.sampler, self.plan, step, lr, self.cfg.train,
                          self.precision, self.rank, self.world)

    def evaluate(self, split: str) -> dict:
        return evaluate(self.model, self.corpus.tokens(split), self.byte_lengths, self.cfg.train, self.precision)

    def has_checkpoint(self, run_dir: Path, step: int | None = None) -> bool:
        """Whether run_dir holds any checkpoint, or an intact one at `step`."""
        if step is None:
            return bool(checkpoint.list_checkpoints(run_dir))
        return checkpoint.verify(run_dir / "checkpoints" / f"{checkpoint.STEP_PREFIX}{step:08d}") is None

    def adopt(self, trunk_dir: Path, step: int, run_dir: Path) -> bool:
        """Copy the trunk's checkpoint at `step` in as this run's own (atomically: a rename)."""
        return checkpoint.copy_checkpoint(trunk_dir, step, run_dir) is not None

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def save(self, run_dir: Path, step: int, loop_state: dict) -> None:
        if self.rank != 0:  # the run directory is rank 0's to write
            return
        t = self.cfg.train
        state = {"optimizer": self.optimizer.state_dict(), "rng": {"torch": torch.get_rng_state()}, **loop_state}
        checkpoint.save(run_dir, step, self.model, state, t.keep_checkpoints, t.keep_steps)

    def writer_says(self, answer: bool) -> bool:
        """Rank 0's answer (other ranks' torch work that depends on it writes nothing anyway)."""
        return answer

    def finish(self) -> None:
        """Nothing to await: torch's saves are synchronous."""

    def save_snapshot(self, run_dir: Path, name: str, step: int, tokens: int) -> None:
        if self.rank != 0:
            return
        checkpoint.save_snapshot(run_dir, name, step, tokens, self.model)
