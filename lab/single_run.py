"""Run one training job end to end: validate, resolve the shape, prepare data, train, record."""
from __future__ import annotations

import dataclasses
import sys
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator

from common.errors import RunLocked
from lab.accounting import resolve_shape
from lab.config import RunConfig, validate_run
from lab.runs import (
    code_version,
    is_finished,
    read_final,
    record_start,
    run_id,
    run_lock,
    versions,
    write_json,
)


def resolve(cfg: RunConfig) -> RunConfig:
    """Validated config with the size picker applied; raises ConfigError before any compute."""
    validate_run(cfg)
    cfg = dataclasses.replace(cfg, model=resolve_shape(cfg.model))
    cfg = resolve_lr(cfg)
    validate_run(cfg)  # the picked shape must satisfy the same rules
    return cfg


def resolve_lr(cfg: RunConfig) -> RunConfig:
    """lr=auto becomes the number its rule gives at the picked shape's N, and lr_from says which
    rule (measured, or a published prior) gave it."""
    if cfg.train.lr != "auto":  # a number; an int from the command line (train.lr=1) as a float
        if isinstance(cfg.train.lr, float):
            return cfg
        return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, lr=float(cfg.train.lr)))
    from lab.accounting import total_params
    from lab.lr_rule import load_rule

    rule, n = load_rule(cfg.train.lr_rule), total_params(cfg.model)
    return dataclasses.replace(cfg, train=dataclasses.replace(
        cfg.train, lr=float(f"{rule.lr(n):.4g}"), lr_from=rule.describe(n)))


def run_dir_for(cfg: RunConfig) -> Path:
    return Path(cfg.out_dir) / run_id(cfg)


def run_single(cfg: RunConfig, run_dir: Path | None = None, *, rank: int = 0, world: int = 1,
               ddp_wrap=None, log=print) -> dict:
    """Train cfg into run_dir (default out_dir/<run id>) unless it already finished there."""
    cfg = resolve(cfg)
    run_dir = run_dir or run_dir_for(cfg)
    # Under data parallelism only rank 0's view counts (claim_run below): ranks checking on their
    # own could disagree while another process finishes the run, and one would wait forever.
    if world == 1 and is_finished(run_dir):
        final = read_final(run_dir)
        log(f"{run_dir}: already finished ({final['status']}); nothing to do")
        return final
    if cfg.train.backend == "jax":  # the mesh against this machine's devices, before any file is written
        from lab.jax.train import build_mesh

        build_mesh(cfg)
    from corpora.cache import prepare_corpus  # imported late: a bad config fails before this

    corpus = prepare_corpus(cfg.corpus, progress=rank == 0 and sys.stderr.isatty())
    from lab.trainer import train

    with claim_run(run_dir, rank, world, cfg.train.backend) as finished_meanwhile:
        if finished_meanwhile:  # another process finished it since the check
            final = read_final(run_dir)
            log(f"{run_dir}: already finished ({final['status']}); nothing to do")
            return final
        if rank == 0:
            record_start(run_dir, cfg, {"corpus_dir": str(corpus.path), "versions": versions()})
        final = train(cfg, run_dir, corpus, rank=rank, world=world, ddp_wrap=ddp_wrap)
        final.update(run_id=run_dir.name, code_version=code_version(), versions=versions(),
                     seed=cfg.seed, corpus=cfg.corpus.name, quality=cfg.corpus.quality,
                     corpus_dir=str(corpus.path), seq_len=cfg.train.seq_len, batch_size=cfg.train.batch_size)
        if rank == 0:
            write_json(run_dir / "final.json", final)
    if final["status"] == "diverged":
        log(f"{run_dir}: diverged: {final['reason']} (recorded in final.json)")
    else:
        log(f"{run_dir}: done: val loss {final['final_val_loss']:.4f} nats/token "
            f"({final['final_val_bpb']:.4f} bits/byte), {final['tokens']} tokens, {final['wall_s']:.1f}s")
    return final


@contextmanager
def claim_run(run_dir: Path, rank: int = 0, world: int = 1, backend: str = "torch") -> Iterator[bool]:
    """The run's lock, taken by rank 0 for all ranks, yielding whether the run finished in the
    meantime. Under data parallelism every rank learns rank 0's outcome before going on: a rank
    that trained on while rank 0 stopped (run locked elsewhere) would wait in a collective forever."""
    if world == 1:
        with run_lock(run_dir):
            yield is_finished(run_dir)
        return
    with ExitStack() as held:
        outcome = ["claimed", ""]  # (kind, message) as rank 0 saw it
        failure: BaseException | None = None
        if rank == 0:
            try:
                held.enter_context(run_lock(run_dir))
                outcome[0] = "finished" if is_finished(run_dir) else "claimed"
            except RunLocked as e:
                failure, outcome = e, ["locked", str(e)]
            except Exception as e:  # the directory cannot be written, ...
                failure, outcome = e, ["failed", f"{e.__class__.__name__}: {e}"]
        outcome = _from_rank_0(outcome, backend)
        if failure is not None:
            raise failure
        if outcome[0] == "locked":
            raise RunLocked(outcome[1])
        if outcome[0] == "failed":
            raise RuntimeError(f"rank 0 could not claim {run_dir}: {outcome[1]}")
        yield outcome[0] == "finished"


_OUTCOMES = ("claimed", "finished", "locked", "failed")


def _from_rank_0(outcome: list, backend: str) -> list:
    """Rank 0's (kind, message) on every rank, through the backend's own collectives."""
    if backend == "jax":
        import numpy as np
        from jax.experimental import multihost_utils

        # JAX broadcasts arrays, not objects: the kind travels, the message stays in rank 0's log.
        code = int(multihost_utils.broadcast_one_to_all(np.int32(_OUTCOMES.index(outcome[0]))))
        return [_OUTCOMES[code], outcome[1] or "see process 0's log"]
    import torch.distributed as dist

    dist.broadcast_object_list(outcome, src=0)
    return outcome
