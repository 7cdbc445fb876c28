"""The training loop, the same for every framework: plan, resume, step, log, validate, snapshot,
checkpoint, and final.json's numbers. The framework's work (model, step, eval, save/load) sits
behind a backend (lab.torch_backend.TorchBackend); this file holds only the bookkeeping.

train() owns one run directory. It resumes from the newest intact checkpoint there, appends to
metrics.jsonl, and returns final.json's contents (status "done" or "diverged").
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.errors import ConfigError
from common.files import atomic_write_text
from lab.accounting import describe
from lab.config import RunConfig, TrainConfig
from lab.loggers import open_dashboards
from lab.metrics import MetricsLog, Progress, read_metrics
from lab.plan import Plan, plan_run, snapshot_steps, validation_due
from lab.schedule import cooldown_start, lr_at

PARENT_FILE = "parent.json"  # in a branch's run directory: the trunk and step it started from


@dataclass(frozen=True)
class Resumed:
    """What a backend's restore hands the loop: where the checkpoint stopped and its open logging window."""
    step: int
    elapsed_s: float
    window_losses: list
    log_every: int | None
    name: str


def train(cfg: RunConfig, run_dir: Path, corpus, *, rank: int = 0, world: int = 1, ddp_wrap=None) -> dict:
    """Train (or resume) the run in run_dir with cfg.train.backend; return the final.json contents."""
    if cfg.train.backend == "jax":
        from lab.jax.train import JaxBackend

        # One JAX program drives every device of every host: the plan is the one-process plan
        # (the mesh splits each micro batch), rank/world are JAX's processes and devices.
        sampler, plan, tokens_per_word = plan_run(cfg, corpus, 1)
        backend = JaxBackend(cfg, corpus, sampler, plan)
        rank, world = backend.rank, backend.world
    else:
        from lab.torch_backend import TorchBackend

        sampler, plan, tokens_per_word = plan_run(cfg, corpus, world)
        backend = TorchBackend(cfg, corpus, sampler, plan, rank=rank, world=world, ddp_wrap=ddp_wrap)
        plan = backend.plan  # train.micro_batch_size=auto is resolved on the device
    return Loop(cfg, run_dir, backend, plan, tokens_per_word, rank=rank, world=world).run()


