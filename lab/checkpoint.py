"""Checkpoints that lose nothing: atomic, checksummed, with fallback to an older one.

Layout: <run>/checkpoints/step_00000120/{model.safetensors, state.pt, meta.json}.
A checkpoint is built in a hidden temporary directory, every file fsynced, then the directory
is renamed into place (atomic on POSIX) and the parent fsynced. meta.json carries the sha256 of
the other two files; a checkpoint whose files do not match it is skipped with a message.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import load_file, save_file

from common.files import checksum_problem, fsync_path, sha256_file

STEP_PREFIX = "step_"


@dataclass
class Checkpoint:
    step: int
    model_state: dict
    train_state: dict  # optimizer, data position, rng, elapsed time...
    path: Path


def _model_tensors(model: torch.nn.Module, state: dict | None = None) -> dict[str, torch.Tensor]:
    """The weights to store: model.state_dict(), or `state` when given (a sharded model's,
    gathered whole by lab.distributed.full_state)."""
    state = dict(model.state_dict() if state is None else state)
    if getattr(model, "cfg", None) is not None and model.cfg.tie_embeddings:
        state.pop("lm_head.weight", None)  # the same tensor as embed.weight; stored once
    return {k: v.detach().contiguous().cpu() for k, v in state.items()}


def _save_tensors(tensors: dict, path: Path) -> None:
    """safetensors from torch tensors or numpy arrays (the JAX backend's): one file format either way."""
    if any(isinstance(v, torch.Tensor) for v in tensors.values()):
        save_file({k: v if isinstance(v, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(v))
                   for k, v in tensors.items()}, path)
    else:
        save_numpy({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(path))


def write_weight_files(directory: Path, tensors: dict, train_state: dict | None, meta: dict) -> None:
    """model.safetensors (+ state.pt), then meta.json with their sha256, into an existing
    directory; every file fsynced. meta.json comes last, under a temporary name renamed into
    place: until it is there, verify() rejects the directory (it is what makes one complete)."""
    (directory / "meta.json").unlink(missing_ok=True)  # a rewrite: incomplete until the new one lands
    _save_tensors(tensors, directory / "model.safetensors")
    names = ["model.safetensors"]
    if train_state is not None:
        torch.save(train_state, directory / "state.pt")
        names.append("state.pt")
    for name in names:
        fsync_path(directory / name)
    meta = {**meta, "sha256": {name: sha256_file(directory / name) for name in names}}
    tmp = directory / f".meta.json.tmp{os.getpid()}"
    tmp.write_text(json.dumps(meta, indent=1))
    fsync_path(tmp)
    os.replace(tmp, directory / "meta.json")
    fsync_path(directory)


def write_atomically(final: Path, tensors: dict, train_state: dict | None, meta: dict) -> Path:
    """Write tensors (+ training state) into a temp dir, fsync, then rename it to `final`."""
    root = final.parent
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    write_weight_files(tmp, tensors, train_state, meta)
    if final.exists():  # a rerun of the same step after a crash between rename and cleanup
        shutil.rmtree(final)
    os.rename(tmp, final)
    fsync_path(root)
    return final


def save(run_dir: Path, step: int, model: torch.nn.Module, train_state: dict, keep: int,
         keep_steps: Iterable[int] = (), model_state: dict | None = None) -> Path:
    final = write_atomically(run_dir / "checkpoints" / f"{STEP_PREFIX}{step:08d}",
                              _model_tensors(model, model_state), train_state, {"step": step})
    # Checkpoints past this step are ones the resume fell back past (damaged) or an abandoned
    # timeline's: superseded now. Counting them among the `keep` newest could prune the
    # checkpoint just written and leave only damaged ones.
    for path in list_checkpoints(run_dir):
        if _step_of(path) > step:
            shutil.rmtree(path, ignore_errors=True)
    kept = set(keep_steps)  # a trunk's branch points: never pruned, nor counted among the newest
    for old in [path for path in list_checkpoints(run_dir) if _step_of(path) not in kept][:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def copy_checkpoint(source_run: Path, step: int, run_dir: Path) -> Path | None:
    """Copy source_run's checkpoint at `step` into run_dir's checkpoints (under a temporary name,
    then renamed), verified first; None when the source has no intact checkpoint at that step."""
    source = Path(source_run) / "checkpoints" / f"{STEP_PREFIX}{step:08d}"
    if not source.is_dir() or verify(source) is not None:
        return None
    final = run_dir / "checkpoints" / source.name
    staging = final.parent / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    final.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, staging)
    for file in staging.iterdir():
        fsync_path(file)
    fsync_path(staging)
    os.rename(staging, final)
    fsync_path(final.parent)
    return final


def _step_of(path: Path) -> int:
    return int(path.name[len(STEP_PREFIX):])


def save_snapshot(run_dir: Path, name: str, step: int, tokens: int, model: torch.nn.Module,
                  model_state: dict | None = None) -> Path:
    """Weights only, kept for good (evaluation and export at fixed points of training)."""
    return write_atomically(run_dir / "snapshots" / name, _model_tensors(model, model_state), None,
                             {"step": step, "tokens": tokens})


def list_snapshots(run_dir: Path) -> list[Path]:
    root = run_dir / "snapshots"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and verify(p) is None]
    return sorted(found, key=lambda p: json.loads((p / "meta.json").read_text())["step"])


def remove_partial_writes(run_dir: Path) -> list[Path]:
    """Delete the temporary directories of writes a killed process left half done. Only the
    run's owner (who holds its lock, lab.runs.run_lock) may call this: nobody else is writing."""
    removed = []
    for sub in ("checkpoints", "snapshots"):
        root = run_dir / sub
        for tmp in sorted(root.glob(".tmp-*")) if root.is_dir() else ():
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    return removed


def remove_damaged_snapshots(run_dir: Path) -> list[tuple[Path, str]]:
    """Delete snapshots that fail verification: a resume that replays a snapshot's step takes it
    again (the trainer skips names that exist), else it is plainly missing, which a submission
    reports, instead of present but hidden by list_snapshots. Owner only, as above."""
    root = run_dir / "snapshots"
    damaged = []
    for path in sorted(root.iterdir()) if root.is_dir() else ():
        if path.is_dir() and not path.name.startswith(".") and (reason := verify(path)) is not None:
            shutil.rmtree(path, ignore_errors=True)
            damaged.append((path, reason))
    return damaged


def list_checkpoints(run_dir: Path) -> list[Path]:
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return []
    # step_<digits> only: orbax (lab/jax) stages its writes as step_<digits>.orbax-checkpoint-tmp.
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(STEP_PREFIX)
                  and p.name[len(STEP_PREFIX):].isdigit())


