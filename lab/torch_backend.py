"""The PyTorch side of a run: build the model and optimizer, take a step, evaluate, save and
restore. The loop in lab.trainer owns everything else (schedule, logging, cadence, final.json),
so another framework plugs in by offering the same few methods."""
from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
from pathlib import Path

import numpy as np
import torch

from lab import checkpoint, distributed
from lab.config import RunConfig, TrainConfig
from lab.data import WindowSampler, eval_batches, eval_window_range, token_byte_lengths
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


def _gradient_sync(model, enabled: bool):
    """A context in which backward all-reduces (DDP) or reduce-scatters (FSDP) gradients only if
    `enabled`: accumulation micro steps before the last need no communication."""
    if hasattr(model, "set_requires_gradient_sync"):  # FSDP2: a switch, not a context
        model.set_requires_gradient_sync(enabled)
        return contextlib.nullcontext()
    sync = getattr(model, "no_sync", None)
    # no_sync() is a one-shot context manager: forward and backward both go inside the one with-block.
    return sync() if (sync is not None and not enabled) else contextlib.nullcontext()


def _local(t: torch.Tensor) -> torch.Tensor:
    """A DTensor (FSDP's gradient norm, replicated on every rank) as a plain tensor."""
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def train_step(model, optimizer, sampler: WindowSampler, plan: Plan, step: int, lr: float,
               t: TrainConfig, precision: Precision, rank: int = 0, world: int = 1) -> tuple[float, float]:
    """One optimizer step over the global batch; returns (mean loss, grad norm before clipping).

    Nothing waits for the device until the step's end: the loss adds up on the device, a
    non-finite gradient skips the update there (found_inf), and one transfer brings the two
    numbers back. The loop's divergence check reads them."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    first = step * t.batch_size + rank * plan.micro_batch * plan.accumulation
    total = torch.zeros((), dtype=torch.float64, device=precision.device)
    for micro_step in range(plan.accumulation):
        x, y = sampler.batch(first + micro_step * plan.micro_batch, plan.micro_batch)
        x, y = x.to(precision.device), y.to(precision.device)
        with _gradient_sync(model, micro_step == plan.accumulation - 1):
            with precision.autocast():
                loss = model(x, y) / plan.accumulation  # through a DDP wrapper, if any, so its hooks run
            loss.backward()
        total += loss.detach().double()
    clip = t.grad_clip if t.grad_clip > 0 else math.inf
    grad_norm = _local(torch.nn.utils.clip_grad_norm_(model.parameters(), clip))
    # A backward pass can overflow while the loss stays finite: clipping would scale by NaN and
    # AdamW write NaN into every weight. The fused AdamW skips the whole update (its step count
    # too) when found_inf is 1, decided on the device; the caller records the run as diverged.
    optimizer.found_inf = (~torch.isfinite(grad_norm)).float()
    optimizer.step()
    del optimizer.found_inf
    optimizer.zero_grad(set_to_none=True)
    if world > 1:
        import torch.distributed as dist

        dist.all_reduce(total)  # on the run's device: NCCL (the GPU backend) reduces CUDA tensors only
        total = total / world
    loss_value, norm_value = torch.stack((total, grad_norm.double())).tolist()  # the step's one sync
    return loss_value, norm_value


@torch.no_grad()
def evaluate(model, tokens: np.ndarray, byte_lengths: np.ndarray, t: TrainConfig,
             precision: Precision, rank: int = 0, world: int = 1, micro_batch: int | None = None) -> dict:
    """Held-out loss in nats per token and bits per byte over the first eval_tokens tokens.

    Each of the `world` processes takes a contiguous share of the windows (lab.data.eval_window_range);
    the summed nats, tokens and bytes are all-reduced, so the result is the one-process number
    (to float64 rounding) however unevenly the windows split.

    Takes the bare model (not a DDP or torch.compile wrapper): evaluation needs no gradient
    sync, and a compiled wrapper would compile a second graph for the logits-only call. An FSDP
    model is its own wrapper: its forward gathers parameters collectively, so every process
    runs the same number of forwards (a short share repeats its last block, counted zero times)."""
    model.eval()
    # Validation materialises (rows x seq_len x vocab) logits: at GPU scale a training batch of
    # them is tens of GB. Rows are capped so one forward's logits stay near 1 GiB in fp32.
    rows_cap = EVAL_LOGIT_ELEMENTS // (t.seq_len * model.cfg.vocab_size)
    rows = max(1, min(micro_batch or (t.micro_batch_size if isinstance(t.micro_batch_size, int) else t.batch_size),
                      rows_cap))
    batches = list(eval_batches(tokens, t.seq_len, t.eval_tokens, rows, rank, world))
    forwards = len(batches)
    sharded = world > 1 and distributed.is_sharded(model)
    if sharded:
        longest = max(len(eval_window_range(tokens, t.seq_len, t.eval_tokens, r, world)) for r in range(world))
        forwards = -(-longest // rows)
    nats = torch.zeros((), dtype=torch.float64, device=precision.device)
    n_tokens, n_bytes = 0, 0
    for i in range(forwards):
        x, y = batches[min(i, len(batches) - 1)] if batches else _empty_batch(t.seq_len)
        with precision.autocast():
            logits = model(x.to(precision.device))
        if i >= len(batches):
            continue  # a forward only to take part in FSDP's gathers
        nll = torch.nn.functional.cross_entropy(logits.float().view(-1, logits.size(-1)),
                                                y.to(precision.device).reshape(-1), reduction="sum")
        nats += nll.double()  # on the device: no wait per batch
        n_tokens += y.numel()
        n_bytes += int(byte_lengths[y.numpy()].sum())
    model.train()
    sums = torch.stack((nats, torch.tensor(float(n_tokens), dtype=torch.float64, device=nats.device),
                        torch.tensor(float(n_bytes), dtype=torch.float64, device=nats.device)))
    if world > 1:
        import torch.distributed as dist

        dist.all_reduce(sums)
    nats_total, tokens_total, bytes_total = sums.tolist()
    return {"loss": nats_total / tokens_total, "bpb": nats_total / math.log(2) / max(1, bytes_total),
            "tokens": int(tokens_total)}


def _empty_batch(seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    # A one-row batch of token 0 for a process whose share of the windows is empty (FSDP only).
    zeros = torch.zeros((1, seq_len), dtype=torch.int64)
    return zeros, zeros


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
        self.model = Llama(cfg.model, t.activation_checkpointing).to(self.precision.device)
        # FSDP shards in place, before the optimizer sees the parameters. Every process built the
        # same weights from the seed, so each keeps its slice of the same model. One process: DDP's path.
        self.sharded = t.parallel == "fsdp" and world > 1
        if self.sharded:
            distributed.shard_model(self.model, world, torch.device(self.precision.device).type)
        self.optimizer = build_optimizer(self.model, t, self.precision.device)
        if t.micro_batch_size == "auto":
            self.plan = self._measured_micro_batch(plan)
        self.byte_lengths = token_byte_lengths(corpus.tokenizer_path)
        self.trained = self.model  # the wrapped model (DDP, compile) once start() ran

    def _measured_micro_batch(self, plan: Plan) -> Plan:
        """The plan with train.micro_batch_size=auto resolved on this device (lab.micro_batch):
        rank 0 reads and writes the cache, and a size fits only if it fits every process."""
        from lab import micro_batch

        t, device = self.cfg.train, torch.device(self.precision.device)
        share = t.batch_size // self.world
        if device.type != "cuda":  # no device memory to measure: no accumulation
            return dataclasses.replace(plan, micro_batch=share, accumulation=1)
        m = self.cfg.model
        shape = {"model": dataclasses.asdict(m), "seq_len": t.seq_len, "precision": self.precision.dtype,
                 "activation_checkpointing": t.activation_checkpointing, "parallel": t.parallel,
                 "compile": t.compile, "world": self.world, "device_name": torch.cuda.get_device_name(device),
                 "memory": torch.cuda.get_device_properties(device).total_memory}
        # AdamW's two fp32 moments of this process's parameters (an FSDP shard's local part).
        local = sum((p.to_local() if hasattr(p, "to_local") else p).numel() for p in self.model.parameters())
        # A compiled step computes the plain loss: the whole fp32 logits and their gradient.
        logits = 8 * t.seq_len * m.vocab_size if t.compile else 0
        fits = micro_batch.torch_fits(self.model, 8 * local, t.seq_len, m.vocab_size, self.precision, device, logits)
        micro = micro_batch.resolve(shape, share, lambda rows: self._everywhere(fits(rows), device),
                                    Path(self.cfg.corpus.cache_dir).parent / micro_batch.CACHE_FILE,
                                    writer=self.rank == 0, from_writer=lambda v: self._from_rank0(v, device))
        return dataclasses.replace(plan, micro_batch=micro, accumulation=share // micro)

    def _from_rank0(self, value: int | None, device) -> int | None:
        if self.world == 1:
            return value
        import torch.distributed as dist

        box = torch.tensor(-1 if value is None else value, device=device)
        dist.broadcast(box, src=0)
        return None if int(box) < 0 else int(box)

    def _everywhere(self, ok: bool, device) -> bool:
        """Whether `ok` holds on every process (one answer for all)."""
        if self.world == 1:
            return ok
        import torch.distributed as dist

        flag = torch.tensor(int(ok), device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag)

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
        if self.sharded:  # every process reads the whole files and keeps its shard
            distributed.load_full_state(self.model, self.optimizer, ckpt.model_state, state["optimizer"])
        else:
            checkpoint.load_model_weights(self.model, ckpt.model_state)
            self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"]["torch"])
        return Resumed(ckpt.step, state["elapsed_s"], list(state.get("window_losses", [])),
                       state.get("log_every"), ckpt.path.name)

    def start(self) -> None:
        """Wrap the model for training, after any restore (DDP broadcasts the loaded weights;
        an FSDP model is its own wrapper)."""
        wrap = self._ddp_wrap if self._ddp_wrap is not None and not self.sharded else None
        trained = wrap(self.model) if wrap is not None else self.model
        self.trained = torch.compile(trained) if self.cfg.train.compile else trained
        self.model.train()

    def step(self, step: int, lr: float) -> tuple[float, float]:
        return train_step(self.trained, self.optimizer, self.sampler, self.plan, step, lr, self.cfg.train,
                          self.precision, self.rank, self.world)

    def evaluate(self, split: str) -> dict:
        return evaluate(self.model, self.corpus.tokens(split), self.byte_lengths, self.cfg.train, self.precision,
                        self.rank, self.world, self.plan.micro_batch)

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

    def _whole_state(self) -> tuple[dict | None, dict]:
        """(model state or None for model.state_dict(), optimizer state), whole on rank 0. Under
        FSDP gathering them is collective: every process calls this, rank 0 alone writes."""
        if self.sharded:
            return distributed.full_model_state(self.model), distributed.full_optimizer_state(self.model, self.optimizer)
        return None, self.optimizer.state_dict()

    def save(self, run_dir: Path, step: int, loop_state: dict) -> None:
        model_state, optimizer_state = self._whole_state() if self.sharded or self.rank == 0 else (None, None)
        if self.rank != 0:  # the run directory is rank 0's to write
            return
        t = self.cfg.train
        state = {"optimizer": optimizer_state, "rng": {"torch": torch.get_rng_state()}, **loop_state}
        checkpoint.save(run_dir, step, self.model, state, t.keep_checkpoints, t.keep_steps, model_state)

    def writer_says(self, answer: bool) -> bool:
        """Rank 0's answer. Under DDP other ranks' work that depends on it writes nothing, so
        their own answer will do; under FSDP that work gathers collectively: rank 0's is sent."""
        if not self.sharded:
            return answer
        import torch.distributed as dist

        box = [answer]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def finish(self) -> None:
        """Nothing to await: torch's saves are synchronous."""

    def save_snapshot(self, run_dir: Path, name: str, step: int, tokens: int) -> None:
        model_state = distributed.full_model_state(self.model) if self.sharded else None
        if self.rank != 0:
            return
        checkpoint.save_snapshot(run_dir, name, step, tokens, self.model, model_state)
