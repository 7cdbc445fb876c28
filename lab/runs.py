"""One run as data: a stable id from its config, a directory holding everything to redo it,
a lock so two processes never train the same run, and skipping of finished runs."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
import subprocess
import sys
from contextlib import ExitStack, contextmanager
from pathlib import Path

from common.errors import RunLocked
from common.files import atomic_write_text
from common.locks import LockHeld, held, is_held
from corpora.keys import content_key
from lab.config import RunConfig

# Fields that change how a run is shown or stored, not what it computes.
_NOT_IDENTITY = {("out_dir",), ("name",), ("logger",), ("train", "progress"), ("train", "log_every"),
                 ("train", "checkpoint_every"), ("train", "keep_checkpoints"), ("train", "threads"),
                 # Where a run's first steps come from (a trunk's checkpoint, or its own training)
                 # changes nothing in it: a branch is the same run as the one trained from scratch.
                 ("train", "keep_steps"), ("train", "branch_from"), ("train", "branch_step"),
                 # Validation reads the model and changes nothing in it.
                 ("train", "eval_every"),
                 # Compiled and eager training compute the same thing (to rounding).
                 ("train", "compile"),
                 # The learning rate enters as the number it resolved to; which rule gave it is a record.
                 ("train", "lr_rule"), ("train", "lr_from"),
                 # How a run spreads over devices (JAX mesh, torch DDP or FSDP) and whether it keeps
                 # or recomputes activations: not what it computes (to rounding).
                 ("train", "mesh"), ("train", "parallel"), ("train", "activation_checkpointing")}


def identity(cfg: RunConfig) -> dict:
    d = dataclasses.asdict(cfg)
    for path in _NOT_IDENTITY:
        node = d
        for key in path[:-1]:
            node = node[key]
        node.pop(path[-1], None)
    if d["train"]["backend"] == "torch":  # torch runs keep the ids they had before backends existed
        del d["train"]["backend"]
    # The corpus enters as its key alone: it covers the corpus config and what can change under
    # the same config (local files edited in place, the generator's text, the tokenizer, the shard
    # format), local data by content, not location, so such a run is a new run, not a finished one.
    d["corpus"] = {"key": content_key(cfg.corpus)}
    return d


# What a cooldown branch may differ in from its trunk: the schedule's tail and the budget.
_SCHEDULE_TAIL = ("schedule", "tokens", "words", "cooldown", "decay_shape", "snapshots")


def branch_mismatch(trunk: RunConfig, branch: RunConfig) -> str | None:
    """The first field (dotted) in which a branch differs from its trunk beyond the schedule's
    tail, or None: any other difference would make the trunk's steps not the branch's own."""
    a, b = identity(trunk), identity(branch)
    for d in (a, b):
        for key in _SCHEDULE_TAIL:
            d["train"].pop(key, None)
    for section in sorted(set(a) | set(b)):
        if a.get(section) != b.get(section):
            inner = a.get(section), b.get(section)
            if all(isinstance(x, dict) for x in inner):
                key = next(k for k in sorted(set(inner[0]) | set(inner[1])) if inner[0].get(k) != inner[1].get(k))
                return f"{section}.{key}"
            return section
    return None


def run_id(cfg: RunConfig) -> str:
    """A readable prefix and a hash of everything that determines the result."""
    digest = hashlib.sha256(json.dumps(identity(cfg), sort_keys=True).encode()).hexdigest()[:10]
    m, t = cfg.model, cfg.train
    # The prefix names the budget in the unit the run was given: words (BabyLM) or tokens.
    budget = f"w{t.words:.0e}" if t.words is not None else f"t{t.tokens:.0e}"
    return f"d{m.d_model}-l{m.n_layers}-{budget}-q{cfg.corpus.quality:g}-{digest}".replace("+", "")


def code_version() -> str:
    here = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if not sha:
        return "unknown"
    return sha + ("+dirty" if dirty else "")


def versions() -> dict:
    import numpy
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
            "platform": platform.platform()}


def read_final(run_dir: Path) -> dict | None:
    try:
        return json.loads((run_dir / "final.json").read_text())
    except (OSError, ValueError):
        return None


def is_finished(run_dir: Path) -> bool:
    final = read_final(run_dir)
    return final is not None and final.get("status") in ("done", "diverged")


def write_json(path: Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


@contextmanager
def run_lock(run_dir: Path):
    """An exclusive, non-blocking lock on the run (its directory's `lock` file): a file lock that
    holds across the nodes of a shared filesystem, and is broken once its holder is gone
    (common.locks says how that is decided)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        try:
            stack.enter_context(held(run_dir / "lock"))
        except LockHeld as e:
            raise RunLocked(f"{run_dir} is being trained by another process ({e})") from None
        yield


def is_locked(run_dir: Path) -> bool:
    """Whether a live process holds the run's lock right now (it is training the run)."""
    return is_held(run_dir / "lock")


def record_start(run_dir: Path, cfg: RunConfig, extra: dict) -> None:
    write_json(run_dir / "config.json", {"config": dataclasses.asdict(cfg), "run_id": run_dir.name,
                                         "code_version": code_version(), "argv": sys.argv, **extra})