def verify(path: Path) -> str | None:
    """None if the checkpoint is intact, else the reason it is not."""
    try:
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, ValueError) as e:
        return f"meta.json unreadable ({e.__class__.__name__})"
    return checksum_problem(path, meta.get("sha256", {}))


def load_latest(run_dir: Path, log=lambda msg: print(msg, file=sys.stderr)) -> Checkpoint | None:
    """The newest intact checkpoint, falling back past corrupt ones with a message."""
    for path in reversed(list_checkpoints(run_dir)):
        problem = verify(path)
        if problem:
            log(f"checkpoint {path} is corrupt ({problem}); falling back to the previous one")
            continue
        meta = json.loads((path / "meta.json").read_text())
        model_state = load_file(path / "model.safetensors")
        # Onto the CPU whatever device saved it (safetensors' load_file does the same): the
        # optimizer's load_state_dict then moves its state to each parameter's own device, so a
        # rank resumes on its GPU, not on cuda:0, and a GPU run resumes on a CPU-only machine.
        train_state = torch.load(path / "state.pt", weights_only=True, map_location="cpu")
        return Checkpoint(meta["step"], model_state, train_state, path)
    return None


def load_model_weights(model: torch.nn.Module, model_state: dict) -> None:
    missing, unexpected = model.load_state_dict(model_state, strict=False)
    allowed_missing = {"lm_head.weight"} if model.cfg.tie_embeddings else set()
    if unexpected or set(missing) - allowed_missing:
        raise RuntimeError(f"checkpoint does not fit the model: missing={missing} unexpected={unexpected}")