class Loop:
    """One run's loop over a backend. Periodic work (logging windows, validation, snapshots,
    checkpoints) is decided here from the step count alone, so every backend does it alike."""

    def __init__(self, cfg: RunConfig, run_dir: Path, backend, plan: Plan, tokens_per_word: float, *,
                 rank: int = 0, world: int = 1):
        self.cfg, self.t, self.run_dir, self.backend, self.plan = cfg, cfg.train, run_dir, backend, plan
        self.tokens_per_word, self.world, self.is_writer = tokens_per_word, world, rank == 0
        self.label = cfg.name or run_dir.name
        self.shape = describe(cfg.model, self.t.seq_len)
        self.snapshot_at = snapshot_steps(self.t, plan, tokens_per_word)
        self.window_losses: list[float] = []  # the open logging window (travels in checkpoints)
        self.elapsed_before = 0.0

    def run(self) -> dict:
        if self.t.branch_from is not None:
            self._start_branch()
        resumed = self.backend.restore(self.run_dir, self.is_writer)
        if resumed is None and self.is_writer:  # (an adopted checkpoint found damaged: from step 0)
            (self.run_dir / PARENT_FILE).unlink(missing_ok=True)
        start = self._resume_from(resumed)
        self.backend.start()
        metrics = MetricsLog(self.run_dir / "metrics.jsonl", start if resumed else None) if self.is_writer else None
        progress = Progress(self.plan.steps, start, self.plan.tokens_per_step,
                            self.t.progress if self.is_writer else "none", self.label)
        if resumed is not None:
            progress.message(f"{self.label}: resumed from step {start} ({resumed.name})")
        if (warning := self.backend.precision_warning()) is not None:
            progress.message(f"{self.label}: {warning}")
        # Rank 0's live dashboards (cfg.logger) mirror metrics.jsonl from here on (lab/loggers.py),
        # opened last so that nothing between opening and the with-block can leave one open.
        dashboards = open_dashboards(self.cfg, self.run_dir, metrics, fresh=resumed is None, label=self.label)
        self.t0 = time.perf_counter()  # (a dashboard's start-up is not training time)
        with dashboards:  # closed however the run ends (a crash marks the W&B run failed)
            status, reason = self._steps(start, metrics, progress)
            if status == "done" and (resumed is None or resumed.step != self.plan.steps):
                self._save(self.plan.steps)  # (a resume that finds the final checkpoint was killed after it)
            self.backend.finish()  # saves still in flight land before final.json says the run is done
            progress.close()
            final = self._final(status, reason)
            dashboards.final(final)
        return final

    def _start_branch(self) -> None:
        """A cooldown branch's steps up to branch_step are its trunk's: on its first start it takes
        the trunk's checkpoint and metrics rows up to that step instead of training them again.
        Without that checkpoint it trains them itself, to the same result (the same run id)."""
        trunk, step = Path(self.t.branch_from), self.t.branch_step
        fresh = not self.backend.has_checkpoint(self.run_dir)
        if fresh and self.backend.has_checkpoint(trunk, step):
            self._check_trunk(trunk)  # on every rank: a refusal must not leave ranks waiting below
        if self.is_writer and fresh:
            if self.backend.has_checkpoint(trunk, step):
                # The rows first, the checkpoint last: its arrival (a rename) completes the
                # adoption, and a kill before it leaves a run that adopts again on its rerun.
                rows = [row for row in read_metrics(trunk / "metrics.jsonl") if row["step"] <= step]
                atomic_write_text(self.run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
                atomic_write_text(self.run_dir / PARENT_FILE, json.dumps({"trunk": str(trunk), "step": step}) + "\n")
                if not self.backend.adopt(trunk, step, self.run_dir):
                    (self.run_dir / PARENT_FILE).unlink(missing_ok=True)
            else:
                (self.run_dir / PARENT_FILE).unlink(missing_ok=True)  # a kill's leftover: not adopted
                print(f"{self.label}: trunk {trunk} has no checkpoint at step {step}; training from step 0")
        self.backend.barrier()  # no rank looks for a checkpoint before the writer has placed it

    def _check_trunk(self, trunk: Path) -> None:
        from lab.config import run_config_from_dict
        from lab.runs import branch_mismatch

        try:
            trunk_cfg = run_config_from_dict(json.loads((trunk / "config.json").read_text())["config"])
        except (OSError, ValueError, KeyError) as e:
            raise ConfigError("train.branch_from", f"{trunk} is not a run directory with a config.json ({e})") from None
        field = branch_mismatch(trunk_cfg, self.cfg) or self._schedule_mismatch(trunk_cfg.train)
        if field is not None:
            raise ConfigError("train.branch_from", f"the trunk {trunk} differs from this run in {field}: a branch "
                                                   "may differ from its trunk only in its schedule's tail")

    def _schedule_mismatch(self, trunk: TrainConfig) -> str | None:
        """What else makes the trunk's first branch_step steps not this run's: another rate at any
        of them (a schedule or warmup that depends on the run's length), a branch step in this run's
        cooldown or past its end, a snapshot the branch would skip, or other logging windows."""
        t, step = self.t, self.t.branch_step
        trunk_steps = int(trunk.tokens // (trunk.batch_size * trunk.seq_len))
        if step >= self.plan.steps or (t.schedule == "wsd" and step > cooldown_start(t, self.plan.steps)):
            return f"train.branch_step ({step} is not before this run's cooldown)"
        if step > trunk_steps or any(lr_at(s, trunk_steps, trunk) != lr_at(s, self.plan.steps, t) for s in range(step)):
            return "the learning rate before the branch step (train.schedule, train.warmup)"
        if any(at <= step for at in self.snapshot_at.values()):
            return "train.snapshots (one falls before the branch step, which the branch does not train)"
        if trunk.log_every != t.log_every:
            return "train.log_every"
        return None

    def _resume_from(self, resumed) -> int:
        if resumed is None:
            return 0
        if resumed.log_every is not None and resumed.log_every != self.t.log_every:
            # Not in the run id (a display setting), but it cuts the logging windows the resumed
            # rows and final_train_loss continue: another value would mix two windowings.
            raise ConfigError("train.log_every", f"this run was started with log_every={resumed.log_every}; "
                                                 f"resume it with the same value (got {self.t.log_every})")
        self.elapsed_before, self.window_losses = resumed.elapsed_s, list(resumed.window_losses)
        return resumed.step

    def _steps(self, start: int, metrics: MetricsLog | None, progress: Progress) -> tuple[str, str | None]:
        """Steps start..plan.steps-1 with their periodic work; (status, reason) at the end."""
        window_start, window_steps = time.perf_counter(), 0
        for step in range(start, self.plan.steps):
            lr = lr_at(step, self.plan.steps, self.t)
            loss, grad_norm = self.backend.step(step, lr)
            for name, value in (("loss", loss), ("gradient norm", grad_norm)):
                if not math.isfinite(value):
                    return "diverged", f"non-finite {name} ({value}) at step {step + 1}"
            self.window_losses.append(loss)
            window_steps += 1  # timed since window_start (a resumed window's first losses were not)
            done = step + 1
            # A trunk's last step is a branch point, not an end: its open window travels in the
            # checkpoint, so that a branch logs the windows of the run trained from scratch.
            if done % self.t.log_every == 0 or (done == self.plan.steps and done not in self.t.keep_steps):
                row = self._log_row(done, lr, grad_norm, window_steps / (time.perf_counter() - window_start))
                if metrics is not None:
                    metrics.write(row)
                progress.update(done, row)
                window_start, window_steps, self.window_losses = time.perf_counter(), 0, []
            # Snapshots before the checkpoint: a kill between the two replays this step from the
            # previous checkpoint and finds the snapshot already taken at the right step.
            self._take_snapshots(done)
            periodic = self.t.checkpoint_every and done % self.t.checkpoint_every == 0
            if (periodic or done in self.t.keep_steps) and done != self.plan.steps:
                self._save(done)
        return "done", None

    def _log_row(self, done: int, lr: float, grad_norm: float, steps_per_s: float) -> dict:
        # tokens/s counts the global batch: every process's device adds to the peak.
        tok_s = steps_per_s * self.plan.tokens_per_step
        peak = self.backend.peak_flops()
        row = {"step": done, "tokens": done * self.plan.tokens_per_step, "loss": float(np.mean(self.window_losses)),
               "lr": lr, "grad_norm": grad_norm, "tokens_per_s": tok_s,
               "mfu": tok_s * self.shape["flops_per_token"] / (peak * self.world) if peak == peak else float("nan")}
        # The last step is validated in _final, except at a branch point: the branch's rows must
        # read as the longer run's, where that step is a mid-run one.
        if validation_due(done, self.t) and (done != self.plan.steps or done in self.t.keep_steps):
            val = self.backend.evaluate("val_clean")
            row.update(val_loss=val["loss"], val_bpb=val["bpb"])
        return row

    def _take_snapshots(self, done: int) -> None:
        # On every process (a JAX snapshot gathers shards collectively; torch writes on rank 0).
        # A resume that replays a snapshot's step finds it taken and leaves it: rewriting it would
        # open a moment (old one removed, new one not yet in place) in which a kill loses it.
        for name, step in self.snapshot_at.items():
            if step != done:
                continue
            taken = self.is_writer and (self.run_dir / "snapshots" / name).is_dir()
            if not self.backend.writer_says(taken):  # every process acts on rank 0's answer
                self.backend.save_snapshot(self.run_dir, name, done, done * self.plan.tokens_per_step)

    def _save(self, step: int) -> None:
        # On every process: a JAX checkpoint is written collectively; the torch backend writes on rank 0.
        # The open logging window's losses too: a resumed run logs the same windows (and so
        # the same final_train_loss) as an uninterrupted one.
        self.backend.save(self.run_dir, step, {
            "step": step, "sequences_seen": step * self.t.batch_size, "window_losses": list(self.window_losses),
            "log_every": self.t.log_every, "elapsed_s": self.elapsed_before + (time.perf_counter() - self.t0)})

    def _final(self, status: str, reason: str | None) -> dict:
        plan, shape = self.plan, self.shape
        precision = self.backend.precision
        final = {"status": status, "reason": reason, "steps": plan.steps, "tokens": plan.tokens,
                 "flops": shape["flops_per_token"] * plan.tokens_per_step * plan.steps, "epochs": plan.epochs,
                 "unique_tokens": plan.unique_tokens, "params": shape["params"],
                 "non_embedding_params": shape["non_embedding_params"], "flops_per_token": shape["flops_per_token"],
                 "wall_s": self.elapsed_before + (time.perf_counter() - self.t0),
                 "words": plan.tokens / self.tokens_per_word, "tokens_per_word": self.tokens_per_word,
                 "precision": precision.dtype, "precision_reason": precision.reason, "device": precision.device,
                 "world_size": self.world, "backend": self.backend.name}
        parent = self.run_dir / PARENT_FILE
        if parent.exists():  # the trunk's part is counted in flops above: the ledger subtracts it
            final["parent"] = json.loads(parent.read_text())
        rows = read_metrics(self.run_dir / "metrics.jsonl") if self.is_writer else []
        final["final_train_loss"] = rows[-1]["loss"] if rows else None
        if status != "done":
            return {**final, "final_val_loss": None, "final_val_bpb": None}
        val, own = self.backend.evaluate("val_clean"), self.backend.evaluate("val")
        return {**final, "final_val_loss": val["loss"], "final_val_bpb": val["bpb"], "val_tokens": val["tokens"],
                "final_val_own_loss": own["loss"], "final_val_own_bpb": own["bpb"]}
